//! One storage suite, generated for every backend by [`storage_tests!`]: each test body takes an
//! `Arc<dyn Store>` and runs once on a fresh SQLite file (`sqlite::…`) and once on a fresh
//! PostgreSQL database (`postgres::…`), so the two backends are held to the same contract.
//!
//! PostgreSQL: set `SEALFLOW_TEST_POSTGRES_URL` to a server where the user may create databases,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres` (`scripts/test` sets it). Each test creates
//! `sf_test_<random>` there and drops it afterwards, pass or fail. When the variable is unset the
//! PostgreSQL variants FAIL with `PostgreSQL storage tests NOT RUN: …` rather than pass silently;
//! set `SEALFLOW_SKIP_POSTGRES=1` to skip them on purpose.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use sealflow::ids::new_id;
use sealflow::store::{
    ApiKeyRecord, AuditEvent, AuditFilter, CancelRun, InsertRun, InsertSecret, PageRequest, Role, RunEnd,
    RunRecord, SecretRecord, StepRecord, Store, StoreOptions, WorkflowRecord, GENESIS_HASH,
};
use sealflow::vault::SealedSecret;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

/// Every test body is bounded, so a stuck lock fails the test instead of hanging CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// An arbitrary "now"; the store takes time as a parameter, so tests need no real clock.
const NOW: i64 = 1_800_000_000_000;
const LEASE_MS: i64 = 30_000;

/// `storage_tests!(a, b; with_url: c)`: `a` and `b` take the store, `c` also the database URL
/// (to check rows over a connection of its own).
macro_rules! storage_tests {
    ($($name:ident),+ $(,)?; with_url: $($url_name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::on_sqlite(crate::$name).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $url_name() {
                    crate::on_sqlite_url(crate::$url_name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::on_postgres(crate::$name).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $url_name() {
                    crate::on_postgres_url(crate::$url_name).await;
                }
            )+
        }
    };
}

storage_tests!(
    api_keys_are_disabled_enabled_renamed_and_spend_credits_up_to_their_limit,
    files_keep_their_rows_in_order_and_batch_rows_join_their_results,
    workspaces_are_created_once_and_found_by_id_or_slug,
    master_key_checks_are_stored_once_per_key,
    the_key_ring_names_one_current_key_and_retires_only_unused_keys,
    rewrapped_data_keys_change_only_the_wrap_and_only_if_the_row_is_unchanged,
    the_rewrap_lease_is_held_by_one_owner_until_it_lapses,
    api_keys_are_found_by_hash_until_revoked_or_deleted,
    secrets_are_inserted_up_to_the_limit_and_never_twice_by_name,
    concurrent_secret_inserts_never_exceed_the_limit,
    secret_replacement_is_guarded_by_the_expected_version,
    secrets_are_listed_by_name_with_their_allowed_hosts,
    workflows_are_listed_newest_first_with_paging_and_status_filter,
    workflow_updates_are_guarded_by_version_and_keep_every_version,
    a_repeated_idempotency_key_returns_the_existing_run_until_it_expires,
    concurrent_inserts_with_one_idempotency_key_create_one_run,
    a_due_run_is_claimed_by_one_worker_until_its_lease_expires,
    a_parked_or_future_run_is_claimable_only_after_wake_at,
    due_runs_are_what_a_worker_could_claim_with_the_earliest_wake_time,
    guarded_writes_fail_for_a_wrong_owner_or_after_cancel,
    cancelling_reports_finished_and_missing_runs,
    runs_are_listed_newest_first_and_filtered_by_workflow_and_status,
    rate_windows_count_hits_per_bucket_and_window,
    counted_inserts_stop_exactly_at_the_limit_under_concurrency,
    concurrent_claimers_never_claim_the_same_run_twice,
    a_schedule_tick_fires_once_across_concurrent_instances,
    webhook_tokens_find_and_rotate_only_their_workflow,
    a_run_inserted_claimed_is_running_under_its_owner_and_not_claimable,
    the_last_step_and_the_run_end_are_written_together,
    a_failing_write_in_a_batch_is_undone_alone_while_the_others_commit,
    a_run_whose_worker_keeps_dying_is_failed_after_the_attempt_limit,
    users_memberships_and_sessions_keep_to_their_workspace_and_expiry,
    concurrent_audit_appends_keep_every_chain_unbroken,
    step_outcome_entries_are_kept_even_when_the_lease_was_lost;
    with_url:
    two_stores_appending_to_one_chain_in_turn_keep_it_unbroken,
    run_totals_stay_exact_through_every_transition,
    concurrent_run_ends_keep_the_totals_exact,
    the_run_counts_migration_counts_the_runs_that_ended_before_it,
);

#[test]
fn migration_folders_have_identical_file_names() {
    let names = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"), "migration folders drifted apart");
}

// ---------------------------------------------------------------------------------------------
// Backends

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite_url(|store, _url| test(store)).await;
}

async fn on_sqlite_url<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    tokio::time::timeout(TEST_TIMEOUT, test(open_store(&url, "sqlite").await, url))
        .await
        .expect("storage test timed out");
}

async fn open_store(url: &str, backend: &str) -> Arc<dyn Store> {
    let store = sealflow::store::open(url).await.expect("open store");
    assert_eq!(store.backend(), backend);
    store
}

/// The server URL, or None when PostgreSQL is explicitly skipped; panics when it is merely unset.
fn postgres_server_url() -> Option<String> {
    match std::env::var("SEALFLOW_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("SEALFLOW_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("PostgreSQL storage tests skipped: SEALFLOW_SKIP_POSTGRES=1");
            None
        }
        _ => {
            let msg = "PostgreSQL storage tests NOT RUN: SEALFLOW_TEST_POSTGRES_URL is unset";
            eprintln!("{msg}");
            panic!("{msg} (set it, e.g. postgres://postgres@127.0.0.1:5432/postgres, or set SEALFLOW_SKIP_POSTGRES=1 to skip on purpose)");
        }
    }
}

/// `server` with its database path replaced by `database`, keeping any `?query`.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, ""), |(b, q)| (b, q));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{database}{query}", &base[..path_start])
}

async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    on_postgres_url(|store, _url| test(store)).await;
}

async fn on_postgres_url<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    in_postgres_database(|url| async move {
        let store = open_store(&url, "postgres").await;
        test(store, url).await;
    })
    .await;
}

/// Runs `test` with the URL of a fresh PostgreSQL database, dropped afterwards, pass or fail.
async fn in_postgres_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(server) = postgres_server_url() else {
        return;
    };
    let database = format!("sf_test_{}", sealflow::ids::random_base62(16).to_lowercase());
    let mut admin = PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to SEALFLOW_TEST_POSTGRES_URL: {e}"));
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("create test database");
    let url = with_database(&server, &database);
    let outcome = AssertUnwindSafe(async {
        tokio::time::timeout(TEST_TIMEOUT, test(url))
            .await
            .expect("storage test timed out");
    })
    .catch_unwind()
    .await;
    // FORCE ends the store's pooled connections, which may outlive the dropped store briefly.
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await
        .expect("drop test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

async fn workspace(store: &Arc<dyn Store>, slug: &str) -> String {
    store.ensure_workspace(slug).await.unwrap().id
}

fn api_key(workspace_id: &str, hash: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: new_id("key"),
        workspace_id: workspace_id.into(),
        name: "ci".into(),
        role: Role::Member,
        key_hash: hash.into(),
        key_preview: "sf_live_abc…".into(),
        created_at: NOW,
        last_used: None,
        total_requests: 0,
        revoked_at: None,
        credit_limit: None,
        credits_used: 0,
    }
}

fn secret(workspace_id: &str, name: &str, version: i64, hosts: Option<Vec<&str>>) -> SecretRecord {
    SecretRecord {
        workspace_id: workspace_id.into(),
        name: name.into(),
        version,
        sealed: SealedSecret {
            kek_id: "kek_test".into(),
            wrapped_dek: vec![1, 2, 3, 0, 255],
            ciphertext: format!("ct-{name}-{version}").into_bytes(),
        },
        allowed_hosts: hosts.map(|h| h.into_iter().map(String::from).collect()),
        created_at: NOW,
        updated_at: NOW + version,
    }
}

fn workflow(workspace_id: &str, name: &str, status: &str) -> WorkflowRecord {
    WorkflowRecord {
        id: new_id("wf"),
        workspace_id: workspace_id.into(),
        name: name.into(),
        description: format!("{name} description"),
        status: status.into(),
        trigger: json!({"type": "manual"}),
        steps: json!([{"id": "s1", "type": "delay", "seconds": 1}]),
        template_id: None,
        version: 1,
        webhook_token: None,
        // One shared timestamp: ordering must come from creation order, not the clock.
        created_at: NOW,
        updated_at: NOW,
    }
}

fn run(workspace_id: &str, workflow_id: &str, key: Option<&str>, created_at: i64) -> RunRecord {
    RunRecord {
        id: new_id("run"),
        workspace_id: workspace_id.into(),
        workflow_id: workflow_id.into(),
        workflow_name: "nightly".into(),
        workflow_version: 1,
        definition: std::sync::Arc::new(json!({"trigger": {"type": "manual"}, "steps": []})),
        status: "queued".into(),
        trigger_type: "manual".into(),
        input: json!({"n": 1}),
        error: None,
        next_step: 0,
        wake_at: created_at,
        idempotency_key: key.map(String::from),
        request_hash: key.map(|k| format!("hash-{k}")),
        created_at,
        started_at: None,
        completed_at: None,
        steps_completed: 0,
    }
}

fn step(idx: i64, status: &str) -> StepRecord {
    StepRecord {
        idx,
        step_id: format!("s{idx}"),
        step_type: "http".into(),
        status: status.into(),
        output: (status == "completed").then(|| json!({"status": 200})),
        error: None,
        attempts: 1,
        started_at: Some(NOW),
        completed_at: (status != "running").then_some(NOW + 5),
    }
}

const ALL: PageRequest = PageRequest {
    offset: 0,
    limit: 100,
};

// ---------------------------------------------------------------------------------------------
// Workspaces, master keys, API keys

