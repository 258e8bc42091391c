//! Persistence: one repository trait per aggregate, and the backends that implement them.
//!
//! Callers hold an `Arc<dyn Store>` and never see SQL; a backend is chosen once, by the database
//! URL's scheme ([`open`]). SQLite is the embedded default; PostgreSQL serves several instances
//! sharing one database. Rows carry epoch-millisecond timestamps and prefixed text ids.
//!
//! Both backends are one type, [`SqlStore`] (`sql/`), whose statements and row mapping are written
//! once. To add a repository:
//! 1. declare its trait here (`#[async_trait] pub trait ThingRepo { … }`) and add it to the
//!    supertraits of [`Store`]; put its record types in `models.rs`;
//! 2. add `sql/things.rs` with `impl ThingRepo for SqlStore`, each method one body inside
//!    `on_db!(self, |pool| …)` (or `|pool, pg|` where the dialects differ) using `$n` placeholders,
//!    and a `thing_from_row(&impl SqlRow)` in `sql/rows.rs` reading columns with `row.col("…")?`;
//! 3. create its tables in your migration, one file of the same name in `migrations/sqlite/` and
//!    `migrations/postgres/` (use `BIGINT`/`BYTEA` on PostgreSQL where SQLite says `INTEGER`/`BLOB`);
//! 4. add its cases to `tests/storage.rs`, which runs every case on both backends.

mod audit;
pub(crate) mod files;
mod key_admin;
mod keyring;
mod models;
mod sql;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use thiserror::Error;

pub use audit::{
    kinds as audit_kinds, AuditChain, AuditEntry, AuditEvent, AuditFilter, AuditRepo, MasterKeyEvent,
    GENESIS_HASH, GLOBAL_CHAIN, HIDDEN_HOST,
};
pub use files::{BatchItem, BatchRow, FileRecord, FileRepo};
pub use key_admin::KeyAdminRepo;
pub use keyring::{KeyRingRepo, MasterKeyRecord, RetireKey, WrappedDek, WrappedRoot};
pub use models::*;
pub use sql::{Db, PgStore, SqlStore, SqliteStore};
pub use users::{MemberRecord, Membership, SessionRecord, UserRecord, UserRepo};

/// Failures of the storage layer. The driver's text stays in the source chain for logs; the HTTP
/// layer never shows it to a client.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    UnsupportedUrl(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// The batched commit holding this write failed (or the writer stopped): nothing of it is
    /// stored.
    #[error("{0}")]
    Commit(String),
}

impl StoreError {
    /// The database cancelled the statement to break a deadlock, or found a serialization
    /// conflict (PostgreSQL `40P01`, `40001`): nothing is wrong with the write itself, and it
    /// succeeds when run again once the other transaction has ended.
    pub(crate) fn is_lost_conflict(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("40P01" | "40001")))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait WorkspaceRepo {
    /// Returns the workspace with this slug, creating it first if there is none.
    async fn ensure_workspace(&self, slug: &str) -> StoreResult<Workspace>;
    /// Finds a workspace by its id (`ws_…`) or, failing that, by its slug.
    async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>>;
}

