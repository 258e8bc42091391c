//! The audit trail over real HTTP, with real webhook receivers and the real `sealflow audit`
//! binary: every use of a secret is recorded (before it is sent, and with its outcome), secret
//! and API-key changes are recorded with who made them, `audit verify` names the first edited,
//! deleted or reordered row, pruning keeps the chain verifiable, a failing audit write stops the
//! send, no entry holds a value, and `/api/audit` is for admins with checked filters.
//!
//! The chain and `verify` also run on PostgreSQL (`SEALFLOW_TEST_POSTGRES_URL`, as
//! `scripts/test` sets it; `SEALFLOW_SKIP_POSTGRES=1` skips those on purpose).

mod common;

use std::path::Path;

use common::receiver::Receiver;
use common::*;
use sealflow::config::{Config, MasterKeySource};
use sealflow::store::Role;
use sealflow_egress::AllowList;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

const SECRETS: &str = "/api/workflows/secrets";

fn allow_loopback(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.0/8").unwrap();
}

/// Every entry of the workspace's trail matching `query` (oldest first).
async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let sep = if query.is_empty() { "" } else { "&" };
    let (status, body) = app
        .get(&format!("/api/audit?limit=100{sep}{query}"), &app.admin_key)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut list = body["entries"].as_array().unwrap().clone();
    list.reverse();
    list
}