async fn workspaces_are_created_once_and_found_by_id_or_slug(store: Arc<dyn Store>) {
    let first = store.ensure_workspace("acme").await.unwrap();
    let again = store.ensure_workspace("acme").await.unwrap();
    assert_eq!(first, again);
    assert!(first.id.starts_with("ws_"), "{}", first.id);
    let other = store.ensure_workspace("globex").await.unwrap();
    assert_ne!(first.id, other.id);
    assert_eq!(
        store.find_workspace(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.find_workspace("acme").await.unwrap(), Some(first));
    assert_eq!(store.find_workspace("initech").await.unwrap(), None);
}

async fn the_key_ring_names_one_current_key_and_retires_only_unused_keys(store: Arc<dyn Store>) {
    use sealflow::store::{RetireKey, WrappedRoot};
    assert_eq!(store.current_master_key().await.unwrap(), None);
    assert_eq!(
        store.init_key_ring("mk_a", b"check-a", NOW).await.unwrap(),
        "mk_a"
    );
    // A second instance starting at the same time keeps the first one's key.
    assert_eq!(
        store.init_key_ring("mk_b", b"check-b", NOW).await.unwrap(),
        "mk_a"
    );
    assert_eq!(store.current_master_key().await.unwrap().as_deref(), Some("mk_a"));
    assert!(!store.set_current_master_key("mk_unknown", NOW).await.unwrap());
    store
        .insert_derivation_root(
            &WrappedRoot {
                kek_id: "mk_a".into(),
                wrapped: vec![1],
            },
            NOW,
        )
        .await
        .unwrap();
    store
        .insert_derivation_root(
            &WrappedRoot {
                kek_id: "mk_b".into(),
                wrapped: vec![2],
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        store.derivation_root().await.unwrap(),
        Some(WrappedRoot {
            kek_id: "mk_a".into(),
            wrapped: vec![1]
        }),
        "the first root stays"
    );
    let ws = store.ensure_workspace("acme").await.unwrap();
    let mut row = secret(&ws.id, "TOKEN", 1, None);
    row.sealed.kek_id = "mk_a".into();
    store.insert_secret(&row, 10, "test").await.unwrap();

    assert!(store.set_current_master_key("mk_b", NOW + 1).await.unwrap());
    assert_eq!(
        store.retire_master_key("mk_b", NOW).await.unwrap(),
        RetireKey::Current
    );
    assert_eq!(
        store.retire_master_key("mk_a", NOW).await.unwrap(),
        RetireKey::InUse {
            data_keys: 1,
            derivation_root: true
        }
    );
    assert_eq!(
        store.retire_master_key("mk_zzz", NOW).await.unwrap(),
        RetireKey::NotFound
    );
    assert!(store
        .rewrap_derivation_root(
            "mk_a",
            &WrappedRoot {
                kek_id: "mk_b".into(),
                wrapped: vec![3]
            }
        )
        .await
        .unwrap());
    assert!(
        !store
            .rewrap_derivation_root(
                "mk_a",
                &WrappedRoot {
                    kek_id: "mk_b".into(),
                    wrapped: vec![4]
                }
            )
            .await
            .unwrap(),
        "a root rewrapped meanwhile is left alone"
    );
    assert!(store.delete_secret(&ws.id, "TOKEN", "test").await.unwrap());
    assert_eq!(
        store.retire_master_key("mk_a", NOW + 2).await.unwrap(),
        RetireKey::Retired
    );
    assert_eq!(
        store.retire_master_key("mk_a", NOW + 3).await.unwrap(),
        RetireKey::AlreadyRetired
    );
    let keys = store.master_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.id.as_str(), k.retired_at))
            .collect::<Vec<_>>(),
        vec![("mk_a", Some(NOW + 2)), ("mk_b", None)]
    );
    assert!(
        !store.set_current_master_key("mk_a", NOW).await.unwrap(),
        "a retired key cannot be current"
    );
}

async fn rewrapped_data_keys_change_only_the_wrap_and_only_if_the_row_is_unchanged(store: Arc<dyn Store>) {
    store.init_key_ring("mk_old", b"c", NOW).await.unwrap();
    let ws = store.ensure_workspace("acme").await.unwrap();
    for name in ["A", "B", "C"] {
        let mut row = secret(&ws.id, name, 1, None);
        row.sealed.kek_id = "mk_old".into();
        store.insert_secret(&row, 10, "test").await.unwrap();
    }
    let mut fresh = secret(&ws.id, "D", 1, None);
    fresh.sealed.kek_id = "mk_new".into();
    store.insert_secret(&fresh, 10, "test").await.unwrap();
    let todo = store.data_keys_to_rewrap("mk_new", 2).await.unwrap();
    assert_eq!(todo.len(), 2, "bounded by the limit");
    let mut all = store.data_keys_to_rewrap("mk_new", 100).await.unwrap();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    // B is replaced between the read and the write: its row is left to the replace.
    let mut replaced = secret(&ws.id, "B", 2, None);
    replaced.sealed.kek_id = "mk_new".into();
    assert!(store.replace_secret(&replaced, 1, "test").await.unwrap());
    let batch = all
        .iter()
        .map(|r| (r.clone(), "mk_new".to_owned(), vec![9, 9]))
        .collect();
    assert_eq!(store.store_rewrapped(batch).await.unwrap(), 2);
    let a = store.get_secret(&ws.id, "A").await.unwrap().unwrap();
    assert_eq!(
        (a.sealed.kek_id.as_str(), a.sealed.wrapped_dek.as_slice()),
        ("mk_new", &[9u8, 9][..])
    );
    assert_eq!(
        a.sealed.ciphertext, b"ct-A-1",
        "the value's ciphertext is untouched"
    );
    let b = store.get_secret(&ws.id, "B").await.unwrap().unwrap();
    assert_eq!(b.sealed, replaced.sealed);
    assert!(store.data_keys_to_rewrap("mk_new", 100).await.unwrap().is_empty());
    assert_eq!(
        store.data_keys_per_master_key().await.unwrap(),
        vec![("mk_new".to_owned(), 4)]
    );
}

async fn the_rewrap_lease_is_held_by_one_owner_until_it_lapses(store: Arc<dyn Store>) {
    store.init_key_ring("mk_a", b"c", NOW).await.unwrap();
    assert!(store.claim_rewrap("one", NOW, NOW + 1000, false).await.unwrap());
    assert!(!store
        .claim_rewrap("two", NOW + 10, NOW + 1010, false)
        .await
        .unwrap());
    assert!(
        store
            .claim_rewrap("one", NOW + 20, NOW + 1020, false)
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        store
            .claim_rewrap("two", NOW + 1021, NOW + 2021, false)
            .await
            .unwrap(),
        "lapsed"
    );
    assert!(
        store
            .claim_rewrap("cli", NOW + 1022, NOW + 2022, true)
            .await
            .unwrap(),
        "forced"
    );
    assert!(!store
        .claim_rewrap("two", NOW + 1023, NOW + 2023, false)
        .await
        .unwrap());
}

async fn master_key_checks_are_stored_once_per_key(store: Arc<dyn Store>) {
    assert!(store.master_key_checks().await.unwrap().is_empty());
    store
        .insert_master_key_check("mk_a", b"check-a", NOW)
        .await
        .unwrap();
    store
        .insert_master_key_check("mk_a", b"other", NOW + 1)
        .await
        .unwrap();
    store
        .insert_master_key_check("mk_b", &[0, 1, 255], NOW + 2)
        .await
        .unwrap();
    assert_eq!(
        store.master_key_checks().await.unwrap(),
        vec![
            ("mk_a".to_string(), b"check-a".to_vec()),
            ("mk_b".to_string(), vec![0, 1, 255])
        ]
    );
}

