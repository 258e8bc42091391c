//! The one SQL store behind every backend: a [`Db`] holding a SQLite or a PostgreSQL backend, and
//! each repository written once against it.
//!
//! Statements use `$n` placeholders, which SQLite accepts too, and the same tables and columns on
//! both backends; [`on_db!`] (reads) and [`write_db!`] (writes) compile one body for each backend,
//! so a statement and its row mapping exist once. Code branches on the `pg` flag only where the
//! dialects really differ: `seq` (SQLite takes `MAX(seq) + 1` under its single writer, PostgreSQL
//! an identity column), the secret-count limit (an advisory lock on PostgreSQL), and the claim
//! (`FOR UPDATE SKIP LOCKED`).
//!
//! Writes on the hot path go through the backend's [`writer::Writer`] (group commit); reads use
//! the pool. SQLite runs `synchronous = FULL`: an acknowledged write must survive a crash of the
//! machine, not only of the process.

mod accounts;
mod audit;
mod files;
mod hooks;
mod key_admin;
mod keyring;
#[cfg(test)]
mod plans;
mod queue;
mod rows;
mod runs;
mod users;
mod workflows;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, PgPool, Pool, Postgres, Sqlite};

use super::{Store, StoreError, StoreOptions, StoreResult};
use writer::Writer;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL connections per instance (the writer's one plus the readers'); a fleet multiplies
/// this, so keep it well under the server's `max_connections`.
const PG_POOL_SIZE: u32 = 10;
const SQLITE_READERS: u32 = 8;
/// Page cache per SQLite reader connection (`PRAGMA cache_size`; negative: KiB), see `open_sqlite`.
const READER_CACHE_KIB: &str = "-1024";
/// The channel run ends are announced on (PostgreSQL `NOTIFY`, payload: the run id).
pub(crate) const RUN_ENDED_CHANNEL: &str = "sealflow_run_ended";

/// A pool for reads and the writer for batched writes.
#[derive(Debug)]
pub struct Backend<DB: Database> {
    pool: Pool<DB>,
    writer: Writer<DB>,
}

/// A clone shares the pool and the writer.
impl<DB: Database> Clone for Backend<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl<DB: Database> Backend<DB> {
    /// The pool, for tests that inspect or tamper with rows directly.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

/// The backend a store runs on.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(Backend<Sqlite>),
    Pg(Backend<Postgres>),
}