fn kinds(list: &[Value]) -> Vec<&str> {
    list.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// `sealflow audit ARGS… --data-dir DIR` (or `--database-url URL`), off the test's runtime (the
/// server under test runs on it): whether it exited with success, and its stdout and stderr.
async fn audit_cli(args: &[&str], target: &Target) -> (bool, String) {
    let mut cmd = sealflow_bin();
    cmd.arg("audit").args(args);
    match target {
        Target::Dir(dir) => cmd.arg("--data-dir").arg(dir),
        Target::Url(url) => cmd.arg("--database-url").arg(url),
    };
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run sealflow audit"))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

enum Target {
    Dir(std::path::PathBuf),
    Url(String),
}

async fn put_secret(app: &TestApp, name: &str, value: &str) {
    let (status, body) = app
        .post(SECRETS, &app.admin_key, &json!({"name": name, "value": value}))
        .await;
    assert!(status == 201 || status == 200, "{body}");
}

/// The workspace id of `acme`.
async fn acme(app: &TestApp) -> String {
    app.store.ensure_workspace("acme").await.unwrap().id
}

/// A consistent copy of the SQLite database in a new data directory (`VACUUM INTO`).
async fn copy_db(app: &TestApp) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let mut conn = sqlite(&app.db_path()).await;
    sqlx::query(&format!(
        "VACUUM INTO '{}'",
        copy.path().join("sealflow.db").display()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    copy
}

async fn sqlite(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_run_using_two_secrets_records_two_uses_with_their_hosts_and_outcomes() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let one = Receiver::start_on("127.0.0.1").await;
    let two = Receiver::start_on("127.0.0.2").await;
    put_secret(&app, "FIRST", &random_secret_value()).await;
    put_secret(&app, "SECOND", &random_secret_value()).await;
    put_secret(&app, "SECOND", &random_secret_value()).await; // version 2
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "two", "steps": [
                {"id": "a", "type": "webhook", "config": {"url": format!("{}/ok", one.base),
                    "headers": {"Authorization": "Bearer {{secrets.FIRST}}"}}},
                {"id": "b", "type": "webhook", "config": {"url": format!("{}/fail", two.base),
                    "retries": 0, "body": {"token": "{{secrets.SECOND}}"}}},
            ]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!((one.count(), two.count()), (1, 1));
    let run_id = run["id"].as_str().unwrap();

    let list = entries(&app, &format!("run_id={run_id}")).await;
    assert_eq!(
        kinds(&list),
        [
            "secret.used",
            "secret.use_outcome",
            "secret.used",
            "secret.use_outcome"
        ],
        "{list:#?}"
    );
    let expect = [
        ("FIRST", 1, "a", "127.0.0.1", "http_2xx"),
        ("SECOND", 2, "b", "127.0.0.2", "http_5xx"),
    ];
    for (pair, (secret, version, step, host, outcome)) in list.chunks(2).zip(expect) {
        for e in pair {
            assert_eq!(e["secret"], secret, "{e}");
            assert_eq!(e["secret_version"], version, "{e}");
            assert_eq!(e["step_id"], step, "{e}");
            assert_eq!(e["host"], host, "{e}");
            assert_eq!(e["run_id"], run_id, "{e}");
            assert_eq!(e["actor"], "engine", "{e}");
        }
        assert!(pair[0]["outcome"].is_null(), "{}", pair[0]);
        assert_eq!(pair[1]["outcome"], outcome, "{}", pair[1]);
        assert_eq!(pair[1]["detail"], "attempts=1", "{}", pair[1]);
    }
    // A run that uses no secret records nothing.
    let plain = app
        .workflow(
            &app.admin_key,
            json!({"name": "plain", "steps": [
                {"id": "a", "type": "webhook", "config": {"url": format!("{}/ok", one.base)}}]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &plain, json!({}), 10).await;
    assert_eq!(run["status"], "completed");
    assert!(entries(&app, &format!("run_id={}", run["id"].as_str().unwrap()))
        .await
        .is_empty());
}

/// Group commits so far (`sealflow_db_commit_batch_size_count`), once no write is in flight
/// (API-key uses are written a moment after the request that made them). The app must not
/// poll for due runs meanwhile ([`no_polling`]): each poll is a claim, a commit of its own.
async fn settled_commits(app: &TestApp) -> f64 {
    let read = || metric(app, "sealflow_db_commit_batch_size_count");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = read().await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "commits never settled (at {now}): something writes all the time"
        );
        last = now;
    }
}

/// A fresh run whose first step sends a secret is stored in two commits: its insert, which
/// carries the step's `secret.used` entry, and its step with its end. The use is still on record
/// before the send, and still paired with its outcome.
async fn a_first_steps_secret_use_commits_with_the_run(app: TestApp) {
    let receiver = Receiver::start().await;
    put_secret(&app, "TOKEN", &random_secret_value()).await;
    let (status, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "hooked", "status": "active", "trigger": {"type": "webhook"},
                    "steps": [{"id": "send", "type": "webhook", "config": {
                        "url": format!("{}/ok", receiver.base),
                        "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"}}}]}),
        )
        .await;
    assert_eq!(status, 201, "{wf}");
    let hook = wf["webhook_url"].as_str().unwrap().to_owned();
    let before = settled_commits(&app).await;
    const RUNS: usize = 5;
    let mut ids = Vec::new();
    for i in 0..RUNS {
        let res = app
            .client
            .post(format!("{hook}?wait=10"))
            .json(&json!({ "i": i }))
            .send()
            .await
            .unwrap();
        let (status, run) = split(res).await;
        assert_eq!(
            (status, run["status"].as_str()),
            (200, Some("completed")),
            "{run}"
        );
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    let commits = settled_commits(&app).await - before;
    assert_eq!(
        commits,
        (2 * RUNS) as f64,
        "commits for {RUNS} runs, one after another"
    );
    assert_eq!(receiver.count(), RUNS);
    // Run ids begin with their creation time: runs made one after another sort in that order.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        let list = entries(&app, &format!("run_id={id}")).await;
        assert_eq!(kinds(&list), ["secret.used", "secret.use_outcome"], "{list:#?}");
        assert_eq!(list[1]["outcome"], "http_2xx", "{list:#?}");
    }
    assert_eq!(audit_writes(&app, "ok").await, RUNS as f64);
}

/// Loopback allowed, and no polling for due runs after the first look: runs started here are
/// handed to a local worker without it.
fn no_polling(c: &mut Config) {
    allow_loopback(c);
    c.engine.poll = std::time::Duration::from_secs(3600);
}

#[tokio::test]
async fn a_first_steps_secret_use_commits_with_the_run_on_sqlite() {
    a_first_steps_secret_use_commits_with_the_run(TestApp::spawn_with(no_polling).await).await;
}