async fn api_keys_are_found_by_hash_until_revoked_or_deleted(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let key = api_key(&ws, "hash-1");
    store.insert_api_key(&key, "test").await.unwrap();
    let found = store
        .find_active_api_key("hash-1")
        .await
        .unwrap()
        .expect("active key");
    assert_eq!(
        (found.id.as_str(), found.role, found.total_requests),
        (key.id.as_str(), Role::Member, 0)
    );
    assert!(store.find_active_api_key("hash-2").await.unwrap().is_none());

    store.touch_api_key(&key.id, 1, NOW + 10).await.unwrap();
    store.touch_api_key(&key.id, 3, NOW + 20).await.unwrap();
    let listed = store.list_api_keys(&ws).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].total_requests, listed[0].last_used),
        (4, Some(NOW + 20))
    );
    assert!(store.list_api_keys(&other_ws).await.unwrap().is_empty());

    assert!(
        !store
            .revoke_api_key(&other_ws, &key.id, NOW, "test")
            .await
            .unwrap(),
        "other workspace"
    );
    assert!(store
        .revoke_api_key(&ws, &key.id, NOW + 30, "test")
        .await
        .unwrap());
    assert!(store.find_active_api_key("hash-1").await.unwrap().is_none());
    // A second revoke keeps the first revocation time.
    store
        .revoke_api_key(&ws, &key.id, NOW + 99, "test")
        .await
        .unwrap();
    assert_eq!(
        store.list_api_keys(&ws).await.unwrap()[0].revoked_at,
        Some(NOW + 30)
    );

    assert!(!store.delete_api_key(&other_ws, &key.id, "test").await.unwrap());
    assert!(store.delete_api_key(&ws, &key.id, "test").await.unwrap());
    assert!(!store.delete_api_key(&ws, &key.id, "test").await.unwrap());
    assert!(store.list_api_keys(&ws).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Secrets

async fn secrets_are_inserted_up_to_the_limit_and_never_twice_by_name(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    assert_eq!(
        store
            .insert_secret(&secret(&ws, "a", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::Inserted
    );
    assert_eq!(
        store
            .insert_secret(&secret(&ws, "a", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::NameExists
    );
    assert_eq!(
        store
            .insert_secret(&secret(&ws, "b", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::Inserted
    );
    assert_eq!(
        store
            .insert_secret(&secret(&ws, "c", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::LimitReached
    );
    // At the limit an existing name is still reported as existing, and the limit is per workspace.
    assert_eq!(
        store
            .insert_secret(&secret(&ws, "a", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::NameExists
    );
    assert_eq!(
        store
            .insert_secret(&secret(&other_ws, "c", 1, None), 2, "test")
            .await
            .unwrap(),
        InsertSecret::Inserted
    );
    let stored = store.get_secret(&ws, "b").await.unwrap().expect("b");
    assert_eq!(stored.sealed, secret(&ws, "b", 1, None).sealed);
    assert!(store.get_secret(&ws, "c").await.unwrap().is_none());
}

async fn concurrent_secret_inserts_never_exceed_the_limit(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let row = secret(&ws, &format!("s{i:02}"), 1, None);
            tokio::spawn(async move { store.insert_secret(&row, 3, "test").await.unwrap() })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        match task.await.unwrap() {
            InsertSecret::Inserted => inserted += 1,
            InsertSecret::LimitReached => {}
            InsertSecret::NameExists => panic!("names are distinct"),
        }
    }
    assert_eq!(inserted, 3);
    assert_eq!(store.list_secrets(&ws).await.unwrap().len(), 3);
}

async fn secret_replacement_is_guarded_by_the_expected_version(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    store
        .insert_secret(&secret(&ws, "token", 1, None), 10, "test")
        .await
        .unwrap();
    let v2 = secret(&ws, "token", 2, Some(vec!["api.example.com"]));
    assert!(store.replace_secret(&v2, 1, "test").await.unwrap());
    // A writer that read version 1 lost the race.
    assert!(!store
        .replace_secret(&secret(&ws, "token", 2, None), 1, "test")
        .await
        .unwrap());
    let stored = store.get_secret(&ws, "token").await.unwrap().expect("token");
    assert_eq!(
        (stored.version, stored.sealed, stored.allowed_hosts),
        (2, v2.sealed, v2.allowed_hosts)
    );
    assert!(!store
        .replace_secret(&secret(&ws, "missing", 2, None), 1, "test")
        .await
        .unwrap());

    assert!(store.delete_secret(&ws, "token", "test").await.unwrap());
    assert!(!store.delete_secret(&ws, "token", "test").await.unwrap());
    assert!(store.get_secret(&ws, "token").await.unwrap().is_none());
}

async fn secrets_are_listed_by_name_with_their_allowed_hosts(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    for (name, hosts) in [
        ("zeta", None),
        ("alpha", Some(vec!["a.example", "b.example"])),
        ("mid", Some(vec![])),
    ] {
        store
            .insert_secret(&secret(&ws, name, 1, hosts), 10, "test")
            .await
            .unwrap();
    }
    let listed = store.list_secrets(&ws).await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    assert_eq!(
        listed[0].allowed_hosts,
        Some(vec!["a.example".to_string(), "b.example".to_string()])
    );
    assert_eq!(listed[1].allowed_hosts, Some(vec![]));
    assert_eq!(listed[2].allowed_hosts, None);
    assert!(store.list_secrets(&other_ws).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Workflows

async fn workflows_are_listed_newest_first_with_paging_and_status_filter(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let wf = workflow(
            &ws,
            &format!("wf{i}"),
            if i % 2 == 0 { "active" } else { "draft" },
        );
        store.insert_workflow(&wf).await.unwrap();
        ids.push(wf.id);
    }
    store
        .insert_workflow(&workflow(&other_ws, "elsewhere", "active"))
        .await
        .unwrap();

    let page = |offset, limit| PageRequest { offset, limit };
    let (first, total) = store.list_workflows(&ws, None, page(0, 2)).await.unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        first.iter().map(|w| &w.id).collect::<Vec<_>>(),
        [&ids[4], &ids[3]]
    );
    let (second, _) = store.list_workflows(&ws, None, page(2, 2)).await.unwrap();
    assert_eq!(
        second.iter().map(|w| &w.id).collect::<Vec<_>>(),
        [&ids[2], &ids[1]]
    );
    let (last, _) = store.list_workflows(&ws, None, page(4, 2)).await.unwrap();
    assert_eq!(last.iter().map(|w| &w.id).collect::<Vec<_>>(), [&ids[0]]);

    let (active, total) = store.list_workflows(&ws, Some("active"), ALL).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        active.iter().map(|w| &w.id).collect::<Vec<_>>(),
        [&ids[4], &ids[2], &ids[0]]
    );
    assert_eq!(
        store.list_workflows(&ws, Some("paused"), ALL).await.unwrap(),
        (vec![], 0)
    );

    let fetched = store.get_workflow(&ws, &ids[1]).await.unwrap().expect("wf1");
    assert_eq!(fetched, workflow_with_id(&ws, "wf1", "draft", &ids[1]));
    assert!(store.get_workflow(&other_ws, &ids[1]).await.unwrap().is_none());
}

fn workflow_with_id(ws: &str, name: &str, status: &str, id: &str) -> WorkflowRecord {
    WorkflowRecord {
        id: id.into(),
        ..workflow(ws, name, status)
    }
}

async fn workflow_updates_are_guarded_by_version_and_keep_every_version(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let v1 = workflow(&ws, "nightly", "draft");
    store.insert_workflow(&v1).await.unwrap();
    let v2 = WorkflowRecord {
        name: "nightly-v2".into(),
        status: "active".into(),
        steps: json!([]),
        version: 2,
        updated_at: NOW + 1_000,
        ..v1.clone()
    };
    assert!(store.update_workflow(&v2, 1).await.unwrap());
    // A second writer that also read version 1 must not overwrite version 2.
    let stale = WorkflowRecord {
        name: "stale".into(),
        ..v2.clone()
    };
    assert!(!store.update_workflow(&stale, 1).await.unwrap());
    assert_eq!(store.get_workflow(&ws, &v1.id).await.unwrap(), Some(v2.clone()));

    let versions = store.list_workflow_versions(&ws, &v1.id).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.name.as_str()))
            .collect::<Vec<_>>(),
        [(1, "nightly"), (2, "nightly-v2")]
    );
    assert_eq!(versions[1].steps, json!([]));
    assert_eq!(versions[1].created_at, NOW + 1_000);
    assert!(store
        .list_workflow_versions(&other_ws, &v1.id)
        .await
        .unwrap()
        .is_empty());

    assert!(!store.delete_workflow(&other_ws, &v1.id).await.unwrap());
    assert!(store.delete_workflow(&ws, &v1.id).await.unwrap());
    assert!(!store.delete_workflow(&ws, &v1.id).await.unwrap());
    assert!(store.get_workflow(&ws, &v1.id).await.unwrap().is_none());
    assert!(store
        .list_workflow_versions(&ws, &v1.id)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .update_workflow(&WorkflowRecord { version: 3, ..v2 }, 2)
        .await
        .unwrap());
}

// ---------------------------------------------------------------------------------------------
// Runs

async fn a_repeated_idempotency_key_returns_the_existing_run_until_it_expires(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let ttl = 60_000;
    let first = run(&ws, "wf_a", Some("k1"), NOW);
    assert_eq!(store.insert_run(&first, ttl).await.unwrap(), InsertRun::Inserted);
    match store
        .insert_run(&run(&ws, "wf_a", Some("k1"), NOW + 10), ttl)
        .await
        .unwrap()
    {
        InsertRun::Existing(existing) => {
            assert_eq!(existing.id, first.id);
            assert_eq!(existing.request_hash.as_deref(), Some("hash-k1"));
        }
        InsertRun::Inserted => panic!("a live key must return the existing run"),
    }
    // The same key in another workflow, and no key at all, never collide.
    assert_eq!(
        store
            .insert_run(&run(&ws, "wf_b", Some("k1"), NOW), ttl)
            .await
            .unwrap(),
        InsertRun::Inserted
    );
    assert_eq!(
        store.insert_run(&run(&ws, "wf_a", None, NOW), ttl).await.unwrap(),
        InsertRun::Inserted
    );
    assert_eq!(
        store.insert_run(&run(&ws, "wf_a", None, NOW), ttl).await.unwrap(),
        InsertRun::Inserted
    );
    // Once the key is older than its TTL it is released and a new run takes it.
    let later = run(&ws, "wf_a", Some("k1"), NOW + ttl + 1);
    assert_eq!(store.insert_run(&later, ttl).await.unwrap(), InsertRun::Inserted);
    match store
        .insert_run(&run(&ws, "wf_a", Some("k1"), NOW + ttl + 2), ttl)
        .await
        .unwrap()
    {
        InsertRun::Existing(existing) => assert_eq!(existing.id, later.id),
        InsertRun::Inserted => panic!("the key now belongs to the later run"),
    }
    assert!(
        store.get_run(&ws, &first.id).await.unwrap().is_some(),
        "the old run itself stays"
    );
}

async fn concurrent_inserts_with_one_idempotency_key_create_one_run(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let row = run(&ws, "wf_a", Some("same"), NOW);
            tokio::spawn(async move { (row.id.clone(), store.insert_run(&row, 60_000).await.unwrap()) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut returned = HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            (id, InsertRun::Inserted) => winners.push(id),
            (_, InsertRun::Existing(existing)) => {
                returned.insert(existing.id);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins");
    assert!(
        returned.iter().all(|id| *id == winners[0]),
        "{returned:?} vs {winners:?}"
    );
    assert_eq!(store.list_runs(&ws, None, None, ALL).await.unwrap().1, 1);
}

async fn a_due_run_is_claimed_by_one_worker_until_its_lease_expires(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let queued = run(&ws, "wf_a", None, NOW);
    store.insert_run(&queued, 0).await.unwrap();
    let claimed = store
        .claim_run("worker-a", NOW, LEASE_MS)
        .await
        .unwrap()
        .expect("a due run");
    assert_eq!(
        (claimed.id.as_str(), claimed.status.as_str()),
        (queued.id.as_str(), "running")
    );
    assert_eq!(claimed.started_at, Some(NOW));
    assert!(
        store
            .claim_run("worker-b", NOW + 1, LEASE_MS)
            .await
            .unwrap()
            .is_none(),
        "leased"
    );
    assert!(
        store
            .claim_run("worker-b", NOW + LEASE_MS, LEASE_MS)
            .await
            .unwrap()
            .is_none(),
        "lease ends after"
    );

    let taken = store
        .claim_run("worker-b", NOW + LEASE_MS + 1, LEASE_MS)
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!(taken.id, queued.id);
    assert_eq!(taken.started_at, Some(NOW), "the first start time is kept");
    assert!(
        !store
            .renew_lease(&queued.id, "worker-a", NOW + 99_999)
            .await
            .unwrap(),
        "worker-a lost it"
    );
    assert!(store
        .renew_lease(&queued.id, "worker-b", NOW + 10 * LEASE_MS)
        .await
        .unwrap());
    assert!(
        store
            .claim_run("worker-c", NOW + 3 * LEASE_MS, LEASE_MS)
            .await
            .unwrap()
            .is_none(),
        "renewed"
    );
}

async fn a_parked_or_future_run_is_claimable_only_after_wake_at(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let future = RunRecord {
        wake_at: NOW + 5_000,
        ..run(&ws, "wf_a", None, NOW)
    };
    store.insert_run(&future, 0).await.unwrap();
    assert!(
        store.claim_run("w", NOW, LEASE_MS).await.unwrap().is_none(),
        "not due yet"
    );
    let claimed = store
        .claim_run("w", NOW + 5_000, LEASE_MS)
        .await
        .unwrap()
        .expect("due");
    assert_eq!(claimed.id, future.id);

    assert!(store
        .save_step(&future.id, "w", &step(0, "completed"), 1)
        .await
        .unwrap());
    assert!(store.park_run(&future.id, "w", NOW + 60_000).await.unwrap());
    // Parking releases the lease, but the run still waits for wake_at.
    assert!(store
        .claim_run("v", NOW + 59_999, LEASE_MS)
        .await
        .unwrap()
        .is_none());
    assert!(
        !store
            .save_step(&future.id, "w", &step(1, "completed"), 2)
            .await
            .unwrap(),
        "parked run has no owner"
    );
    let woken = store
        .claim_run("v", NOW + 60_000, LEASE_MS)
        .await
        .unwrap()
        .expect("woken");
    assert_eq!(
        (woken.id.as_str(), woken.next_step, woken.steps_completed),
        (future.id.as_str(), 1, 1)
    );
}

async fn due_runs_are_what_a_worker_could_claim_with_the_earliest_wake_time(store: Arc<dyn Store>) {
    let due = |at| {
        let store = store.clone();
        async move {
            let d = store.due_runs(at).await.unwrap();
            (d.count, d.oldest_wake_at)
        }
    };
    assert_eq!(due(NOW).await, (0, None));
    let ws = workspace(&store, "acme").await;
    let oldest = run(&ws, "wf_a", None, NOW - 3_000);
    let later = run(&ws, "wf_a", None, NOW - 1_000);
    let future = run(&ws, "wf_a", None, NOW + 5_000);
    for r in [&oldest, &later, &future] {
        store.insert_run(r, 0).await.unwrap();
    }
    assert_eq!(
        due(NOW).await,
        (2, Some(NOW - 3_000)),
        "the future run is not due"
    );
    // A claimed run is not due while its lease holds, and due again once it has expired.
    let claimed = store.claim_run("w", NOW, LEASE_MS).await.unwrap().expect("due");
    assert_eq!(claimed.id, oldest.id);
    assert_eq!(due(NOW).await, (1, Some(NOW - 1_000)));
    assert_eq!(due(NOW + LEASE_MS + 1).await, (3, Some(NOW - 3_000)));
    // A finished run never is.
    assert!(store
        .finish_run(&oldest.id, "w", "completed", None, NOW + 1)
        .await
        .unwrap());
    assert_eq!(due(NOW + LEASE_MS + 1).await, (2, Some(NOW - 1_000)));
}

async fn guarded_writes_fail_for_a_wrong_owner_or_after_cancel(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let queued = run(&ws, "wf_a", None, NOW);
    store.insert_run(&queued, 0).await.unwrap();
    store
        .claim_run("owner", NOW, LEASE_MS)
        .await
        .unwrap()
        .expect("claim");

    assert!(!store
        .save_step(&queued.id, "intruder", &step(0, "completed"), 1)
        .await
        .unwrap());
    assert!(!store
        .renew_lease(&queued.id, "intruder", NOW + LEASE_MS)
        .await
        .unwrap());
    assert!(!store.park_run(&queued.id, "intruder", NOW + 1).await.unwrap());
    assert!(!store
        .finish_run(&queued.id, "intruder", "completed", None, NOW)
        .await
        .unwrap());
    assert!(store.run_steps(&queued.id).await.unwrap().is_empty());

    assert!(store
        .save_step(&queued.id, "owner", &step(0, "completed"), 1)
        .await
        .unwrap());
    assert!(store
        .save_step(&queued.id, "owner", &step(1, "running"), 1)
        .await
        .unwrap());
    let fetched = store.get_run(&ws, &queued.id).await.unwrap().expect("run");
    assert_eq!((fetched.next_step, fetched.steps_completed), (1, 1));

    assert_eq!(
        store.cancel_run(&ws, &queued.id, NOW + 7).await.unwrap(),
        CancelRun::Cancelled
    );
    assert!(!store
        .save_step(&queued.id, "owner", &step(1, "completed"), 2)
        .await
        .unwrap());
    assert!(!store
        .renew_lease(&queued.id, "owner", NOW + LEASE_MS)
        .await
        .unwrap());
    assert!(!store.park_run(&queued.id, "owner", NOW + 1).await.unwrap());
    assert!(!store
        .finish_run(&queued.id, "owner", "completed", None, NOW + 8)
        .await
        .unwrap());

    let steps = store.run_steps(&queued.id).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        ["completed", "cancelled"]
    );
    assert_eq!(steps[0].output, Some(json!({"status": 200})));
    assert_eq!(steps[1].completed_at, Some(NOW + 7));
    let cancelled = store.get_run(&ws, &queued.id).await.unwrap().expect("run");
    assert_eq!(
        (cancelled.status.as_str(), cancelled.completed_at),
        ("cancelled", Some(NOW + 7))
    );
    assert!(store
        .claim_run("other", NOW + 10 * LEASE_MS, LEASE_MS)
        .await
        .unwrap()
        .is_none());
}

async fn cancelling_reports_finished_and_missing_runs(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let done = run(&ws, "wf_a", None, NOW);
    store.insert_run(&done, 0).await.unwrap();
    store.claim_run("w", NOW, LEASE_MS).await.unwrap().expect("claim");
    assert!(store
        .finish_run(&done.id, "w", "failed", Some("boom"), NOW + 3)
        .await
        .unwrap());
    let failed = store.get_run(&ws, &done.id).await.unwrap().expect("run");
    assert_eq!(
        (failed.status.as_str(), failed.error.as_deref()),
        ("failed", Some("boom"))
    );
    assert_eq!(
        store.cancel_run(&ws, &done.id, NOW + 4).await.unwrap(),
        CancelRun::AlreadyFinished("failed".into())
    );

    let queued = run(&ws, "wf_a", None, NOW);
    store.insert_run(&queued, 0).await.unwrap();
    assert_eq!(
        store.cancel_run(&other_ws, &queued.id, NOW).await.unwrap(),
        CancelRun::NotFound
    );
    assert_eq!(
        store.cancel_run(&ws, "run_missing", NOW).await.unwrap(),
        CancelRun::NotFound
    );
    assert_eq!(
        store.cancel_run(&ws, &queued.id, NOW).await.unwrap(),
        CancelRun::Cancelled
    );
    assert_eq!(
        store.cancel_run(&ws, &queued.id, NOW).await.unwrap(),
        CancelRun::AlreadyFinished("cancelled".into())
    );
    assert!(
        store.claim_run("w", NOW + 1, LEASE_MS).await.unwrap().is_none(),
        "cancelled is not claimable"
    );
}

async fn runs_are_listed_newest_first_and_filtered_by_workflow_and_status(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let row = run(&ws, if i % 2 == 0 { "wf_a" } else { "wf_b" }, None, NOW);
        store.insert_run(&row, 0).await.unwrap();
        ids.push(row.id);
    }
    store
        .insert_run(&run(&other_ws, "wf_a", None, NOW), 0)
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_run("w", NOW, LEASE_MS)
            .await
            .unwrap()
            .expect("claim")
            .id,
        ids[0],
        "oldest first"
    );

    let ids_of = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let (all, total) = store.list_runs(&ws, None, None, ALL).await.unwrap();
    assert_eq!(
        (ids_of(all), total),
        (
            vec![ids[3].clone(), ids[2].clone(), ids[1].clone(), ids[0].clone()],
            4
        )
    );
    let (paged, total) = store
        .list_runs(&ws, None, None, PageRequest { offset: 1, limit: 2 })
        .await
        .unwrap();
    assert_eq!((ids_of(paged), total), (vec![ids[2].clone(), ids[1].clone()], 4));
    let (wf_a, total) = store.list_runs(&ws, Some("wf_a"), None, ALL).await.unwrap();
    assert_eq!((ids_of(wf_a), total), (vec![ids[2].clone(), ids[0].clone()], 2));
    let (running, total) = store.list_runs(&ws, None, Some("running"), ALL).await.unwrap();
    assert_eq!((ids_of(running), total), (vec![ids[0].clone()], 1));
    let (queued_b, total) = store
        .list_runs(&ws, Some("wf_b"), Some("queued"), ALL)
        .await
        .unwrap();
    assert_eq!(
        (ids_of(queued_b), total),
        (vec![ids[3].clone(), ids[1].clone()], 2)
    );
    assert_eq!(
        store
            .list_runs(&ws, Some("wf_a"), Some("failed"), ALL)
            .await
            .unwrap()
            .1,
        0
    );
}

async fn counted_inserts_stop_exactly_at_the_limit_under_concurrency(store: Arc<dyn Store>) {
    use sealflow::store::RateHit;
    let ws = workspace(&store, "acme").await;
    let runs: Vec<RunRecord> = (0..12).map(|i| run(&ws, "wf_a", None, NOW + i)).collect();
    let results = futures::future::join_all(runs.iter().map(|r| {
        store.insert_counted_run(
            r,
            0,
            None,
            Some(RateHit {
                bucket: "hook:wf_a",
                window_start: NOW,
                limit: 5,
            }),
            Vec::new(),
        )
    }))
    .await;
    let mut inserted = 0;
    let mut hits: Vec<i64> = Vec::new();
    for result in results {
        let (outcome, counted) = result.unwrap();
        inserted += usize::from(outcome.is_some());
        hits.push(counted.expect("a counted insert reports its hits"));
    }
    hits.sort_unstable();
    assert_eq!(inserted, 5, "exactly the limit is inserted");
    assert_eq!(
        hits,
        (1..=12).collect::<Vec<_>>(),
        "every hit counted once, in order"
    );
    let (listed, total) = store
        .list_runs(&ws, Some("wf_a"), None, PageRequest { limit: 50, offset: 0 })
        .await
        .unwrap();
    assert_eq!((listed.len(), total), (5, 5));
    assert_eq!(store.hit_rate_window("hook:wf_a", NOW).await.unwrap(), 13);
}

async fn rate_windows_count_hits_per_bucket_and_window(store: Arc<dyn Store>) {
    for expected in 1..=3 {
        assert_eq!(store.hit_rate_window("key_a", NOW).await.unwrap(), expected);
    }
    assert_eq!(store.hit_rate_window("key_b", NOW).await.unwrap(), 1);
    assert_eq!(
        store.hit_rate_window("key_a", NOW + 60_000).await.unwrap(),
        1,
        "a new window starts at 1"
    );
    assert_eq!(store.hit_rate_window("key_a", NOW + 60_000).await.unwrap(), 2);
    assert_eq!(
        store.hit_rate_window("key_b", NOW).await.unwrap(),
        2,
        "buckets are independent"
    );

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.hit_rate_window("key_c", NOW).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts.sort();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<_>>(),
        "every concurrent hit is counted once"
    );
}

async fn concurrent_claimers_never_claim_the_same_run_twice(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let mut queued = HashSet::new();
    for i in 0..50 {
        let row = run(&ws, "wf_a", None, NOW - 50 + i);
        store.insert_run(&row, 0).await.unwrap();
        queued.insert(row.id);
    }
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = format!("worker-{w}");
                let mut mine = Vec::new();
                while let Some(claimed) = store.claim_run(&owner, NOW, LEASE_MS).await.unwrap() {
                    mine.push(claimed.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), unique.len(), "a run was claimed twice");
    assert_eq!(unique, queued, "every queued run is claimed exactly once");
}

// ---------------------------------------------------------------------------------------------
// Triggers

async fn a_schedule_tick_fires_once_across_concurrent_instances(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let scheduled = WorkflowRecord {
        trigger: json!({"type": "schedule", "cron": "*/5 * * * *"}),
        ..workflow(&ws, "every-5", "active")
    };
    store.insert_workflow(&scheduled).await.unwrap();
    store
        .insert_workflow(&workflow(&ws, "manual", "active"))
        .await
        .unwrap();
    let paused = WorkflowRecord {
        id: new_id("wf"),
        status: "paused".into(),
        ..scheduled.clone()
    };
    store.insert_workflow(&paused).await.unwrap();
    let active: Vec<_> = store
        .list_active_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(active, [scheduled.id.as_str()]);

    assert_eq!(store.last_schedule_tick(&scheduled.id).await.unwrap(), None);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let row = RunRecord {
                trigger_type: "schedule".into(),
                ..run(&ws, &scheduled.id, None, NOW)
            };
            tokio::spawn(async move { store.insert_scheduled_run(&row, NOW).await.unwrap() })
        })
        .collect();
    let mut fired = 0;
    for task in tasks {
        fired += usize::from(task.await.unwrap());
    }
    assert_eq!(fired, 1, "one tick, one run");
    assert_eq!(
        store
            .list_runs(&ws, Some(&scheduled.id), None, ALL)
            .await
            .unwrap()
            .1,
        1
    );
    let next = RunRecord {
        trigger_type: "schedule".into(),
        ..run(&ws, &scheduled.id, None, NOW + 300_000)
    };
    assert!(store.insert_scheduled_run(&next, NOW + 300_000).await.unwrap());
    assert_eq!(
        store.last_schedule_tick(&scheduled.id).await.unwrap(),
        Some(NOW + 300_000)
    );
}

async fn webhook_tokens_find_and_rotate_only_their_workflow(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let other_ws = workspace(&store, "globex").await;
    let hooked = WorkflowRecord {
        trigger: json!({"type": "webhook"}),
        webhook_token: Some("tok_one".into()),
        ..workflow(&ws, "hook", "active")
    };
    let plain = workflow(&ws, "plain", "active");
    store.insert_workflow(&hooked).await.unwrap();
    store.insert_workflow(&plain).await.unwrap();
    let found = store
        .find_workflow_by_webhook_token("tok_one")
        .await
        .unwrap()
        .expect("by token");
    assert_eq!(found.id, hooked.id);
    assert!(store
        .find_workflow_by_webhook_token("tok_two")
        .await
        .unwrap()
        .is_none());

    assert!(!store
        .rotate_webhook_token(&other_ws, &hooked.id, "tok_two", NOW + 5)
        .await
        .unwrap());
    assert!(
        !store
            .rotate_webhook_token(&ws, &plain.id, "tok_two", NOW + 5)
            .await
            .unwrap(),
        "no webhook"
    );
    assert!(store
        .rotate_webhook_token(&ws, &hooked.id, "tok_two", NOW + 5)
        .await
        .unwrap());
    assert!(store
        .find_workflow_by_webhook_token("tok_one")
        .await
        .unwrap()
        .is_none());
    let rotated = store
        .find_workflow_by_webhook_token("tok_two")
        .await
        .unwrap()
        .expect("rotated");
    assert_eq!((rotated.id, rotated.updated_at), (hooked.id, NOW + 5));
}

// ---------------------------------------------------------------------------------------------
// The hot path: claimed inserts, combined writes, batches, the attempt limit

async fn a_run_inserted_claimed_is_running_under_its_owner_and_not_claimable(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let r = run(&ws, "wf_a", None, NOW);
    let inserted = store
        .insert_claimed_run(&r, 0, Some(("inst/c1", NOW + LEASE_MS)))
        .await
        .unwrap();
    assert_eq!(inserted, InsertRun::Inserted);
    let got = store.get_run(&ws, &r.id).await.unwrap().expect("stored");
    assert_eq!((got.status.as_str(), got.started_at), ("running", Some(NOW)));
    assert!(
        store
            .claim_run("other", NOW + 1, LEASE_MS)
            .await
            .unwrap()
            .is_none(),
        "a run claimed at insert is leased like any claimed run"
    );
    assert!(!store
        .save_step(&r.id, "other", &step(0, "completed"), 1)
        .await
        .unwrap());
    assert!(store
        .save_step(&r.id, "inst/c1", &step(0, "completed"), 1)
        .await
        .unwrap());
}

async fn the_last_step_and_the_run_end_are_written_together(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let r = run(&ws, "wf_a", None, NOW);
    store
        .insert_claimed_run(&r, 0, Some(("owner", NOW + LEASE_MS)))
        .await
        .unwrap();
    let end = RunEnd {
        status: "completed",
        error: None,
        at_ms: NOW + 5,
    };
    let steps = [step(0, "completed"), step(1, "skipped")];
    assert!(store
        .save_steps(&r.id, "owner", &steps, 2, Some(end))
        .await
        .unwrap());
    let got = store.get_run(&ws, &r.id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.status.as_str(),
            got.completed_at,
            got.next_step,
            got.steps_completed
        ),
        ("completed", Some(NOW + 5), 2, 1)
    );
    let recorded = store.run_steps(&r.id).await.unwrap();
    assert_eq!(
        recorded.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        ["completed", "skipped"]
    );
    assert!(
        !store
            .save_steps(&r.id, "owner", &[step(2, "completed")], 3, None)
            .await
            .unwrap(),
        "an ended run takes no more writes"
    );
}

async fn a_failing_write_in_a_batch_is_undone_alone_while_the_others_commit(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let runs: Vec<RunRecord> = (0..24).map(|_| run(&ws, "wf_a", None, NOW)).collect();
    for r in &runs {
        store
            .insert_claimed_run(r, 0, Some(("owner", NOW + LEASE_MS)))
            .await
            .unwrap();
    }
    // All at once, so they share group commits; run 0's step breaks a CHECK constraint after its
    // guard already moved next_step, so undoing it must undo that too (its batch is rolled back
    // and the other writes run again).
    let writes = runs.iter().enumerate().map(|(i, r)| {
        let store = store.clone();
        let id = r.id.clone();
        async move {
            let status = if i == 0 { "bogus" } else { "completed" };
            store.save_step(&id, "owner", &step(0, status), 7).await
        }
    });
    let results = futures::future::join_all(writes).await;
    assert!(results[0].is_err(), "the broken write fails: {:?}", results[0]);
    for (i, result) in results.iter().enumerate().skip(1) {
        assert!(matches!(result, Ok(true)), "write {i}: {result:?}");
    }
    let broken = store.get_run(&ws, &runs[0].id).await.unwrap().unwrap();
    assert_eq!(broken.next_step, 0, "the failed write left nothing behind");
    assert!(store.run_steps(&runs[0].id).await.unwrap().is_empty());
    for r in &runs[1..] {
        let got = store.get_run(&ws, &r.id).await.unwrap().unwrap();
        assert_eq!((got.next_step, got.steps_completed), (7, 1), "{}", r.id);
    }
}

/// The rows two instances' batches take in opposite orders: runs (their writes name no row, so
/// each batch takes them as its jobs come), or rate-limit windows (named, so sorted).
#[derive(Clone, Copy, PartialEq)]
enum Crossing {
    Runs,
    RateWindows,
}

/// Two instances whose next batches take rows `b1, x, b2` and `b2, y, b1`. The order is forced:
/// each writer is first held on a row another connection has locked while its next batch queues
/// up in order; those batches then stop on `x` and `y`, held by a third connection, and are let
/// go together, holding `b1` and `b2` respectively. Returns every write's outcome (as text) and
/// the deadlocks PostgreSQL counted in the database.
async fn crossing_batches(url: &str, rows: Crossing) -> (Vec<Result<String, String>>, i64) {
    let a = sealflow::store::open(url).await.expect("open instance A");
    let b = sealflow::store::open(url).await.expect("open instance B");
    let ws = workspace(&a, "acme").await;
    let mut ids = std::collections::HashMap::new();
    for name in ["w_a", "w_b", "x", "y", "b1", "b2"] {
        let id = match rows {
            Crossing::Runs => {
                let r = run(&ws, "wf_a", None, NOW);
                a.insert_run(&r, 0).await.unwrap();
                r.id
            }
            Crossing::RateWindows => name.to_owned(),
        };
        ids.insert(name, id);
    }
    let lock = |names: [&'static str; 2]| {
        let (url, ids) = (url.to_owned(), ids.clone());
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            conn.execute("BEGIN").await.unwrap();
            for name in names {
                let sql = match rows {
                    Crossing::Runs => "SELECT 1 FROM runs WHERE id = $1 FOR UPDATE",
                    Crossing::RateWindows => {
                        "INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($1, 0, 1)"
                    }
                };
                sqlx::query(sql)
                    .bind(&ids[name])
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            conn
        }
    };
    let waiting = |n: i64| {
        let url = url.to_owned();
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            for _ in 0..400 {
                let locked: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                if locked >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("fewer than {n} sessions ever waited for a lock");
        }
    };
    let write = |store: &Arc<dyn Store>, name: &str| {
        let (store, ws, id) = (store.clone(), ws.clone(), ids[name].clone());
        tokio::spawn(async move {
            let done = match rows {
                Crossing::Runs => store.cancel_run(&ws, &id, NOW).await.map(|c| format!("{c:?}")),
                Crossing::RateWindows => store.hit_rate_window(&id, 0).await.map(|h| h.to_string()),
            };
            done.map_err(|e| format!("{e:?}"))
        })
    };
    let mut holders = lock(["w_a", "w_b"]).await;
    let mut crossing = lock(["x", "y"]).await;
    // Each writer is held on its first batch ...
    let firsts = [write(&a, "w_a"), write(&b, "w_b")];
    waiting(2).await;
    // ... while its next batch queues up, in order.
    let mut writes = Vec::new();
    for (store, name) in [
        (&a, "b1"),
        (&a, "x"),
        (&a, "b2"),
        (&b, "b2"),
        (&b, "y"),
        (&b, "b1"),
    ] {
        writes.push(write(store, name));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holders.execute("COMMIT").await.unwrap();
    // Once both first batches have committed, the sessions that wait are the second batches.
    for first in firsts {
        first.await.unwrap().expect("a first batch commits");
    }
    waiting(2).await;
    crossing.execute("COMMIT").await.unwrap();
    let mut results = Vec::new();
    for w in writes {
        results.push(w.await.unwrap());
    }
    // A backend's statistics reach pg_stat_database when it exits: end every other session.
    drop((a, b));
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for _ in 0..200 {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let deadlocks: i64 =
        sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    (results, deadlocks)
}

/// Writes that name no row take them in their batch's order, so two instances' batches can
/// deadlock; PostgreSQL then cancels one statement, and the writer must run the cancelled batch
/// again rather than fail its callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_batches_that_deadlock_across_instances_run_again_and_commit() {
    in_postgres_database(|url| async move {
        let (results, deadlocks) = crossing_batches(&url, Crossing::Runs).await;
        assert!(deadlocks >= 1, "the batches deadlocked: {deadlocks}");
        assert!(
            results.iter().all(Result::is_ok),
            "every write commits, the deadlock's loser included: {results:?}"
        );
        // Each of b1 and b2 is cancelled once: the batch that ran again finds them finished.
        for row in [0, 2] {
            let other = if row == 0 { 5 } else { 3 };
            let mut pair = [results[row].clone().unwrap(), results[other].clone().unwrap()];
            pair.sort();
            assert_eq!(pair[0], "AlreadyFinished(\"cancelled\")", "{results:?}");
            assert_eq!(pair[1], "Cancelled", "{results:?}");
        }
    })
    .await;
}

/// Rate-limit windows, rows every request of a hook or key takes, are named by their writes, so
/// every batch takes them in the same order and batches never deadlock on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_batches_take_rate_windows_in_one_order_and_never_deadlock() {
    in_postgres_database(|url| async move {
        let (results, deadlocks) = crossing_batches(&url, Crossing::RateWindows).await;
        assert_eq!(deadlocks, 0, "{results:?}");
        // Each write counted once on top of the locking connection's hit (x and y) or alone.
        let hits: Vec<String> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(hits.len(), 6);
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let counted: Vec<(String, i64)> =
            sqlx::query_as("SELECT bucket, hits FROM rate_limit_windows ORDER BY bucket")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let expected: Vec<(String, i64)> = [("b1", 2), ("b2", 2), ("w_a", 2), ("w_b", 2), ("x", 2), ("y", 2)]
            .into_iter()
            .map(|(bucket, hits)| (bucket.to_owned(), hits))
            .collect();
        assert_eq!(counted, expected);
    })
    .await;
}

async fn a_run_whose_worker_keeps_dying_is_failed_after_the_attempt_limit(store: Arc<dyn Store>) {
    let limit = StoreOptions::default().max_run_attempts;
    let ws = workspace(&store, "acme").await;
    let doomed = run(&ws, "wf_a", None, NOW);
    store.insert_run(&doomed, 0).await.unwrap();
    let mut at = NOW;
    for attempt in 1..=limit {
        let claimed = store
            .claim_run(&format!("w{attempt}"), at, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(
            claimed.map(|r| r.id),
            Some(doomed.id.clone()),
            "attempt {attempt}"
        );
        at += LEASE_MS + 1; // the worker died: its lease runs out
    }
    assert!(store.claim_run("w-last", at, LEASE_MS).await.unwrap().is_none());
    let failed = store.get_run(&ws, &doomed.id).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains(&format!("{limit} attempts")) && error.contains("SEALFLOW_MAX_RUN_ATTEMPTS"),
        "the error names the limit: {error}"
    );

    // A run that records a step between claims makes progress and is never failed for it.
    let steady = run(&ws, "wf_a", None, at);
    store.insert_run(&steady, 0).await.unwrap();
    for attempt in 0..(limit * 2) {
        let owner = format!("s{attempt}");
        let claimed = store.claim_run(&owner, at, LEASE_MS).await.unwrap();
        assert_eq!(
            claimed.map(|r| r.id),
            Some(steady.id.clone()),
            "attempt {attempt}"
        );
        assert!(store
            .save_step(&steady.id, &owner, &step(0, "running"), 0)
            .await
            .unwrap());
        if attempt + 1 == limit * 2 {
            assert!(store
                .finish_run(&steady.id, &owner, "completed", None, at)
                .await
                .unwrap());
        }
        at += LEASE_MS + 1;
    }

    // So does a batch run that records rows between claims (a long file run restarted often).
    let batch = run(&ws, "wf_a", None, at);
    store.insert_run(&batch, 0).await.unwrap();
    for attempt in 0..(limit * 2) {
        let owner = format!("b{attempt}");
        let claimed = store.claim_run(&owner, at, LEASE_MS).await.unwrap();
        assert_eq!(claimed.map(|r| r.id), Some(batch.id.clone()), "attempt {attempt}");
        let item = sealflow::store::BatchItem {
            idx: attempt,
            status: "completed".into(),
            output: None,
            error: None,
        };
        assert!(store
            .save_batch_items(&batch.id, &owner, &[item], attempt + 1, Vec::new())
            .await
            .unwrap());
        at += LEASE_MS + 1;
    }
}

async fn api_keys_are_disabled_enabled_renamed_and_spend_credits_up_to_their_limit(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let key = api_key(&ws, "hash-credits");
    store.insert_api_key(&key, "test").await.unwrap();
    assert!(!store
        .set_api_key_enabled("ws_other", &key.id, false, NOW, "test")
        .await
        .unwrap());
    assert!(store
        .set_api_key_enabled(&ws, &key.id, false, NOW, "test")
        .await
        .unwrap());
    assert!(store.find_active_api_key("hash-credits").await.unwrap().is_none());
    assert!(store
        .set_api_key_enabled(&ws, &key.id, true, NOW, "test")
        .await
        .unwrap());
    assert!(store.find_active_api_key("hash-credits").await.unwrap().is_some());
    assert!(store
        .rename_api_key(&ws, &key.id, "renamed", "test")
        .await
        .unwrap());
    assert!(store
        .set_api_key_credit_limit(&ws, &key.id, Some(1), "test")
        .await
        .unwrap());
    assert!(store.charge_api_key_credit(&key.id).await.unwrap());
    assert!(
        !store.charge_api_key_credit(&key.id).await.unwrap(),
        "charged past the limit"
    );
    store.refund_api_key_credit(&key.id).await.unwrap();
    assert!(store.charge_api_key_credit(&key.id).await.unwrap());
    let listed = &store.list_api_keys(&ws).await.unwrap()[0];
    assert_eq!(
        (listed.name.as_str(), listed.credits_used, listed.credit_limit),
        ("renamed", 1, Some(1))
    );
    assert!(store
        .set_api_key_credit_limit(&ws, &key.id, None, "test")
        .await
        .unwrap());
    assert!(store.charge_api_key_credit(&key.id).await.unwrap());
}

async fn files_keep_their_rows_in_order_and_batch_rows_join_their_results(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let file = sealflow::store::FileRecord {
        id: new_id("file"),
        workspace_id: ws.clone(),
        workflow_id: None,
        filename: "a.csv".into(),
        columns: vec!["email".into()],
        identifier_type: "email".into(),
        identifier_column: "email".into(),
        row_count: 0,
        created_at: NOW,
    };
    store.insert_file(&file).await.unwrap();
    let rows: Vec<String> = (0..700)
        .map(|i| json!([format!("u{i}@x.com")]).to_string())
        .collect();
    store.insert_file_rows(&file.id, 0, &rows).await.unwrap();
    store.set_file_row_count(&file.id, 700).await.unwrap();
    let got = store.get_file(&ws, &file.id).await.unwrap().unwrap();
    assert_eq!(
        (got.row_count, got.columns.clone()),
        (700, vec!["email".to_owned()])
    );
    assert!(store.get_file("ws_other", &file.id).await.unwrap().is_none());
    let page = store.file_rows(&file.id, 650, 100).await.unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0], (650, vec!["u650@x.com".to_owned()]));
    let joined = store.batch_rows("run_none", &file.id, 0, 3).await.unwrap();
    assert_eq!(joined.len(), 3);
    assert!(joined.iter().all(|r| r.item.is_none()));
    let item = sealflow::store::BatchItem {
        idx: 0,
        status: "completed".into(),
        output: Some(json!({"a": 1})),
        error: None,
    };
    assert!(
        !store
            .save_batch_items("run_none", "nobody", &[item], 1, Vec::new())
            .await
            .unwrap(),
        "wrote without a lease"
    );
    assert_eq!(store.batch_counts("run_none").await.unwrap(), (0, 0));
    store.delete_file(&file.id).await.unwrap();
    assert!(store.file_rows(&file.id, 0, 10).await.unwrap().is_empty());
}