/// Runs one body against whichever read pool `$store.db` holds: `on_db!(self, |pool| …)`, or
/// `on_db!(self, |pool, pg| …)` to also get `pg: bool` for a dialect branch. The body is compiled
/// once per backend, so it may use `pool` (and transactions begun on it) with any sqlx call.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::sql::Db::Sqlite(b) => {
                let $pool = &b.pool;
                $body
            }
            $crate::store::sql::Db::Pg(b) => {
                let $pool = &b.pool;
                $body
            }
        }
    };
    ($store:expr, |$pool:ident, $pg:ident| $body:expr) => {
        match &$store.db {
            $crate::store::sql::Db::Sqlite(b) => {
                let ($pool, $pg) = (&b.pool, false);
                $body
            }
            $crate::store::sql::Db::Pg(b) => {
                let ($pool, $pg) = (&b.pool, true);
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// Runs one body as a write of the next group commit and returns its result once that commit
/// has returned: `write_db!(self, |conn, pg| …)`, or `write_db!(self, |conn, pg, batch| …)` for
/// a body that leaves audit entries or notifications in its [`writer::Batch`], optionally with
/// `order = Some(row name),` first (see [`writer::Writer::write`]). `conn` is the
/// writer's connection inside the open transaction (use `&mut *conn` as the executor). An error
/// undoes only this body's changes (its batch is rolled back and the other bodies run again, see
/// `writer.rs`), so a body may run more than once and must own what it uses (`move`, `Clone`):
/// clone arguments first.
macro_rules! write_db {
    ($store:expr, |$conn:ident, $pg:ident| $body:expr) => {
        $crate::store::sql::write_db!($store, order = None, |$conn, $pg, _batch| $body)
    };
    ($store:expr, |$conn:ident, $pg:ident, $batch:ident| $body:expr) => {
        $crate::store::sql::write_db!($store, order = None, |$conn, $pg, $batch| $body)
    };
    ($store:expr, order = $order:expr, |$conn:ident, $pg:ident, $batch:ident| $body:expr) => {
        match &$store.db {
            $crate::store::sql::Db::Sqlite(b) => {
                b.writer
                    .write($order, move |$conn, $batch| {
                        Box::pin(async move {
                            let $pg = false;
                            let out: $crate::store::StoreResult<_> = $body;
                            out
                        })
                    })
                    .await
            }
            $crate::store::sql::Db::Pg(b) => {
                b.writer
                    .write($order, move |$conn, $batch| {
                        Box::pin(async move {
                            let $pg = true;
                            let out: $crate::store::StoreResult<_> = $body;
                            out
                        })
                    })
                    .await
            }
        }
    };
}
pub(crate) use write_db;

/// A store over SQLite or PostgreSQL.
#[derive(Debug)]
pub struct SqlStore {
    db: Db,
    options: StoreOptions,
}

/// The store opened on a SQLite file (the same type as [`PgStore`]; the names say which `open`).
pub type SqliteStore = SqlStore;
/// The store opened on a PostgreSQL database.
pub type PgStore = SqlStore;

impl SqlStore {
    /// Opens `sqlite://PATH`, creating the file's directory and the file, then migrates.
    pub async fn open_sqlite(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = connect
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // Readers never write on the hot path, so they need no pre-acquire ping either. Each
        // connection keeps its own page cache, which a large history fills: at SQLite's default
        // (2,000 KiB) a filled one cost 2.6 MB of RSS, 1.7 MB at 1 MiB (measured on 1,000,000
        // runs), so about 7 MB less for the eight. 1 MiB still keeps the inner pages of the
        // indexes a read walks; a leaf missed is a read from the OS's cache.
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .test_before_acquire(false)
            .connect_with(connect.clone().pragma("cache_size", READER_CACHE_KIB))
            .await?;
        SQLITE_MIGRATOR.run(&pool).await?;
        // One writer connection: SQLite has one writer at a time anyway, and owning it means no
        // writer of ours ever sleeps in the busy handler behind another.
        let open_writer = move || -> writer::BoxFuture<'static, _> {
            Box::pin(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .test_before_acquire(false)
                    .connect_with(connect),
            )
        };
        let writer = Writer::start(open_writer, "BEGIN IMMEDIATE", finish_sqlite).await?;
        let db = Db::Sqlite(Backend { pool, writer });
        Ok(Self { db, options })
    }

    /// Connects to `postgres://…` and migrates. sqlx's migrator takes an advisory lock, so
    /// instances starting together migrate once.
    pub async fn open_pg(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(PG_POOL_SIZE - 1)
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        PG_MIGRATOR.run(&pool).await?;
        let open_writer = move || -> writer::BoxFuture<'static, _> {
            Box::pin(
                PgPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .connect_with(connect),
            )
        };
        let writer = Writer::start(open_writer, "BEGIN", finish_pg).await?;
        let db = Db::Pg(Backend { pool, writer });
        Ok(Self { db, options })
    }

    /// The backend, for tests that inspect or tamper with rows directly.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// What the writer runs before each commit: writes what the batch's jobs left in their
/// [`writer::Batch`]: the audit entries (each chain's head read and moved once) and, on
/// PostgreSQL, the run-end notifications in one statement.
fn finish_sqlite<'c>(
    conn: &'c mut sqlx::SqliteConnection,
    batch: &'c mut writer::Batch,
) -> writer::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        audit::append_entries!(conn, false, batch.events, &mut Vec::new(), Some(&mut batch.heads));
        Ok(())
    })
}

fn finish_pg<'c>(
    conn: &'c mut sqlx::PgConnection,
    batch: &'c mut writer::Batch,
) -> writer::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        audit::append_entries!(
            conn,
            true,
            batch.events,
            &mut batch.notices,
            Some(&mut batch.heads)
        );
        if !batch.notices.is_empty() {
            sqlx::query("SELECT pg_notify($1, n) FROM UNNEST($2::text[]) AS n")
                .bind(RUN_ENDED_CHANNEL)
                .bind(&batch.notices)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    })
}

/// Forwards PostgreSQL run-end notifications to `ended` until it is closed; reconnects after a
/// lost connection (a `?wait=` caller also re-reads the run now and then, so a gap only delays).
async fn forward_run_ends(pool: PgPool, ended: tokio::sync::mpsc::UnboundedSender<String>) {
    while !ended.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for run ends; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(RUN_ENDED_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for run ends; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        while let Ok(n) = listener.recv().await {
            if ended.send(n.payload().to_owned()).is_err() {
                return;
            }
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await.map(drop)
        })?;
        Ok(())
    }

    async fn listen_run_ends(&self, ended: tokio::sync::mpsc::UnboundedSender<String>) -> StoreResult<()> {
        if let Db::Pg(b) = &self.db {
            tokio::spawn(forward_run_ends(b.pool.clone(), ended));
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    fn commit_metrics(&self) -> crate::metrics::CommitMetrics {
        match &self.db {
            Db::Sqlite(b) => b.writer.commits().clone(),
            Db::Pg(b) => b.writer.commits().clone(),
        }
    }
}
