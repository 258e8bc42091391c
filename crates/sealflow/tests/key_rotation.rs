//! Online master-key rotation with the real binary: `sealflow key add|rotate|status|retire` on a
//! database that real servers keep serving, while runs send secrets to a real local receiver.
//!
//! SQLite: 1,000 secrets, a `key rotate` killed with SIGKILL in the middle of its rewrap and run
//! again, `retire` refused while the old key is in use and accepted after, an old-key-only start
//! refused, a new-key-only start serving everything, and a signed webhook's key unchanged.
//! PostgreSQL: two instances holding both keys keep serving through a rotation, and finish a rewrap
//! whose `key rotate` was killed, by themselves.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::PgDb;
use common::receiver::Receiver;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Secrets per workflow body (each run sends this many secrets in one webhook call).
const PER_WORKFLOW: usize = 100;

/// `sealflow key ARGS` with `envs` (and nothing else from this process's `SEALFLOW_*`).
fn key_cmd(args: &[&str], envs: &[(&str, &str)]) -> Output {
    sealflow_bin()
        .arg("key")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run sealflow key")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sealflow key status --output json`.
fn status(storage: &[(&str, &str)]) -> Value {
    let out = key_cmd(&["status", "--output", "json"], storage);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("status is JSON")
}

/// The `data_keys` of key `id` in a status document.
fn data_keys_under(status: &Value, id: &str) -> i64 {
    status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .map_or(0, |k| k["data_keys"].as_i64().unwrap())
}

/// The id `sealflow` gives a base64 master key.
fn key_id(key: &str) -> String {
    sealflow::vault::MasterKey::from_base64(key)
        .unwrap()
        .id()
        .to_owned()
}

/// Starts `sealflow key rotate` and kills it with SIGKILL once it reports at least `after` data
/// keys rewrapped; returns its stdout so far.
fn rotate_and_kill(envs: &[(&str, &str)], after: u64) -> String {
    let mut child = sealflow_bin()
        .args(["key", "rotate"])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn key rotate");
    let mut seen = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        let so_far = line
            .strip_prefix("rewrapped ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        if so_far.is_some_and(|n| n >= after) {
            child.kill().unwrap(); // SIGKILL
            let _ = child.wait();
            return seen;
        }
    }
    let _ = child.wait();
    panic!("key rotate ended before it could be killed mid-way:\n{seen}");
}