async fn users_memberships_and_sessions_keep_to_their_workspace_and_expiry(store: Arc<dyn Store>) {
    use sealflow::store::{SessionRecord, UserRecord};
    let acme = store.ensure_workspace("acme").await.unwrap();
    let beta = store.ensure_workspace("beta").await.unwrap();
    let user = UserRecord {
        id: new_id("usr"),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$stub".into(),
        created_at: NOW,
    };
    assert!(store.insert_user(&user).await.unwrap());
    let twin = UserRecord {
        id: new_id("usr"),
        ..user.clone()
    };
    assert!(!store.insert_user(&twin).await.unwrap(), "emails are unique");
    assert_eq!(
        store
            .find_user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        user.id
    );
    assert_eq!(
        store.get_user(&user.id).await.unwrap().unwrap().email,
        "ada@example.com"
    );

    store
        .upsert_membership(&user.id, &beta.id, Role::Readonly, NOW)
        .await
        .unwrap();
    store
        .upsert_membership(&user.id, &acme.id, Role::Member, NOW)
        .await
        .unwrap();
    store
        .upsert_membership(&user.id, &acme.id, Role::Admin, NOW)
        .await
        .unwrap();
    let ws = store.user_workspaces(&user.id).await.unwrap();
    let seen: Vec<(&str, Role)> = ws.iter().map(|m| (m.slug.as_str(), m.role)).collect();
    assert_eq!(seen, [("acme", Role::Admin), ("beta", Role::Readonly)]);
    assert!(store
        .set_membership_role(&beta.id, &user.id, Role::Member)
        .await
        .unwrap());
    assert_eq!(
        store.membership_role(&user.id, &beta.id).await.unwrap(),
        Some(Role::Member)
    );
    assert_eq!(store.list_members(&acme.id).await.unwrap().len(), 1);

    let session = SessionRecord {
        token_hash: "h1".into(),
        user_id: user.id.clone(),
        workspace_id: beta.id.clone(),
        csrf_token: "c1".into(),
        created_at: NOW,
        expires_at: NOW + 1000,
    };
    store.insert_session(&session).await.unwrap();
    assert_eq!(
        store.find_session("h1", NOW).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.find_session("h1", NOW + 1000).await.unwrap(),
        None,
        "expired"
    );
    assert!(store.set_session_workspace("h1", &acme.id).await.unwrap());
    // Leaving a workspace ends the sessions acting in it.
    assert!(store.delete_membership(&acme.id, &user.id).await.unwrap());
    assert_eq!(store.find_session("h1", NOW).await.unwrap(), None);
    assert!(!store.delete_membership(&acme.id, &user.id).await.unwrap());
    store
        .insert_session(&SessionRecord {
            token_hash: "h2".into(),
            ..session
        })
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(NOW + 1000).await.unwrap(), 1);
    store.delete_session("h2").await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Audit