/// An app, a receiver, and a workflow whose one webhook step sends the secret `TOKEN` to it.
async fn one_secret_sender() -> (TestApp, Receiver, String) {
    let app = TestApp::spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    put_secret(&app, "TOKEN", &random_secret_value()).await;
    let wf = secret_sender(&app, &receiver, "send", "TOKEN").await;
    (app, receiver, wf)
}

/// A workflow whose one webhook step (`step_id`) sends the secret `secret` to `receiver`.
async fn secret_sender(app: &TestApp, receiver: &Receiver, step_id: &str, secret: &str) -> String {
    app.workflow(
        &app.admin_key,
        json!({"name": "w", "steps": [{"id": step_id, "type": "webhook", "config": {
            "url": format!("{}/ok", receiver.base),
            "headers": {"Authorization": format!("Bearer {{{{secrets.{secret}}}}}")}}}]}),
    )
    .await
}

/// A call retried with its Idempotency-Key is answered with the first run: nothing of the
/// workflow runs again, and no secret is decrypted for it (a first step is made ready before
/// the insert only for calls without a key).
#[tokio::test]
async fn a_replayed_call_decrypts_no_secret() {
    let (app, receiver, wf) = one_secret_sender().await;
    let decrypted = || metric(&app, "sealflow_secret_decryptions_total{outcome=\"ok\"}");
    let call = || async {
        let res = app
            .client
            .post(app.url(&format!("/api/workflows/{wf}/run?wait=10")))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", "once")
            .json(&json!({"input": {}}))
            .send()
            .await
            .unwrap();
        split(res).await
    };
    let (status, first) = call().await;
    assert_eq!(
        (status, first["status"].as_str()),
        (201, Some("completed")),
        "{first}"
    );
    let after_first = decrypted().await;
    assert_eq!(after_first, 1.0);
    let (status, again) = call().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"], "{again}");
    assert_eq!(decrypted().await, after_first, "the replay decrypted a secret");
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn a_first_steps_secret_use_commits_with_the_run_on_postgres() {
    let Some(db) = common::pg::PgDb::create().await else {
        return;
    };
    let url = db.url.clone();
    let app = TestApp::spawn_with(move |c| {
        no_polling(c);
        c.storage.database_url = url;
    })
    .await;
    a_first_steps_secret_use_commits_with_the_run(app).await;
    db.drop_db().await;
}

#[tokio::test]
async fn secret_and_api_key_changes_are_recorded_with_who_made_them() {
    let app = TestApp::spawn().await;
    let (_, me) = app.get("/api/me", &app.admin_key).await;
    let actor = format!("api_key:{}", me["key"]["id"].as_str().unwrap_or_default());
    put_secret(&app, "TOKEN", &random_secret_value()).await;
    put_secret(&app, "TOKEN", &random_secret_value()).await;
    let (status, _) = app
        .delete(SECRETS, &app.admin_key, Some(&json!({"name": "TOKEN"})))
        .await;
    assert_eq!(status, 200);
    // A refused change records nothing.
    let (status, _) = app
        .delete(SECRETS, &app.admin_key, Some(&json!({"name": "TOKEN"})))
        .await;
    assert_eq!(status, 404);

    let list = entries(&app, "secret=TOKEN").await;
    assert_eq!(
        kinds(&list),
        ["secret.created", "secret.replaced", "secret.deleted"]
    );
    let versions: Vec<i64> = list
        .iter()
        .map(|e| e["secret_version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2]);
    for e in &list {
        assert_eq!(e["actor"], actor, "{e}");
    }

    let (status, key) = app
        .post(
            "/api/keys",
            &app.admin_key,
            &json!({"name": "ci", "role": "member"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let id = key["id"].as_str().unwrap();
    let res = app
        .client
        .put(app.url("/api/keys"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"id": id, "name": "ci-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for action in ["disable", "enable"] {
        let res = app
            .client
            .patch(app.url(&format!("/api/keys?id={id}&action={action}")))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (status, _) = app
        .post(
            "/api/keys/limit",
            &app.admin_key,
            &json!({"id": id, "credit_limit": 5}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .delete(&format!("/api/keys?id={id}&permanent=true"), &app.admin_key, None)
        .await;
    assert_eq!(status, 200);
    let keyed: Vec<Value> = entries(&app, "")
        .await
        .into_iter()
        .filter(|e| e["subject"] == id)
        .collect();
    assert_eq!(
        kinds(&keyed),
        [
            "api_key.created",
            "api_key.renamed",
            "api_key.disabled",
            "api_key.enabled",
            "api_key.limit_set",
            "api_key.deleted"
        ]
    );
    assert_eq!(keyed[0]["detail"], "role=member");
    assert_eq!(keyed[1]["detail"], "name=ci-2");
    assert_eq!(keyed[4]["detail"], "limit=5");
    assert!(keyed.iter().all(|e| e["actor"] == actor));
}

#[tokio::test]
async fn verify_names_the_first_edited_deleted_or_reordered_row_and_a_copy_verifies_alike() {
    let app = TestApp::spawn().await;
    for name in ["A", "B", "C", "D", "E"] {
        put_secret(&app, name, &random_secret_value()).await;
    }
    let ws = acme(&app).await;
    // seq 1 is the admin key's creation, 2..=6 the secrets.
    let (ok, out) = audit_cli(&["verify"], &Target::Dir(app.dir.path().to_owned())).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("chain {ws}: ok, seq 1..6")), "{out}");

    let tampers: [(&str, &str, i64); 5] = [
        (
            "an edited name",
            "UPDATE audit_entries SET secret_name = 'Z' WHERE seq = 3",
            3,
        ),
        (
            "an edited time",
            "UPDATE audit_entries SET at = at + 1 WHERE seq = 4",
            4,
        ),
        ("a deleted row", "DELETE FROM audit_entries WHERE seq = 2", 2),
        (
            "two swapped rows",
            "UPDATE audit_entries SET seq = -3 WHERE seq = 3; \
             UPDATE audit_entries SET seq = 3 WHERE seq = 5; \
             UPDATE audit_entries SET seq = 5 WHERE seq = -3",
            3,
        ),
        ("a cut-off end", "DELETE FROM audit_entries WHERE seq = 6", 6),
    ];
    for (what, sql, seq) in tampers {
        let copy = copy_db(&app).await;
        let target = Target::Dir(copy.path().to_owned());
        let (ok, out) = audit_cli(&["verify"], &target).await;
        assert!(ok, "an untouched copy verifies like the original: {out}");
        let mut conn = sqlite(&copy.path().join("sealflow.db")).await;
        for statement in sql.split(';') {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
        let (ok, out) = audit_cli(&["verify"], &target).await;
        assert!(!ok, "{what} went unnoticed: {out}");
        assert!(
            out.contains(&format!("audit chain {ws}: entry {seq} ")),
            "{what}: {out}"
        );
    }
}

#[tokio::test]
async fn prune_moves_the_checkpoint_and_the_rest_still_verifies() {
    let app = TestApp::spawn().await;
    for name in ["OLD_1", "OLD_2", "OLD_3"] {
        put_secret(&app, name, &random_secret_value()).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for name in ["NEW_1", "NEW_2"] {
        put_secret(&app, name, &random_secret_value()).await;
    }
    let dir = Target::Dir(app.dir.path().to_owned());
    let (ok, out) = audit_cli(&["prune", "--before", "not-a-time"], &dir).await;
    assert!(!ok && out.contains("--before must be"), "{out}");
    let before = cut.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (ok, out) = audit_cli(&["prune", "--before", &before], &dir).await;
    assert!(ok, "{out}");
    let ws = acme(&app).await;
    assert!(out.contains(&format!("chain {ws}: pruned 4 entries")), "{out}");

    // The key's creation and the three old secrets are gone; the new ones remain.
    let left = entries(&app, "").await;
    let names: Vec<&str> = left.iter().map(|e| e["secret"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["NEW_1", "NEW_2"]);
    assert_eq!(left[0]["seq"], 5);
    let (ok, out) = audit_cli(&["verify"], &dir).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("chain {ws}: ok, seq 5..6")), "{out}");
    // The checkpoint is the last pruned entry's seq and hash, kept in the database.
    let mut conn = sqlite(&app.db_path()).await;
    let row = sqlx::query("SELECT checkpoint_seq, checkpoint_hash FROM audit_chains WHERE chain = $1")
        .bind(&ws)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>(0), 4);
    assert_eq!(row.get::<String, _>(1), left[0]["prev_hash"].as_str().unwrap());

    // New entries chain on; a copy verifies like the original; pruning again is a no-op.
    put_secret(&app, "NEWER", &random_secret_value()).await;
    let copy = copy_db(&app).await;
    let (ok, out) = audit_cli(&["verify"], &Target::Dir(copy.path().to_owned())).await;
    assert!(ok && out.contains("seq 5..7"), "{out}");
    let (ok, out) = audit_cli(&["prune", "--before", &before], &dir).await;
    assert!(ok && out.contains("nothing to prune"), "{out}");
    // Deleting the first entry after the checkpoint is still caught.
    sqlx::query("DELETE FROM audit_entries WHERE seq = 5")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = audit_cli(&["verify"], &dir).await;
    assert!(
        !ok && out.contains(&format!("audit chain {ws}: entry 5 ")),
        "{out}"
    );
    // And prune refuses to destroy a tampered chain's evidence.
    let (ok, out) = audit_cli(&["prune", "--before", "2999-01-01"], &dir).await;
    assert!(!ok && out.contains("entry 5"), "{out}");
}

#[tokio::test]
async fn a_failing_audit_write_fails_the_step_and_nothing_is_sent() {
    let (app, receiver, wf) = one_secret_sender().await;
    let mut conn = sqlite(&app.db_path()).await;
    sqlx::query(
        "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries \
         BEGIN SELECT RAISE(ABORT, 'the audit table is read-only'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("audit trail could not record"), "{run}");
    assert_eq!(
        receiver.count(),
        0,
        "the request was sent without its audit entry"
    );
    assert_eq!(audit_writes(&app, "error").await, 1.0);
    assert_eq!(audit_writes(&app, "ok").await, 0.0);

    // Once the trail accepts writes again, the same workflow sends.
    sqlx::query("DROP TRIGGER audit_read_only")
        .execute(&mut conn)
        .await
        .unwrap();
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(receiver.count(), 1);
    assert_eq!(audit_writes(&app, "ok").await, 1.0);
}

/// `sealflow_audit_writes_total{outcome=…}` as `/metrics` shows it (0 when absent).
async fn audit_writes(app: &TestApp, outcome: &str) -> f64 {
    metric(
        app,
        &format!("sealflow_audit_writes_total{{outcome=\"{outcome}\"}}"),
    )
    .await
}

/// The value of the series `/metrics` shows as `series` (name and labels; 0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn no_entry_holds_a_secret_value_in_any_column() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let receiver = Receiver::start().await;
    // Mixed case, so that a case-blind search is a stronger one.
    let values: Vec<String> = (0..3).map(|_| format!("Mx{}", random_secret_value())).collect();
    let url_value = format!("{}/echo/Secret-Path-Abc", receiver.base);
    put_secret(&app, "HEADER", &values[0]).await;
    put_secret(&app, "BODY", &values[1]).await;
    put_secret(&app, "HEADER", &values[2]).await;
    put_secret(&app, "HOOK_URL", &url_value).await;
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "w", "steps": [
                {"id": "a", "type": "webhook", "config": {"url": format!("{}/echo", receiver.base),
                    "headers": {"Authorization": "Bearer {{secrets.HEADER}}"},
                    "body": {"v": "{{secrets.BODY}}"}}},
                {"id": "b", "type": "webhook", "config": {"url": "{{secrets.HOOK_URL}}"}},
            ]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(receiver.count(), 2);

    // The host a secret chose is not recorded.
    let run_id = run["id"].as_str().unwrap();
    let hosts: Vec<Value> = entries(&app, &format!("run_id={run_id}"))
        .await
        .iter()
        .filter(|e| e["secret"] == "HOOK_URL")
        .map(|e| e["host"].clone())
        .collect();
    assert_eq!(hosts, [json!("[from a secret]"), json!("[from a secret]")]);

    let mut conn = sqlite(&app.db_path()).await;
    let mut texts = Vec::new();
    for table in ["audit_entries", "audit_chains"] {
        let columns: Vec<String> = sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        assert!(columns.len() >= 6, "{table}: {columns:?}");
        for column in columns {
            let rows = sqlx::query(&format!(
                "SELECT COALESCE(CAST({column} AS TEXT), '') FROM {table}"
            ))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            texts.extend(rows.iter().map(|r| r.get::<String, _>(0).to_lowercase()));
        }
    }
    assert!(
        texts.len() > 100,
        "the trail has entries to search: {}",
        texts.len()
    );
    for value in values.iter().chain([&url_value]) {
        let needle = value.to_lowercase();
        let hits: Vec<&String> = texts.iter().filter(|t| t.contains(&needle)).collect();
        assert!(hits.is_empty(), "a secret value is in the audit trail: {hits:?}");
    }
    assert!(
        !texts.iter().any(|t| t.contains("secret-path-abc")),
        "part of the URL secret is in the trail"
    );
}

#[tokio::test]
async fn the_audit_endpoint_is_for_admins_and_checks_its_filters() {
    let app = TestApp::spawn().await;
    put_secret(&app, "ALPHA", &random_secret_value()).await;
    put_secret(&app, "BETA", &random_secret_value()).await;
    put_secret(&app, "ALPHA", &random_secret_value()).await;

    for role in [Role::Member, Role::Readonly] {
        let key = app.api_key("acme", role).await;
        let (status, body) = app.get("/api/audit", &key).await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_error_shape(&body, "forbidden");
    }
    let res = app.client.get(app.url("/api/audit")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    let alpha = entries(&app, "secret=ALPHA").await;
    assert_eq!(kinds(&alpha), ["secret.created", "secret.replaced"]);
    assert!(alpha.iter().all(|e| e["secret"] == "ALPHA"));
    assert!(entries(&app, "run_id=run_nothing").await.is_empty());
    assert!(entries(&app, "since=2999-01-01").await.is_empty());
    assert_eq!(entries(&app, "since=2000-01-01T00:00:00Z").await.len(), 3 + 3);

    // Paging like every list: newest first, total, page, limit.
    let (status, page) = app.get("/api/audit?limit=2&page=2", &app.admin_key).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["total"].as_i64(),
            page["page"].as_i64(),
            page["limit"].as_i64()
        ),
        (Some(6), Some(2), Some(2))
    );
    let seqs: Vec<i64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 3]);

    for (query, field) in [
        ("secret=1-not-a-name", "secret"),
        ("run_id=run%20x", "run_id"),
        (&format!("run_id={}", "r".repeat(65)), "run_id"),
        ("since=yesterday", "since"),
        ("limit=many", "limit"),
    ] {
        let (status, body) = app.get(&format!("/api/audit?{query}"), &app.admin_key).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = assert_error_shape(&body, "invalid_request");
        assert!(message.contains(field), "{query}: {message}");
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A fresh database on the test server, or None when PostgreSQL is skipped on purpose.
async fn pg_database() -> Option<(String, String)> {
    let Ok(admin_url) = std::env::var("SEALFLOW_TEST_POSTGRES_URL") else {
        if std::env::var("SEALFLOW_SKIP_POSTGRES").as_deref() == Ok("1") {
            println!("PostgreSQL audit tests NOT RUN: SEALFLOW_SKIP_POSTGRES=1");
            return None;
        }
        panic!("PostgreSQL audit tests NOT RUN: SEALFLOW_TEST_POSTGRES_URL is unset");
    };
    let name = format!("sf_audit_{}", sealflow::ids::random_base62(10).to_lowercase());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
    Some((admin_url.clone(), format!("{base}/{name}")))
}

#[tokio::test]
async fn on_postgres_two_instances_append_one_unbroken_chain_and_verify_names_tampering() {
    let Some((admin_url, url)) = pg_database().await else {
        return;
    };
    // Two instances of one deployment: one database, one master key.
    let master_key = new_master_key();
    let pg = |c: &mut Config| {
        allow_loopback(c);
        c.storage.database_url = url.clone();
        c.storage.master_key = MasterKeySource::Inline(SecretString::from(master_key.clone()));
    };
    let first = TestApp::spawn_with(pg).await;
    let second = TestApp::spawn_with(pg).await;
    let receiver = Receiver::start().await;
    put_secret(&first, "SHARED", &random_secret_value()).await;
    let wf = secret_sender(&first, &receiver, "s", "SHARED").await;
    // Secret changes and runs on both instances at once, all in one workspace's chain.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 { &first } else { &second };
        let (base, key, client) = (app.base.clone(), app.admin_key.clone(), app.client.clone());
        let wf = wf.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{base}/api/workflows/secrets"))
                .bearer_auth(&key)
                .json(&json!({"name": format!("S{i}"), "value": random_secret_value()}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            let res = client
                .post(format!("{base}/api/workflows/{wf}/run?wait=10"))
                .bearer_auth(&key)
                .json(&json!({"input": {}}))
                .send()
                .await
                .unwrap();
            let (status, run) = split(res).await;
            assert_eq!(status, 201, "{run}");
            assert_eq!(run["status"], "completed", "{run}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(receiver.count(), 12);
    let ws = acme(&first).await;
    // 2 admin keys + 1 + 12 secrets + 12 × (use + outcome).
    let total = 2 + 1 + 12 + 24;
    let target = Target::Url(url.clone());
    let (ok, out) = audit_cli(&["verify"], &target).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("chain {ws}: ok, seq 1..{total}")), "{out}");

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE audit_entries SET host = 'elsewhere.example' WHERE seq = 20")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = audit_cli(&["verify"], &target).await;
    assert!(
        !ok && out.contains(&format!("audit chain {ws}: entry 20 ")),
        "{out}"
    );
    sqlx::query("DELETE FROM audit_entries WHERE seq = 7")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = audit_cli(&["verify"], &target).await;
    assert!(
        !ok && out.contains(&format!("audit chain {ws}: entry 7 ")),
        "{out}"
    );

    drop(first.stop().await);
    drop(second.stop().await);
    conn.close().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let name = url.rsplit('/').next().unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

#[tokio::test]
async fn on_postgres_prune_keeps_the_chain_verifiable_and_master_key_events_chain_globally() {
    let Some((admin_url, url)) = pg_database().await else {
        return;
    };
    let app = TestApp::spawn_with(|c| c.storage.database_url = url.clone()).await;
    use sealflow::store::{AuditEvent, MasterKeyEvent};
    for (event, key) in [
        (MasterKeyEvent::Added, "mk_new"),
        (MasterKeyEvent::Rotated, "mk_new"),
        (MasterKeyEvent::Retired, "mk_old"),
    ] {
        app.store
            .append_audit(vec![AuditEvent::master_key(event, key, "cli")])
            .await
            .unwrap();
    }
    put_secret(&app, "OLD", &random_secret_value()).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    put_secret(&app, "NEW", &random_secret_value()).await;
    let target = Target::Url(url.clone());
    let (ok, out) = audit_cli(&["verify"], &target).await;
    assert!(ok && out.contains("chain global: ok, seq 1..3"), "{out}");
    let (ok, out) = audit_cli(&["prune", "--before", &cut], &target).await;
    assert!(ok, "{out}");
    assert!(out.contains("chain global: pruned 3 entries"), "{out}");
    let (ok, out) = audit_cli(&["verify"], &target).await;
    assert!(ok, "{out}");
    let ws = acme(&app).await;
    assert!(out.contains(&format!("chain {ws}: ok, seq 3..3")), "{out}");
    assert_eq!(kinds(&entries(&app, "").await), ["secret.created"]);

    drop(app.stop().await);
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let name = url.rsplit('/').next().unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}