/// Secrets `S0000…` with random values, stored through the API, `concurrency` at a time.
async fn store_secrets(bases: &[String], api_key: &str, n: usize) -> HashMap<String, String> {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let secrets: HashMap<String, String> = (0..n)
        .map(|i| (format!("S{i:04}"), random_secret_value()))
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(secrets.iter().enumerate())
        .map(|(i, (name, value))| {
            let req = client
                .post(format!("{}/api/workflows/secrets", bases[i % bases.len()]))
                .bearer_auth(api_key)
                .json(&json!({"name": name, "value": value}));
            async move { req.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    secrets
}

/// One workflow per `PER_WORKFLOW` secrets, each sending its secrets' values in one body.
async fn sending_workflows(base: &str, api_key: &str, rx: &Receiver, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for w in 0..n.div_ceil(PER_WORKFLOW) {
        let body: serde_json::Map<String, Value> = (w * PER_WORKFLOW..((w + 1) * PER_WORKFLOW).min(n))
            .map(|i| {
                let name = format!("S{i:04}");
                let template = format!("{{{{secrets.{name}}}}}");
                (name, Value::String(template))
            })
            .collect();
        let res = client
            .post(format!("{base}/api/workflows"))
            .bearer_auth(api_key)
            .json(
                &json!({"name": format!("send-{w}"), "steps": [{"id": "send", "type": "webhook",
                "config": {"url": format!("{}/ok/{w}", rx.base), "body": body}}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

/// Runs a workflow and waits for it; returns its final status.
async fn run(client: &reqwest::Client, base: &str, api_key: &str, wf: &str) -> String {
    let res = client
        .post(format!("{base}/api/workflows/{wf}/run?wait=30"))
        .bearer_auth(api_key)
        .json(&json!({"input": {}}))
        .send()
        .await;
    let res = match res {
        Ok(res) => res,
        Err(e) => return format!("request failed: {e}"),
    };
    let status = res.status().as_u16();
    let run: Value = res.json().await.unwrap_or(Value::Null);
    if status != 201 {
        return format!("HTTP {status}: {run}");
    }
    match run["status"].as_str() {
        Some("completed") => "completed".into(),
        _ => format!("not completed: {run}"),
    }
}

/// Runs every workflow once (on `base`) and checks that each completed.
async fn run_all(base: &str, api_key: &str, workflows: &[String]) {
    let client = reqwest::Client::new();
    for wf in workflows {
        assert_eq!(run(&client, base, api_key, wf).await, "completed");
    }
}

/// Checks every body the receiver got: each field must be the stored value of that secret.
/// Returns how many values were checked.
fn check_received(rx: &Receiver, secrets: &HashMap<String, String>) -> usize {
    let mut checked = 0;
    for got in rx.seen().iter().filter(|r| r.path.starts_with("/ok/")) {
        let body: serde_json::Map<String, Value> = serde_json::from_slice(&got.body).expect("JSON body");
        assert!(!body.is_empty());
        for (name, value) in body {
            assert_eq!(
                value.as_str(),
                Some(secrets[&name].as_str()),
                "secret {name} arrived with another value"
            );
            checked += 1;
        }
    }
    checked
}

/// Runs that use secrets, round-robin over `bases` and `workflows`, two at a time, until
/// stopped; records the outcome and end time of each.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<(Instant, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(bases: Vec<String>, api_key: &str, workflows: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..2)
            .map(|t| {
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                let (bases, workflows, key) = (bases.clone(), workflows.clone(), api_key.to_owned());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let base = &bases[i % bases.len()];
                        let outcome = run(&client, base, &key, &workflows[i % workflows.len()]).await;
                        outcomes.lock().unwrap().push((Instant::now(), outcome));
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            tasks,
        }
    }

    /// Stops and returns every outcome.
    async fn finish(self) -> Vec<(Instant, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        outcomes
    }
}

fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Creates an active workflow with a signed webhook trigger; returns (its URL path, its key).
async fn signed_workflow(base: &str, api_key: &str) -> (String, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/workflows"))
        .bearer_auth(api_key)
        .json(&json!({"name": "signed", "status": "active",
            "trigger": {"type": "webhook", "config": {"signed": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let wf: Value = res.json().await.unwrap();
    let url = wf["webhook_url"].as_str().unwrap();
    let path = url[url.find("/api/").expect("an /api/ path")..].to_owned();
    (path, wf["webhook_signing_key"].as_str().unwrap().to_owned())
}

/// Calls a signed webhook on `base` with a body signed by `key`; returns the status.
async fn call_signed(base: &str, path: &str, key: &str, n: usize) -> u16 {
    let body = format!(r#"{{"call":{n}}}"#);
    let now = chrono::Utc::now().timestamp().to_string();
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("x-signature-timestamp", &now)
        .header("x-signature-256", sign(key, &now, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn start_server(dir: &Path, envs: &[(&str, &str)]) -> ServerProcess {
    let mut all = vec![
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_RUN_RATE_LIMIT", "1000000"),
    ];
    all.extend_from_slice(envs);
    ServerProcess::start(dir, &all).expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_thousand_secrets_under_load_survives_a_kill_and_retires_the_old_key() {
    const SECRETS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (old, new) = (new_master_key(), new_master_key());
    let (old_id, new_id) = (key_id(&old), key_id(&new));
    let rx = Receiver::start().await;

    // Before: one key. Secrets, the workflows that send them, and a signed webhook.
    let server = start_server(dir.path(), &[("SEALFLOW_MASTER_KEY", &old)]);
    let api_key = admin_key(dir.path(), &old);
    let bases = vec![server.base.clone()];
    let secrets = store_secrets(&bases, &api_key, SECRETS).await;
    let workflows = sending_workflows(&server.base, &api_key, &rx, SECRETS).await;
    let (hook, hook_key) = signed_workflow(&server.base, &api_key).await;
    assert_eq!(call_signed(&server.base, &hook, &hook_key, 1).await, 202);
    server.stop();

    // The operator gives the instance the next key too and registers it.
    let both = [
        ("SEALFLOW_MASTER_KEY", old.as_str()),
        ("SEALFLOW_MASTER_KEY_NEXT", new.as_str()),
        ("SEALFLOW_DATA_DIR", data_dir),
    ];
    let server = start_server(dir.path(), &both[..2]);
    let bases = vec![server.base.clone()];
    // `key add` reads the next key from a file this time (the `_FILE` form, mode 0600).
    let keys_dir = tempfile::tempdir().unwrap();
    let next_file = keys_dir.path().join("next.key");
    std::fs::write(&next_file, format!("{new}\n")).unwrap();
    std::fs::set_permissions(&next_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = key_cmd(
        &["add"],
        &[
            ("SEALFLOW_MASTER_KEY", old.as_str()),
            ("SEALFLOW_MASTER_KEY_NEXT_FILE", next_file.to_str().unwrap()),
            ("SEALFLOW_DATA_DIR", data_dir),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("registered master key {new_id}")),
        "{}",
        stdout(&out)
    );
    let mut printed = stdout(&out) + &stderr(&out);
    let storage = [("SEALFLOW_DATA_DIR", data_dir)];
    let before = status(&storage);
    assert_eq!(before["current"], old_id.as_str());
    assert_eq!(data_keys_under(&before, &old_id), SECRETS as i64);

    // Rotate while runs that send secrets are going; kill the rewrap in the middle.
    let load = Load::start(bases.clone(), &api_key, workflows.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotate_started = Instant::now();
    let mut slow = both.to_vec();
    slow.extend([
        ("SEALFLOW_KEY_REWRAP_BATCH", "25"),
        ("SEALFLOW_KEY_REWRAP_PAUSE_MS", "100"),
    ]);
    let killed = tokio::task::block_in_place(|| rotate_and_kill(&slow, 100));
    assert!(
        killed.contains(&format!("master key {new_id} is now current")),
        "{killed}"
    );
    let midway = status(&storage);
    assert_eq!(midway["current"], new_id.as_str(), "{midway}");
    let (under_old, under_new) = (
        data_keys_under(&midway, &old_id),
        data_keys_under(&midway, &new_id),
    );
    assert!(under_old > 0 && under_new >= 100, "{midway}");
    assert_eq!(under_old + under_new, SECRETS as i64, "{midway}");

    // Retiring the old key now is refused: it still wraps data keys.
    let out = key_cmd(&["retire", &old_id], &storage);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("still in use") && stderr(&out).contains(&format!("{under_old} data keys")),
        "{}",
        stderr(&out)
    );

    // Run again: it finishes (at full speed, for the figure in the report).
    let resumed = key_cmd(&["rotate"], &both);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    printed += &(stderr(&resumed) + &killed);
    let resumed = stdout(&resumed);
    printed += &resumed;
    println!("resumed rotate:\n{resumed}");
    assert!(
        resumed.contains(&format!("done: {under_old} data keys rewrapped")),
        "{resumed}"
    );
    let rotate_ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;
    let failed: Vec<&String> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| *o != "completed")
        .collect();
    assert!(failed.is_empty(), "runs failed during the rotation: {failed:?}");
    let during = outcomes
        .iter()
        .filter(|(at, _)| *at > rotate_started && *at < rotate_ended)
        .count();
    assert!(during >= 2, "only {during} runs finished during the rotation");

    let after = status(&storage);
    assert_eq!(data_keys_under(&after, &old_id), 0, "{after}");
    assert_eq!(data_keys_under(&after, &new_id), SECRETS as i64, "{after}");
    assert_eq!(after["pending"], 0);
    assert_eq!(after["derivation_root_pending"], false);
    let text = key_cmd(&["status"], &storage);
    let text = stdout(&text);
    assert!(text.contains(&format!("current master key: {new_id}")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&old_id) && l.contains(" 0 data keys")),
        "{text}"
    );

    // Every secret still decrypts (each workflow sends its 100), and the hook key is the same.
    run_all(&server.base, &api_key, &workflows).await;
    assert_eq!(call_signed(&server.base, &hook, &hook_key, 2).await, 202);
    server.stop();

    // The current key cannot be retired; the old one now can.
    let out = key_cmd(&["retire", &new_id], &storage);
    assert!(
        !out.status.success() && stderr(&out).contains("current key"),
        "{}",
        stderr(&out)
    );
    let out = key_cmd(&["retire", &old_id], &storage);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("retired master key {old_id}")));

    // The audit trail's global chain holds the three master-key events (ids only) and verifies.
    let out = sealflow_bin()
        .args(["audit", "verify"])
        .env("SEALFLOW_DATA_DIR", data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("sealflow.db").display()))
        .await
        .unwrap();
    let events: Vec<(String, Option<String>, Option<String>, String)> = sqlx::query_as(
        "SELECT kind, subject, detail, actor FROM audit_entries WHERE chain = 'global' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let cli = || "cli".to_owned();
    assert_eq!(
        events,
        vec![
            ("master_key.added".to_owned(), Some(new_id.clone()), None, cli()),
            (
                "master_key.rotated".to_owned(),
                Some(new_id.clone()),
                Some(format!("from {old_id}")),
                cli()
            ),
            ("master_key.retired".to_owned(), Some(old_id.clone()), None, cli()),
        ]
    );

    // Only the old key: refused, naming both ids. Only the new key: serves everything.
    let err = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", &old)])
        .err()
        .expect("an old-key-only instance must not start");
    assert!(err.contains(&old_id) && err.contains(&new_id), "{err}");
    assert!(
        !err.contains("listening") && !err.contains(&old) && !err.contains(&new),
        "{err}"
    );
    let server = start_server(dir.path(), &[("SEALFLOW_MASTER_KEY", &new)]);
    run_all(&server.base, &api_key, &workflows).await;
    assert_eq!(call_signed(&server.base, &hook, &hook_key, 3).await, 202);
    let checked = check_received(&rx, &secrets);
    assert!(
        checked >= (outcomes.len() + 2 * workflows.len()) * PER_WORKFLOW,
        "{checked} values checked"
    );
    let log = server.stop() + &printed;
    for key in [&old, &new] {
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).unwrap();
        assert!(
            !log.contains(key.as_str()) && !log.contains(&hex::encode(&raw)),
            "a key was printed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_both_keys_keeps_serving_through_a_rotation_and_finishes_a_killed_rewrap() {
    const SECRETS: usize = 300;
    let Some(db) = PgDb::create().await else {
        return;
    };
    let (old, new) = (new_master_key(), new_master_key());
    let (old_id, new_id) = (key_id(&old), key_id(&new));
    let rx = Receiver::start().await;
    let both = [
        ("SEALFLOW_DATABASE_URL", db.url.as_str()),
        ("SEALFLOW_MASTER_KEY", old.as_str()),
        ("SEALFLOW_MASTER_KEY_NEXT", new.as_str()),
    ];
    let mut server_env = both.to_vec();
    server_env.push(("SEALFLOW_KEY_REWRAP_TAKEOVER_MS", "2000"));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start_server(dirs[0].path(), &server_env);
    let b = start_server(dirs[1].path(), &server_env);
    let out = sealflow_bin()
        .args(["apikey", "create", "--workspace", "acme", "--role", "admin"])
        .envs(both.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let api_key = stdout(&out).lines().last().unwrap().to_owned();
    let bases = vec![a.base.clone(), b.base.clone()];
    let secrets = store_secrets(&bases, &api_key, SECRETS).await;
    let workflows = sending_workflows(&a.base, &api_key, &rx, SECRETS).await;
    // Both instances read the one derivation root: a key shown by one verifies on the other.
    let (hook, hook_key) = signed_workflow(&a.base, &api_key).await;
    assert_eq!(call_signed(&b.base, &hook, &hook_key, 1).await, 202);

    let out = key_cmd(&["add"], &both);
    assert!(out.status.success(), "{}", stderr(&out));
    let storage = [("SEALFLOW_DATABASE_URL", db.url.as_str())];
    let load = Load::start(bases.clone(), &api_key, workflows.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut slow = both.to_vec();
    slow.extend([
        ("SEALFLOW_KEY_REWRAP_BATCH", "10"),
        ("SEALFLOW_KEY_REWRAP_PAUSE_MS", "100"),
    ]);
    let killed = tokio::task::block_in_place(|| rotate_and_kill(&slow, 50));
    assert!(
        killed.contains(&format!("master key {new_id} is now current")),
        "{killed}"
    );
    // A secret written during the rotation, through the second instance, is sealed under the
    // new key at once (instances read the current key from the database).
    let (status_code, body) = split(
        reqwest::Client::new()
            .post(format!("{}/api/workflows/secrets", b.base))
            .bearer_auth(&api_key)
            .json(&json!({"name": "DURING", "value": random_secret_value()}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status_code, 201, "{body}");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (kek_id,): (String,) = sqlx::query_as("SELECT kek_id FROM secrets WHERE name = 'DURING'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kek_id, new_id);
    pool.close().await;

    // Nobody runs `key rotate` again: the instances take the lapsed lease over and finish.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let now = status(&storage);
        if now["pending"] == 0 && now["derivation_root_pending"] == false {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet did not finish the rewrap: {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(data_keys_under(&done, &old_id), 0, "{done}");
    assert_eq!(data_keys_under(&done, &new_id), SECRETS as i64 + 1, "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.finish().await;
    let failed: Vec<&String> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| *o != "completed")
        .collect();
    assert!(failed.is_empty(), "runs failed during the rotation: {failed:?}");
    assert!(outcomes.len() >= 4, "{} runs", outcomes.len());

    // Both instances serve every secret and the same hook key after the rotation.
    for base in &bases {
        run_all(base, &api_key, &workflows).await;
    }
    assert_eq!(call_signed(&a.base, &hook, &hook_key, 2).await, 202);
    assert_eq!(call_signed(&b.base, &hook, &hook_key, 3).await, 202);
    assert!(check_received(&rx, &secrets) >= (outcomes.len() + 2 * workflows.len()) * PER_WORKFLOW);
    let logs = [a.stop(), b.stop()];
    assert!(
        logs.iter().any(|l| l.contains("finished rewrapping data keys")),
        "no instance reports finishing the rewrap"
    );

    let out = key_cmd(&["retire", &old_id], &storage);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let err = ServerProcess::start(
        dir.path(),
        &[
            ("SEALFLOW_DATABASE_URL", db.url.as_str()),
            ("SEALFLOW_MASTER_KEY", &old),
        ],
    )
    .err()
    .expect("an old-key-only instance must not start");
    assert!(err.contains(&old_id) && err.contains(&new_id), "{err}");
    db.drop_db().await;
}