/// Checks one chain as `sealflow audit verify` does, from seq 1: `n` entries, each linked to the
/// one before and hashed over its fields, ending at the chain's head.
async fn assert_chain(store: &Arc<dyn Store>, chain: &str, n: i64) {
    let entries = store.audit_entries_after(chain, 0, 10_000).await.unwrap();
    assert_eq!(entries.len() as i64, n, "{chain}");
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "{chain}: seqs are contiguous");
        assert_eq!(e.prev_hash, prev, "{chain} {}: linked", e.seq);
        assert!(e.hash_matches(), "{chain} {}: hashed", e.seq);
        prev = e.hash.clone();
    }
    let head = store
        .audit_chains()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.chain == chain)
        .unwrap();
    assert_eq!((head.head_seq, head.head_hash), (n, prev), "{chain}: head");
}

/// Each store's writer keeps the heads its commits left and appends after them without reading
/// them again; another store on the same database (another instance, or a command run beside
/// the server) moves a head under it. Taking turns, each append must find the head moved, read
/// it and append after it: a writer that trusted its copy would store entries with seqs
/// already taken (refused), or move the head back over the other's entries.
async fn two_stores_appending_to_one_chain_in_turn_keep_it_unbroken(store: Arc<dyn Store>, url: String) {
    let other = sealflow::store::open(&url).await.expect("open a second store");
    let chain = "ws_turns";
    for turn in 0..6 {
        let on: &Arc<dyn Store> = if turn % 2 == 0 { &store } else { &other };
        let events = (0..=turn)
            .map(|i| AuditEvent::new(chain, &format!("test.turn{turn}.{i}"), "test"))
            .collect();
        on.append_audit(events).await.unwrap();
    }
    assert_chain(&store, chain, (1..=6).sum()).await;
    assert_chain(&other, chain, (1..=6).sum()).await;
}