#[async_trait]
pub trait ApiKeyRepo {
    /// Inserts the key; it and its audit entry (by `actor`) commit together, as in every
    /// change below.
    async fn insert_api_key(&self, key: &ApiKeyRecord, actor: &str) -> StoreResult<()>;
    /// The key with this SHA-256 hash, if it exists and is not revoked.
    async fn find_active_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Counts `uses` uses of the key, the latest at `at_ms`.
    async fn touch_api_key(&self, id: &str, uses: i64, at_ms: i64) -> StoreResult<()>;
    async fn list_api_keys(&self, workspace_id: &str) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks the key revoked; false if the workspace has no such key.
    async fn revoke_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        at_ms: i64,
        actor: &str,
    ) -> StoreResult<bool>;
    /// Removes the key row; false if the workspace has no such key.
    async fn delete_api_key(&self, workspace_id: &str, id: &str, actor: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait SecretRepo {
    /// Names and metadata of a workspace's secrets, sorted by name.
    async fn list_secrets(&self, workspace_id: &str) -> StoreResult<Vec<SecretMeta>>;
    async fn get_secret(&self, workspace_id: &str, name: &str) -> StoreResult<Option<SecretRecord>>;
    /// Inserts a new secret unless the name exists or the workspace already holds `max_count`.
    /// The change and its audit entry (by `actor`) commit together.
    async fn insert_secret(
        &self,
        row: &SecretRecord,
        max_count: i64,
        actor: &str,
    ) -> StoreResult<InsertSecret>;
    /// Replaces a secret's value if its version is still `expected_version` (optimistic lock);
    /// false if another writer got there first or the secret is gone. Audited like an insert.
    async fn replace_secret(
        &self,
        row: &SecretRecord,
        expected_version: i64,
        actor: &str,
    ) -> StoreResult<bool>;
    /// false if there was no such secret. Audited like an insert.
    async fn delete_secret(&self, workspace_id: &str, name: &str, actor: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait WorkflowRepo {
    /// Inserts a new workflow and its first version row.
    async fn insert_workflow(&self, wf: &WorkflowRecord) -> StoreResult<()>;
    async fn get_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<Option<WorkflowRecord>>;
    /// Newest first, optionally filtered by status; also returns the total matching.
    async fn list_workflows(
        &self,
        workspace_id: &str,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<WorkflowRecord>, i64)>;
    /// Saves `wf` (whose `version` is the new one) and its version row, if the stored version is
    /// still `expected_version`; false if another writer got there first or it is gone.
    async fn update_workflow(&self, wf: &WorkflowRecord, expected_version: i64) -> StoreResult<bool>;
    /// Deletes the workflow and its versions; false if there was none.
    async fn delete_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<bool>;
    /// The workflow whose webhook URL holds `token` (any workspace: the token is the credential).
    async fn find_workflow_by_webhook_token(&self, token: &str) -> StoreResult<Option<WorkflowRecord>>;
    /// Replaces a webhook-triggered workflow's token; false if it has none (or is not there).
    async fn rotate_webhook_token(
        &self,
        workspace_id: &str,
        id: &str,
        token: &str,
        at_ms: i64,
    ) -> StoreResult<bool>;
    /// Every `active` workflow with a `schedule` trigger, across workspaces.
    async fn list_active_schedules(&self) -> StoreResult<Vec<WorkflowRecord>>;
    /// Every saved version, oldest first; empty if the workflow is not in the workspace.
    async fn list_workflow_versions(&self, workspace_id: &str, id: &str)
        -> StoreResult<Vec<WorkflowVersion>>;
}

/// Runs and their steps. Every write a worker makes is guarded by its lease (`owner`) and the
/// run still being `running`, so a worker that lost its lease (or a cancelled run) writes nothing.
#[async_trait]
pub trait RunRepo {
    /// Inserts a queued run. With an idempotency key, a live run holding the same key in the same
    /// workflow is returned instead (keys older than `key_ttl_ms` are released first).
    async fn insert_run(&self, run: &RunRecord, key_ttl_ms: i64) -> StoreResult<InsertRun> {
        self.insert_claimed_run(run, key_ttl_ms, None).await
    }
    /// [`RunRepo::insert_run`], and with `claim = Some((owner, lease_until_ms))` the new run is
    /// inserted already claimed by `owner` (`running`), in the same commit, so this instance can
    /// hand it to a local worker without another write.
    async fn insert_claimed_run(
        &self,
        run: &RunRecord,
        key_ttl_ms: i64,
        claim: Option<(&str, i64)>,
    ) -> StoreResult<InsertRun> {
        let (inserted, _) = self
            .insert_counted_run(run, key_ttl_ms, claim, None, Vec::new())
            .await?;
        Ok(inserted.expect("only a rate hit can refuse the insert"))
    }
    /// [`RunRepo::insert_claimed_run`], first counting `rate`'s hit in the same commit (as
    /// [`RunRepo::hit_rate_window`] does): past its limit nothing is inserted (`None`; the hit
    /// stays counted). Returns the hits counted so far in the window, with `rate`. `uses`: audit
    /// entries appended in the same commit when the run is inserted (the `secret.used` entries
    /// of its first step, made ready before the insert), and not otherwise.
    async fn insert_counted_run(
        &self,
        run: &RunRecord,
        key_ttl_ms: i64,
        claim: Option<(&str, i64)>,
        rate: Option<RateHit<'_>>,
        uses: Vec<AuditEvent>,
    ) -> StoreResult<(Option<InsertRun>, Option<i64>)>;
    async fn get_run(&self, workspace_id: &str, id: &str) -> StoreResult<Option<RunRecord>>;
    /// Newest first, filtered; also returns the total matching.
    async fn list_runs(
        &self,
        workspace_id: &str,
        workflow_id: Option<&str>,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<RunRecord>, i64)>;
    async fn run_steps(&self, run_id: &str) -> StoreResult<Vec<StepRecord>>;
    /// Claims one due run (queued, parked and due, or with an expired lease) for `owner`. A run
    /// claimed more than `max_run_attempts` times without a step result in between is failed
    /// instead (its worker keeps dying), and the next due run is claimed.
    async fn claim_run(&self, owner: &str, now_ms: i64, lease_ms: i64) -> StoreResult<Option<RunRecord>>;
    /// Extends the lease; false if it was lost or the run is no longer running.
    async fn renew_lease(&self, run_id: &str, owner: &str, until_ms: i64) -> StoreResult<bool>;
    /// Records a step result and where the run goes next.
    async fn save_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        next_step: i64,
    ) -> StoreResult<bool> {
        self.save_steps(run_id, owner, std::slice::from_ref(step), next_step, None)
            .await
    }
    /// Records step results, where the run goes next and, with `end`, the run's end, all in one
    /// commit; false (and nothing written) if the lease was lost or the run is no longer running.
    async fn save_steps(
        &self,
        run_id: &str,
        owner: &str,
        steps: &[StepRecord],
        next_step: i64,
        end: Option<RunEnd<'_>>,
    ) -> StoreResult<bool> {
        self.save_steps_audited(run_id, owner, steps, next_step, end, Vec::new())
            .await
    }
    /// [`RunRepo::save_steps`], appending `audit` (the outcomes of the step's secret uses) in the
    /// same commit. The audit events are written even when the lease was lost: they record
    /// requests already sent.
    async fn save_steps_audited(
        &self,
        run_id: &str,
        owner: &str,
        steps: &[StepRecord],
        next_step: i64,
        end: Option<RunEnd<'_>>,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool>;
    /// Releases the lease until `wake_at` (a delay step); no worker is held meanwhile.
    async fn park_run(&self, run_id: &str, owner: &str, wake_at: i64) -> StoreResult<bool>;
    /// Ends the run as `completed` or `failed`.
    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: &str,
        error: Option<&str>,
        at_ms: i64,
    ) -> StoreResult<bool> {
        let end = RunEnd { status, error, at_ms };
        // next_step is left as it is: -1 means "unchanged".
        self.save_steps(run_id, owner, &[], -1, Some(end)).await
    }
    /// Cancels a run that has not finished.
    async fn cancel_run(&self, workspace_id: &str, id: &str, at_ms: i64) -> StoreResult<CancelRun>;
    /// Records the firing of schedule tick `tick_at` and inserts its run, atomically; false (and
    /// nothing inserted) if that tick has already fired, on this instance or another.
    async fn insert_scheduled_run(&self, run: &RunRecord, tick_at: i64) -> StoreResult<bool>;
    /// The latest tick fired for a workflow.
    async fn last_schedule_tick(&self, workflow_id: &str) -> StoreResult<Option<i64>>;
    /// Counts one hit in the caller's window and returns the count so far.
    async fn hit_rate_window(&self, bucket: &str, window_start_ms: i64) -> StoreResult<i64>;
}

#[async_trait]
pub trait MasterKeyRepo {
    /// Every stored (key id, check value).
    async fn master_key_checks(&self) -> StoreResult<Vec<(String, Vec<u8>)>>;
    async fn insert_master_key_check(&self, id: &str, check: &[u8], at_ms: i64) -> StoreResult<()>;
}

/// Webhook signatures already accepted, so a replayed signed call is refused on every instance.
#[async_trait]
pub trait HookSignatureRepo {
    /// Records `signature` as used for `workflow_id` until `expires_at_ms` (and drops records that
    /// expired before `now_ms`); false if it was already recorded: the call is a replay.
    async fn remember_hook_signature(
        &self,
        workflow_id: &str,
        signature: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Forgets a recorded signature whose call was refused afterwards, so it may be sent again.
    async fn forget_hook_signature(&self, workflow_id: &str, signature: &str) -> StoreResult<()>;
}

/// The run queue as a whole, for the queue gauges of `/metrics`.
#[async_trait]
pub trait QueueRepo {
    /// The runs a worker could claim at `now_ms` (queued and due, parked and due, or running
    /// under an expired lease), and the earliest time one of them became due.
    async fn due_runs(&self, now_ms: i64) -> StoreResult<DueRuns>;
}

/// Everything the application needs from a backend.
#[async_trait]
pub trait Store:
    WorkspaceRepo
    + ApiKeyRepo
    + KeyAdminRepo
    + FileRepo
    + SecretRepo
    + WorkflowRepo
    + RunRepo
    + MasterKeyRepo
    + KeyRingRepo
    + HookSignatureRepo
    + QueueRepo
    + UserRepo
    + AuditRepo
    + Send
    + Sync
{
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Sends the id of every run that ends on *another* instance sharing this database to
    /// `ended` (PostgreSQL `LISTEN/NOTIFY`), so `?wait=` callers wake without polling. A backend
    /// that cannot be shared (SQLite) does nothing.
    async fn listen_run_ends(&self, ended: tokio::sync::mpsc::UnboundedSender<String>) -> StoreResult<()> {
        let _ = ended;
        Ok(())
    }
    /// Which backend this is, for logs.
    fn backend(&self) -> &'static str;
    /// The group-commit writer's latency and batch-size figures, for `/metrics`.
    fn commit_metrics(&self) -> crate::metrics::CommitMetrics {
        crate::metrics::CommitMetrics::default()
    }
}

/// Opens (creating and migrating if needed) the store a database URL names.
///
/// Only the scheme chooses the backend; anything else is refused with what to write instead.
pub async fn open(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(database_url, StoreOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(database_url: &str, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        let parsed = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(database_url)?;
        let file = parsed.get_filename();
        if file.as_os_str() != ":memory:" {
            crate::files::prepare_sqlite_file(file).map_err(|source| StoreError::DataDir {
                path: file.display().to_string(),
                source,
            })?;
        }
        Ok(Arc::new(SqlStore::open_sqlite(database_url, options).await?))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(SqlStore::open_pg(database_url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl(format!(
            "unsupported database URL scheme in {:?}: write sqlite://PATH (e.g. sqlite://./data/sealflow.db) \
             or postgres://USER@HOST:PORT/DATABASE",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
}