async fn concurrent_audit_appends_keep_every_chain_unbroken(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let chains: Vec<String> = (0..4).map(|i| format!("ws_chain{i}")).collect();
    for t in 0..40 {
        let row = secret(&ws, &format!("S{t}"), 1, None);
        store.insert_secret(&row, 1000, "test").await.unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..40 {
        let store = store.clone();
        // Some tasks append to two chains in one call, in either order: heads are locked in
        // chain order, so these cannot deadlock each other (on PostgreSQL) or break a chain.
        let (a, b) = (chains[t % 4].clone(), chains[(t + 1 + t / 4) % 4].clone());
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            let mut events = vec![AuditEvent::new(&a, "test.one", "test")];
            if t % 3 == 0 {
                events.insert(0, AuditEvent::new(&b, "test.two", "test"));
            }
            store.append_audit(events).await.unwrap();
            // Secret changes append inside their own write, to the workspace's chain; replaces
            // run on several writers at once (PostgreSQL), so only the head lock keeps them apart.
            let row = secret(&ws, &format!("S{t}"), 2, None);
            assert!(store.replace_secret(&row, 1, "test").await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut per_chain = [0i64; 4];
    for t in 0..40usize {
        per_chain[t % 4] += 1;
        if t % 3 == 0 {
            per_chain[(t + 1 + t / 4) % 4] += 1;
        }
    }
    for (chain, n) in chains.iter().zip(per_chain) {
        assert_chain(&store, chain, n).await;
    }
    assert_chain(&store, &ws, 80).await;
    let (entries, total) = store
        .list_audit(
            &ws,
            &AuditFilter {
                secret: Some("S7".into()),
                ..AuditFilter::default()
            },
            PageRequest { offset: 0, limit: 10 },
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(entries[0].event.kind, "secret.replaced");
    assert_eq!(entries[0].event.secret_version, Some(2));
    assert_eq!(entries[1].event.kind, "secret.created");
}

async fn step_outcome_entries_are_kept_even_when_the_lease_was_lost(store: Arc<dyn Store>) {
    let ws = workspace(&store, "acme").await;
    let r = run(&ws, "wf_a", None, NOW);
    store
        .insert_claimed_run(&r, 0, Some(("owner", NOW + LEASE_MS)))
        .await
        .unwrap();
    let outcome = |step: &str| AuditEvent {
        secret_name: Some("TOKEN".into()),
        run_id: Some(r.id.clone()),
        step_id: Some(step.into()),
        outcome: Some("http_2xx".into()),
        ..AuditEvent::new(&ws, "secret.use_outcome", "engine")
    };
    // The request was sent, so its outcome is recorded though the step's result is refused.
    assert!(!store
        .save_steps_audited(
            &r.id,
            "another owner",
            &[step(0, "completed")],
            1,
            None,
            vec![outcome("a")]
        )
        .await
        .unwrap());
    assert!(store
        .save_steps_audited(
            &r.id,
            "owner",
            &[step(0, "completed")],
            1,
            None,
            vec![outcome("b")]
        )
        .await
        .unwrap());
    let steps: Vec<Option<String>> = store
        .audit_entries_after(&ws, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.step_id)
        .collect();
    assert_eq!(steps, [Some("a".to_owned()), Some("b".to_owned())]);
    assert_chain(&store, &ws, 2).await;
}

// ---------------------------------------------------------------------------------------------
// Run totals (counted as runs end, not by walking the history)

/// A connection of the test's own to the store's database, to count rows behind its back.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Pg(PgConnection),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(
                sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("raw SQLite connection"),
            )
        } else {
            Raw::Pg(
                PgConnection::connect(url)
                    .await
                    .expect("raw PostgreSQL connection"),
            )
        }
    }

    /// One BIGINT from `sql` with `binds` as `$1…`.
    async fn scalar(&mut self, sql: &str, binds: &[&str]) -> i64 {
        macro_rules! run {
            ($conn:expr) => {{
                let mut q = sqlx::query_scalar::<_, i64>(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_one(&mut *$conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }};
        }
        match self {
            Raw::Sqlite(c) => run!(c),
            Raw::Pg(c) => run!(c),
        }
    }

    async fn execute(&mut self, sql: &str) {
        match self {
            Raw::Sqlite(c) => c.execute(sql).await.map(drop),
            Raw::Pg(c) => c.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

const RUN_STATUSES: [&str; 5] = ["queued", "running", "completed", "failed", "cancelled"];

/// For every filter the run list takes (none, workflow, status, both), the `total` equals a
/// real `COUNT(*)` of the rows, and the `run_counts` counters of each final status equal the
/// finished rows they stand for. Returns the workspace's unfiltered total.
async fn assert_totals(store: &Arc<dyn Store>, url: &str, ws: &str, workflows: &[&str], when: &str) -> i64 {
    let mut raw = Raw::connect(url).await;
    let workflow_filters = std::iter::once(None).chain(workflows.iter().map(|w| Some(*w)));
    for wf in workflow_filters {
        for status in std::iter::once(None).chain(RUN_STATUSES.iter().map(|s| Some(*s))) {
            let mut filter = String::from("workspace_id = $1");
            let mut binds = vec![ws];
            for (column, value) in [("workflow_id", wf), ("status", status)] {
                if let Some(v) = value {
                    binds.push(v);
                    filter.push_str(&format!(" AND {column} = ${}", binds.len()));
                }
            }
            let rows = raw
                .scalar(&format!("SELECT COUNT(*) FROM runs WHERE {filter}"), &binds)
                .await;
            let (_, total) = store
                .list_runs(ws, wf, status, PageRequest { offset: 0, limit: 1 })
                .await
                .unwrap();
            assert_eq!(
                total, rows,
                "{when}: total for workflow {wf:?}, status {status:?}"
            );
            if let Some(s @ ("completed" | "failed" | "cancelled")) = status {
                let counted = raw
                    .scalar(
                        &format!("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM run_counts WHERE {filter}"),
                        &binds,
                    )
                    .await;
                assert_eq!(counted, rows, "{when}: counter for workflow {wf:?}, status {s}");
            }
        }
    }
    store.list_runs(ws, None, None, ALL).await.unwrap().1
}

async fn run_totals_stay_exact_through_every_transition(store: Arc<dyn Store>, url: String) {
    let ws = workspace(&store, "acme").await;
    let other = workspace(&store, "globex").await;
    let (a, b) = (workflow(&ws, "a", "active"), workflow(&ws, "b", "active"));
    store.insert_workflow(&a).await.unwrap();
    store.insert_workflow(&b).await.unwrap();
    let wfs = [a.id.as_str(), b.id.as_str()];
    let status_of = |id: String| {
        let (store, ws) = (store.clone(), ws.clone());
        async move { store.get_run(&ws, &id).await.unwrap().unwrap().status }
    };

    // Queued: three of a, two of b, and one of a's id in another workspace (kept apart).
    let queued: Vec<RunRecord> = [&a.id, &a.id, &a.id, &b.id, &b.id]
        .iter()
        .map(|wf| run(&ws, wf, None, NOW))
        .collect();
    for r in &queued {
        store.insert_run(r, 0).await.unwrap();
    }
    // Never due in this test: SQLite numbers `seq` per workspace, so a run of another workspace
    // due at the same time would tie with ours for the claim.
    let later = NOW + 10_000_000;
    store
        .insert_run(&run(&other, &a.id, None, later), 0)
        .await
        .unwrap();
    assert_eq!(assert_totals(&store, &url, &ws, &wfs, "queued").await, 5);
    assert_eq!(assert_totals(&store, &url, &other, &wfs, "other queued").await, 1);

    // Claimed, then completed.
    let first = store.claim_run("w1", NOW, LEASE_MS).await.unwrap().unwrap();
    assert_eq!(first.id, queued[0].id);
    assert_totals(&store, &url, &ws, &wfs, "claimed").await;
    assert!(store
        .finish_run(&first.id, "w1", "completed", None, NOW + 1)
        .await
        .unwrap());
    assert_totals(&store, &url, &ws, &wfs, "completed").await;

    // Failed with its last step, in one write.
    let second = store.claim_run("w2", NOW, LEASE_MS).await.unwrap().unwrap();
    let end = RunEnd {
        status: "failed",
        error: Some("boom"),
        at_ms: NOW + 2,
    };
    assert!(store
        .save_steps(&second.id, "w2", &[step(0, "failed")], 1, Some(end))
        .await
        .unwrap());
    assert_eq!(status_of(second.id.clone()).await, "failed");
    assert_totals(&store, &url, &ws, &wfs, "failed").await;

    // Cancelled while running, then cancelled again and finished by its lost worker: counted once.
    let third = store.claim_run("w3", NOW, LEASE_MS).await.unwrap().unwrap();
    assert!(matches!(
        store.cancel_run(&ws, &third.id, NOW + 3).await.unwrap(),
        CancelRun::Cancelled
    ));
    assert_totals(&store, &url, &ws, &wfs, "cancelled running").await;
    assert!(matches!(
        store.cancel_run(&ws, &third.id, NOW + 4).await.unwrap(),
        CancelRun::AlreadyFinished(_)
    ));
    assert!(!store
        .finish_run(&third.id, "w3", "completed", None, NOW + 4)
        .await
        .unwrap());
    assert_eq!(status_of(third.id.clone()).await, "cancelled");
    assert_totals(&store, &url, &ws, &wfs, "cancelled twice").await;

    // Cancelled while queued.
    assert!(matches!(
        store.cancel_run(&ws, &queued[3].id, NOW + 5).await.unwrap(),
        CancelRun::Cancelled
    ));
    assert_totals(&store, &url, &ws, &wfs, "cancelled queued").await;

    // Failed by the attempt limit inside a claim (due earliest, so it is claimed first).
    let doomed = run(&ws, &b.id, None, NOW - 1_000);
    store.insert_run(&doomed, 0).await.unwrap();
    let mut at = NOW;
    for attempt in 1..=StoreOptions::default().max_run_attempts {
        let claimed = store
            .claim_run(&format!("d{attempt}"), at, LEASE_MS)
            .await
            .unwrap();
        assert_eq!(claimed.map(|r| r.id), Some(doomed.id.clone()));
        at += LEASE_MS + 1;
    }
    let next = store.claim_run("d-last", at, LEASE_MS).await.unwrap();
    assert_eq!(
        next.map(|r| r.id),
        Some(queued[4].id.clone()),
        "the doomed run is failed instead"
    );
    assert_eq!(status_of(doomed.id.clone()).await, "failed");
    assert_totals(&store, &url, &ws, &wfs, "attempt limit").await;

    // Inserted already claimed, then completed; and a schedule's run.
    let claimed = run(&ws, &a.id, None, at);
    store
        .insert_claimed_run(&claimed, 0, Some(("w4", at + LEASE_MS)))
        .await
        .unwrap();
    assert_totals(&store, &url, &ws, &wfs, "inserted claimed").await;
    assert!(store
        .finish_run(&claimed.id, "w4", "completed", None, at + 1)
        .await
        .unwrap());
    let scheduled = run(&ws, &b.id, None, at);
    assert!(store.insert_scheduled_run(&scheduled, at).await.unwrap());
    assert_eq!(
        assert_totals(&store, &url, &ws, &wfs, "claimed and scheduled").await,
        8
    );

    // Deleting a workflow keeps its runs (their history stays listed), so their totals stay.
    assert!(store.delete_workflow(&ws, &a.id).await.unwrap());
    assert_eq!(
        assert_totals(&store, &url, &ws, &wfs, "workflow deleted").await,
        8
    );
    assert_eq!(
        assert_totals(&store, &url, &other, &wfs, "other at the end").await,
        1
    );
    for (status, n) in [("completed", 2), ("failed", 2), ("cancelled", 2)] {
        let (_, total) = store.list_runs(&ws, None, Some(status), ALL).await.unwrap();
        assert_eq!(total, n, "{status}");
    }

    // Rows written behind the store's back are counted too (the counters are kept by the
    // database): a deleted finished run and a deleted queued one, a finished run imported, a
    // status corrected from one final status to another.
    let mut raw = Raw::connect(&url).await;
    raw.execute(&format!(
        "DELETE FROM runs WHERE id IN ('{}', '{}')",
        first.id, scheduled.id
    ))
    .await;
    assert_eq!(assert_totals(&store, &url, &ws, &wfs, "deleted").await, 6);
    raw.execute(&format!(
        "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                           status, trigger_type, input_json, wake_at, created_at, seq) \
         VALUES ('run_imported', '{ws}', '{}', 'b', 1, '{{}}', 'completed', 'manual', '{{}}', 0, 0, 1000)",
        b.id
    ))
    .await;
    raw.execute(&format!(
        "UPDATE runs SET status = 'completed' WHERE id = '{}'",
        second.id
    ))
    .await;
    assert_eq!(
        assert_totals(&store, &url, &ws, &wfs, "imported and corrected").await,
        7
    );
    let (_, completed) = store.list_runs(&ws, None, Some("completed"), ALL).await.unwrap();
    assert_eq!(completed, 3);

    // Many rows in one statement: an import across both workflows and statuses, then a purge.
    let rows: Vec<String> = (0..600)
        .map(|i| {
            let (wf, status) = (wfs[i % 2], ["completed", "failed", "cancelled", "queued"][i % 4]);
            format!(
                "('run_bulk{i}', '{ws}', '{wf}', 'x', 1, '{{}}', '{status}', 'manual', '{{}}', 0, 0, {})",
                2000 + i
            )
        })
        .collect();
    raw.execute(&format!(
        "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                           status, trigger_type, input_json, wake_at, created_at, seq) VALUES {}",
        rows.join(", ")
    ))
    .await;
    assert_eq!(assert_totals(&store, &url, &ws, &wfs, "bulk import").await, 607);
    raw.execute("DELETE FROM runs WHERE id LIKE 'run_bulk%' AND seq % 3 <> 0")
        .await;
    assert_eq!(assert_totals(&store, &url, &ws, &wfs, "bulk purge").await, 207);
}

async fn concurrent_run_ends_keep_the_totals_exact(store: Arc<dyn Store>, url: String) {
    let ws = workspace(&store, "acme").await;
    let wf = workflow(&ws, "hot", "active");
    store.insert_workflow(&wf).await.unwrap();
    // Several tasks end runs of one workflow at once: on PostgreSQL their transactions overlap
    // and add to the same counters.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (store, ws, wf_id) = (store.clone(), ws.clone(), wf.id.clone());
            tokio::spawn(async move {
                for i in 0..15 {
                    let r = run(&ws, &wf_id, None, NOW);
                    let owner = format!("t{t}");
                    store
                        .insert_claimed_run(&r, 0, Some((&owner, NOW + LEASE_MS)))
                        .await
                        .unwrap();
                    match i % 3 {
                        0 => assert!(store
                            .finish_run(&r.id, &owner, "completed", None, NOW)
                            .await
                            .unwrap()),
                        1 => assert!(store
                            .finish_run(&r.id, &owner, "failed", Some("boom"), NOW)
                            .await
                            .unwrap()),
                        _ => assert!(matches!(
                            store.cancel_run(&ws, &r.id, NOW).await.unwrap(),
                            CancelRun::Cancelled
                        )),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        assert_totals(&store, &url, &ws, &[wf.id.as_str()], "after concurrent ends").await,
        120
    );
    for status in ["completed", "failed", "cancelled"] {
        let (_, total) = store
            .list_runs(&ws, Some(&wf.id), Some(status), ALL)
            .await
            .unwrap();
        assert_eq!(total, 40, "{status}");
    }
}

/// Opens an older database (migrated up to 0011, runs written by a version without counters) and
/// checks that the store's migration counts its finished runs.
async fn the_run_counts_migration_counts_the_runs_that_ended_before_it(store: Arc<dyn Store>, url: String) {
    drop(store);
    // A second database of the same backend, at the state before the counters.
    let old = |old_url: String| async move {
        let backend = if old_url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut before = sqlx::migrate::Migrator::new(dir).await.expect("read migrations");
        let kept: Vec<_> = before
            .migrations
            .iter()
            .filter(|m| m.version < 12)
            .cloned()
            .collect();
        assert!(before.migrations.len() > kept.len(), "0012 exists");
        before.migrations = kept.into();
        let mut raw = Raw::connect(&old_url).await;
        match &mut raw {
            Raw::Sqlite(c) => before.run(c).await,
            Raw::Pg(c) => before.run(c).await,
        }
        .expect("migrate to 0011");
        raw.execute(
            "INSERT INTO workspaces (id, slug, created_at) VALUES ('ws_1', 'one', 0), ('ws_2', 'two', 0)",
        )
        .await;
        let mut seq = 0;
        let mut rows = Vec::new();
        for (ws, wf, status, n) in [
            ("ws_1", "wf_a", "completed", 5),
            ("ws_1", "wf_a", "failed", 2),
            ("ws_1", "wf_a", "running", 1),
            ("ws_1", "wf_b", "cancelled", 3),
            ("ws_1", "wf_b", "queued", 2),
            ("ws_2", "wf_a", "completed", 4),
        ] {
            for _ in 0..n {
                seq += 1;
                rows.push(format!(
                    "('run_{seq}', '{ws}', '{wf}', 'old', 1, '{{}}', '{status}', 'manual', '{{}}', 0, 0, {seq})"
                ));
            }
        }
        raw.execute(&format!(
            "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                               status, trigger_type, input_json, wake_at, created_at, seq) VALUES {}",
            rows.join(", ")
        ))
        .await;
        drop(raw);
        let store = open_store(&old_url, backend).await;
        assert_eq!(
            assert_totals(&store, &old_url, "ws_1", &["wf_a", "wf_b"], "backfilled").await,
            13
        );
        assert_eq!(
            assert_totals(&store, &old_url, "ws_2", &["wf_a", "wf_b"], "backfilled").await,
            4
        );
        // The backfilled counters go on counting.
        // (The one running run, its lease long gone, is the first due.)
        let claimed = store.claim_run("w", NOW, LEASE_MS).await.unwrap().unwrap();
        assert_eq!(
            (claimed.workspace_id.as_str(), claimed.status.as_str()),
            ("ws_1", "running")
        );
        assert!(store
            .finish_run(&claimed.id, "w", "completed", None, NOW)
            .await
            .unwrap());
        assert_totals(&store, &old_url, "ws_1", &["wf_a", "wf_b"], "after a new end").await;
        let (_, total) = store
            .list_runs("ws_1", None, Some("completed"), ALL)
            .await
            .unwrap();
        assert_eq!(total, 6);
    };
    if url.starts_with("sqlite:") {
        let dir = tempfile::tempdir().expect("temp dir");
        old(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("old.db").display()
        ))
        .await;
    } else {
        in_postgres_database(old).await;
    }
}
