//! The run engine across process boundaries, against the real `sealflow serve` binary:
//!
//! - a server killed with SIGKILL mid-work loses no acknowledged run: after a restart on the same
//!   data dir every run finishes, every step was delivered at least once, and the only duplicate
//!   deliveries are the few sends that were in flight at the kill (same delivery id each time);
//! - a run parked on a `delay` step survives a restart without starting its wait again;
//! - a secret used in a webhook's URL, header and body reaches the remote service in plaintext and
//!   nowhere else: not the debug log, not the run as the API shows it, not the database files.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

/// A `sealflow serve` process that can also be killed with SIGKILL (the shared
/// [`ServerProcess`] only stops gracefully). Modelled on it: stderr is collected, the address is
/// read from the `address=` field of the "listening" line.
struct KillableServer {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl KillableServer {
    fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        let mut child = sealflow_bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sealflow");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("sealflow listening") {
                    if let Some(addr) = line.split("address=").nth(1) {
                        let addr = addr.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.trim_matches('"').to_owned());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Self {
                    child,
                    base: format!("http://{addr}"),
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("sealflow exited with {status}:\n{}", log.lock().unwrap());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sealflow did not start in time:\n{}", log.lock().unwrap());
            }
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code runs at all.
    fn kill9(mut self) -> String {
        self.child.kill().expect("send SIGKILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.signal(), Some(9), "the server died of SIGKILL: {status}");
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                return self.log.lock().unwrap().clone();
            }
            assert!(Instant::now() < deadline, "sealflow did not die on SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for KillableServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A small API client; every request has a timeout.
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(base: &str, key: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(45))
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await;
        split(res.unwrap_or_else(|e| panic!("GET {path}: {e}"))).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await;
        split(res.unwrap_or_else(|e| panic!("POST {path}: {e}"))).await
    }

    async fn workflow(&self, body: Value) -> String {
        let (status, wf) = self.post("/api/workflows", &body).await;
        assert_eq!(status, 201, "{wf}");
        wf["id"].as_str().unwrap().to_owned()
    }

    /// Runs `workflow_id` (not waiting) and returns the run id.
    async fn start_run(&self, workflow_id: &str) -> String {
        let (status, run) = self
            .post(
                &format!("/api/workflows/{workflow_id}/run"),
                &json!({"input": {}}),
            )
            .await;
        assert_eq!(status, 201, "{run}");
        run["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, run_id: &str) -> Value {
        let (status, run) = self.get(&format!("/api/workflows/runs/{run_id}")).await;
        assert_eq!(status, 200, "{run}");
        run
    }

    /// Polls a run until it has finished; panics after `secs`.
    async fn wait_finished(&self, run_id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let run = self.run(run_id).await;
            if matches!(run["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return run;
            }
            assert!(Instant::now() < deadline, "run did not finish in {secs}s: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rfc3339_ms(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

const RUNS: usize = 30;
const WORKERS: usize = 4;

#[test]
fn a_server_killed_mid_work_loses_no_run_and_resends_only_what_was_in_flight() {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let workers = WORKERS.to_string();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_LEASE_MS", "1500"),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_RUN_RATE_LIMIT", "100000"),
        ("SEALFLOW_WORKERS", workers.as_str()),
    ];
    let key = admin_key(dir.path(), &master_key);

    let first = KillableServer::start(dir.path(), &envs);
    let api = Api::new(&first.base, &key);
    let workflow = rt.block_on(api.workflow(json!({
        "name": "slow notify",
        "steps": [{"id": "notify", "type": "webhook",
                   "config": {"url": format!("{}/slow/150", receiver.base)}}],
    })));
    // All 30 submitted at once; each acknowledged with 201 (start_run asserts it).
    let ids: Vec<String> =
        rt.block_on(async { futures::future::join_all((0..RUNS).map(|_| api.start_run(&workflow))).await });
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), RUNS, "distinct run ids");

    wait_until(Duration::from_secs(20), "the first 5 deliveries", || {
        receiver.count() >= 5
    });
    let first_log = first.kill9();
    let seen_at_kill: HashSet<String> = receiver.seen().iter().map(|r| r.delivery_id()).collect();
    assert!(
        seen_at_kill.len() < RUNS,
        "the kill came after all {RUNS} deliveries; the test proves nothing (seen {})",
        seen_at_kill.len()
    );

    let second = ServerProcess::start(dir.path(), &envs).expect("restart on the same data dir");
    let api = Api::new(&second.base, &key);
    let finished: Vec<Value> = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, list) = api
                .get(&format!("/api/workflows/runs?workflow_id={workflow}&limit=100"))
                .await;
            assert_eq!(status, 200, "{list}");
            let runs = list["runs"].as_array().unwrap();
            let done = runs
                .iter()
                .filter(|r| matches!(r["status"].as_str(), Some("completed" | "failed")))
                .count();
            if done == RUNS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {done} of {RUNS} runs finished 60 s after the restart: {list}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut finished = Vec::new();
        for id in &ids {
            finished.push(api.run(id).await);
        }
        finished
    });
    let second_log = second.stop();

    let mut failed = 0;
    for run in &finished {
        match run["status"].as_str() {
            Some("completed") => {
                assert_eq!(run["steps"][0]["status"], "completed", "{run}");
                assert_eq!(run["steps"][0]["output"]["status_code"], 200, "{run}");
                assert!(run["completed_at"].is_string(), "{run}");
            }
            Some("failed") => {
                failed += 1;
                let error = run["error"].as_str().unwrap_or_default();
                assert!(!error.is_empty(), "a failed run says why: {run}");
            }
            other => panic!("run {} is {other:?}, not finished: {run}", run["id"]),
        }
    }

    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for r in receiver.seen() {
        assert_eq!(r.path, "/slow/150");
        *deliveries.entry(r.delivery_id()).or_default() += 1;
    }
    let expected: HashSet<String> = ids.iter().map(|id| format!("{id}-notify")).collect();
    for id in &expected {
        assert!(deliveries.contains_key(id), "{id} was never delivered");
    }
    let unknown: Vec<_> = deliveries.keys().filter(|d| !expected.contains(*d)).collect();
    assert!(unknown.is_empty(), "deliveries with unexpected ids: {unknown:?}");
    let duplicated: Vec<(&String, &usize)> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    let duplicates: usize = duplicated.iter().map(|(_, n)| *n - 1).sum();
    println!(
        "crash test: {} deliveries seen at the kill, {} in all for {RUNS} runs; duplicate deliveries: \
         {duplicates} ({} runs sent twice or more); failed runs: {failed}",
        seen_at_kill.len(),
        deliveries.values().sum::<usize>(),
        duplicated.len(),
    );
    // Only a send that had started before the kill (its result not yet recorded) may repeat, and
    // at most one per worker was in flight.
    for (id, _) in &duplicated {
        assert!(
            seen_at_kill.contains(*id),
            "{id} was sent twice but was not in flight at the kill"
        );
    }
    assert!(
        duplicates <= WORKERS,
        "{duplicates} duplicate deliveries with {WORKERS} workers"
    );
    assert!(!first_log.is_empty() && second_log.contains("sealflow listening"));
}

#[test]
fn a_delay_survives_a_restart_without_waiting_again_from_zero() {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_LEASE_MS", "1500"),
    ];
    let key = admin_key(dir.path(), &master_key);

    let first = ServerProcess::start(dir.path(), &envs).expect("server starts");
    let api = Api::new(&first.base, &key);
    let (run_id, created) = rt.block_on(async {
        let workflow = api
            .workflow(json!({
                "name": "delayed follow-up",
                "steps": [
                    {"id": "wait", "type": "delay", "config": {"seconds": 4}},
                    {"id": "after", "type": "webhook", "config": {"url": format!("{}/ok", receiver.base)}},
                ],
            }))
            .await;
        let run_id = api.start_run(&workflow).await;
        let created = Instant::now();
        // Parked: the delay step is running, nothing has been sent.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let run = api.run(&run_id).await;
            if run["steps"][0]["status"] == "running" {
                assert_eq!(run["status"], "running", "{run}");
                assert_eq!(run["steps"][1]["status"], "pending", "{run}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the run never reached its delay: {run}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (run_id, created)
    });
    std::thread::sleep(Duration::from_secs(1).saturating_sub(created.elapsed()));
    let stopping = Instant::now();
    first.stop();
    // No worker holds a parked run, so the shutdown does not wait out its 10 s grace period.
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        stopping.elapsed()
    );
    assert_eq!(receiver.count(), 0, "nothing is sent before the delay is over");
    std::thread::sleep(Duration::from_secs(1));

    let second = ServerProcess::start(dir.path(), &envs).expect("restart");
    let restarted_after = created.elapsed();
    let api = Api::new(&second.base, &key);
    let run = rt.block_on(api.wait_finished(&run_id, 20));
    second.stop();

    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["steps"][0]["status"], "completed", "{run}");
    assert_eq!(run["steps"][1]["status"], "completed", "{run}");
    // A wait restarted from zero would end 4 s after the restart, which came at least 2 s after
    // the run was created: at least 6 s in all. Timestamps have whole seconds, so a true 4.x s
    // shows as 4 or 5 and a true 6+ s as 6 or more.
    assert!(
        restarted_after >= Duration::from_secs(2),
        "restart came after {restarted_after:?}"
    );
    let secs = (rfc3339_ms(&run["completed_at"]) - rfc3339_ms(&run["created_at"])) / 1000;
    assert!(
        (4..6).contains(&secs),
        "created_at → completed_at is {secs} s: {run}"
    );
    // The same at millisecond precision: the run's and the delay step's own durations.
    let run_ms = run["duration_ms"].as_i64().unwrap();
    assert!((4000..6000).contains(&run_ms), "run duration_ms {run_ms}: {run}");
    let delay_ms = run["steps"][0]["duration_ms"].as_i64().unwrap();
    assert!(
        (4000..6000).contains(&delay_ms),
        "delay step duration_ms {delay_ms}: {run}"
    );

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "exactly one send after the delay: {seen:?}");
    assert_eq!(seen[0].delivery_id(), format!("{run_id}-after"));
}

#[test]
fn a_secret_sent_by_a_webhook_step_reaches_only_the_receiver() {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_LOG", "debug"),
    ];
    let key = admin_key(dir.path(), &master_key);
    let value = random_secret_value();
    let authorization = format!("Bearer {value}");

    let server = ServerProcess::start(dir.path(), &envs).expect("server starts");
    let api = Api::new(&server.base, &key);
    let (run, fetched) = rt.block_on(async {
        let (status, body) = api
            .post(
                "/api/workflows/secrets",
                &json!({"name": "TOKEN", "value": value}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let workflow = api
            .workflow(json!({
                "name": "echo a secret",
                "steps": [{"id": "send", "type": "webhook", "config": {
                    "url": format!("{}/echo/{{{{secrets.TOKEN}}}}", receiver.base),
                    "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
                    "body": {"token": "{{secrets.TOKEN}}", "note": "plain"},
                }}],
            }))
            .await;
        let (status, run) = api
            .post(
                &format!("/api/workflows/{workflow}/run?wait=20"),
                &json!({"input": {}}),
            )
            .await;
        assert_eq!(status, 201, "{run}");
        let id = run["id"].as_str().unwrap().to_owned();
        let fetched = api.wait_finished(&id, 20).await;
        (run, fetched)
    });
    let log = server.stop();

    // The receiver got the plaintext, in all three places.
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, format!("/echo/{value}"));
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some(authorization.as_str())
    );
    let body: Value = serde_json::from_slice(&seen[0].body).expect("a JSON body");
    assert_eq!(body, json!({"token": value, "note": "plain"}));

    assert_eq!(fetched["status"], "completed", "{fetched}");
    let echoed = &fetched["steps"][0]["output"]["body"];
    assert_eq!(echoed["path"], "/echo/[REDACTED]", "{fetched}");
    assert_eq!(echoed["authorization"], "Bearer [REDACTED]", "{fetched}");
    assert!(log.contains("run accepted"), "the log was captured:\n{log}");
    assert!(log.contains("DEBUG"), "the log is at debug level:\n{log}");

    let run_text = run.to_string();
    let fetched_text = fetched.to_string();
    assert!(fetched_text.contains("[REDACTED]"), "{fetched_text}");
    for (what, needle) in [
        ("the value", value.clone()),
        ("the value in base64", b64(&value)),
        ("the Authorization header in base64", b64(&authorization)),
    ] {
        assert!(!log.contains(&needle), "the log leaks {what}");
        assert!(
            !run_text.contains(&needle),
            "the run (from ?wait) leaks {what}: {run_text}"
        );
        assert!(
            !fetched_text.contains(&needle),
            "the run (GET) leaks {what}: {fetched_text}"
        );
        let hits = dir_contains(dir.path(), needle.as_bytes());
        assert!(hits.is_empty(), "{what} found in {hits:?}");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.iter().any(|f| f == "sealflow.db"), "{files:?}");
}

#[test]
fn sigterm_is_not_held_up_by_a_request_waiting_on_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", master_key.as_str())]).unwrap();
    let api = Api::new(&server.base, &admin_key(dir.path(), &master_key));
    let rt = runtime();
    let wf = rt.block_on(api.workflow(json!({"name": "parked", "steps": [
        {"id": "wait", "type": "delay", "config": {"seconds": 60}}]})));
    // A request that would wait 30 s for a run that takes 60 s.
    let waiting = rt.spawn(async move {
        api.post(&format!("/api/workflows/{wf}/run?wait=30"), &json!({}))
            .await
    });
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    server.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
    let (status, run) = rt.block_on(waiting).unwrap();
    assert_eq!(
        status, 201,
        "the waiting request is answered with the run as it stands"
    );
    assert_eq!(run["status"], "running", "{run}");
}

/// Posts to a webhook ingest path until the server stops answering; returns the run ids it was
/// given (each a 202: the run is acknowledged).
async fn ingest_until_refused(client: reqwest::Client, url: String, acked: Arc<Mutex<Vec<String>>>) {
    for n in 0.. {
        let res = client.post(&url).json(&json!({"id": n})).send().await;
        let Ok(res) = res else { return };
        if res.status().as_u16() != 202 {
            return;
        }
        let Ok(body) = res.json::<Value>().await else {
            return;
        };
        acked
            .lock()
            .unwrap()
            .push(body["id"].as_str().unwrap().to_owned());
    }
}

#[test]
fn every_run_acknowledged_during_a_burst_of_64_callers_survives_a_kill_and_completes() {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_LEASE_MS", "1500"),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_HOOK_RATE_LIMIT", "100000000"),
        ("SEALFLOW_WORKERS", "16"),
    ];
    let key = admin_key(dir.path(), &master_key);
    let first = KillableServer::start(dir.path(), &envs);
    let api = Api::new(&first.base, &key);
    let hook_path = rt.block_on(async {
        let (status, wf) = api
            .post(
                "/api/workflows",
                &json!({"name": "burst", "status": "active", "trigger": {"type": "webhook"},
                        "steps": [{"id": "notify", "type": "webhook",
                                   "config": {"url": format!("{}/slow/20", receiver.base)}}]}),
            )
            .await;
        assert_eq!(status, 201, "{wf}");
        let url = wf["webhook_url"].as_str().expect("a webhook url").to_owned();
        url[url.find("/api/hooks/").expect("hook path")..].to_owned()
    });

    let acked = Arc::new(Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            rt.spawn(ingest_until_refused(
                client,
                format!("{}{hook_path}", first.base),
                acked.clone(),
            ))
        })
        .collect();
    wait_until(Duration::from_secs(30), "300 acknowledged runs", || {
        acked.lock().unwrap().len() >= 300
    });
    first.kill9();
    rt.block_on(async {
        for caller in callers {
            tokio::time::timeout(Duration::from_secs(15), caller)
                .await
                .expect("callers stop once the server is gone")
                .unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let second = ServerProcess::start(dir.path(), &envs).expect("restart on the same data dir");
    let api = Api::new(&second.base, &key);
    rt.block_on(async {
        for id in &acked {
            let run = api.wait_finished(id, 60).await;
            assert_eq!(run["status"], "completed", "acknowledged run {id}: {run}");
        }
    });
    let delivered: HashSet<String> = receiver.seen().iter().map(|r| r.delivery_id()).collect();
    for id in &acked {
        assert!(
            delivered.contains(&format!("{id}-notify")),
            "{id} was never delivered"
        );
    }
    println!(
        "burst test: {} runs acknowledged before the kill, all completed",
        acked.len()
    );
    second.stop();
}

#[test]
fn a_run_that_keeps_killing_its_worker_is_failed_after_the_attempt_limit() {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_LEASE_MS", "500"),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
        ("SEALFLOW_MAX_RUN_ATTEMPTS", "2"),
    ];
    let key = admin_key(dir.path(), &master_key);
    let server = KillableServer::start(dir.path(), &envs);
    let api = Api::new(&server.base, &key);
    let (workflow, run_id) = rt.block_on(async {
        let workflow = api
            .workflow(json!({
                "name": "killer",
                "steps": [{"id": "hang", "type": "webhook",
                           "config": {"url": format!("{}/slow/60000", receiver.base)}}],
            }))
            .await;
        let run_id = api.start_run(&workflow).await;
        (workflow, run_id)
    });
    // Each attempt dies mid-step: the request has reached the remote, its result is never
    // recorded. (A real crash loop: the process dies while the run is mid-step.)
    let mut server = Some(server);
    for attempt in 1..=2 {
        wait_until(Duration::from_secs(20), "the step's request", || {
            receiver.count() >= attempt
        });
        server.take().unwrap().kill9();
        if attempt < 2 {
            server = Some(KillableServer::start(dir.path(), &envs));
        }
    }
    let last = ServerProcess::start(dir.path(), &envs).expect("restart");
    let api = Api::new(&last.base, &key);
    let run = rt.block_on(api.wait_finished(&run_id, 20));
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("2 attempts") && error.contains("SEALFLOW_MAX_RUN_ATTEMPTS"),
        "the error names the limit: {error}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.count(), 2, "not sent a third time");
    let _ = workflow;
    last.stop();
}

/// A webhook caller that hangs up while its run is waiting in the writer's queue must not leave
/// the run claimed by a worker that never starts it: the run is stored all the same, so it must
/// also start at once, not when its lease (a minute here) runs out. The writer is held behind an
/// outside `BEGIN IMMEDIATE` on the database file while the caller connects, sends and leaves.
#[test]
fn a_run_whose_caller_hung_up_before_it_was_stored_still_starts_at_once() {
    use sqlx::{Connection, Executor};
    use std::io::Write;
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let envs = [
        ("SEALFLOW_MASTER_KEY", master_key.as_str()),
        ("SEALFLOW_LEASE_MS", "60000"),
        ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
    ];
    let key = admin_key(dir.path(), &master_key);
    let server = KillableServer::start(dir.path(), &envs);
    let api = Api::new(&server.base, &key);
    rt.block_on(async {
        let (status, wf) = api
            .post(
                "/api/workflows",
                &json!({"name": "hangup", "status": "active", "trigger": {"type": "webhook"},
                        "steps": [{"id": "notify", "type": "webhook",
                                   "config": {"url": format!("{}/hook", receiver.base)}}]}),
            )
            .await;
        assert_eq!(status, 201, "{wf}");
        let url = wf["webhook_url"].as_str().expect("a webhook url");
        let path = &url[url.find("/api/hooks/").expect("hook path")..];
        let wf_id = wf["id"].as_str().unwrap().to_owned();

        let db = format!("sqlite://{}", dir.path().join("sealflow.db").display());
        let mut outside = sqlx::SqliteConnection::connect(&db).await.unwrap();
        outside.execute("BEGIN IMMEDIATE").await.unwrap();
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut caller = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            caller,
            "POST {path}?wait=10 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        )
        .unwrap();
        // The insert is queued behind the outside lock; the caller leaves.
        tokio::time::sleep(Duration::from_millis(500)).await;
        caller.shutdown(std::net::Shutdown::Both).unwrap();
        drop(caller);
        tokio::time::sleep(Duration::from_millis(500)).await;
        outside.execute("ROLLBACK").await.unwrap();

        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, runs) = api.get(&format!("/api/workflows/runs?workflow_id={wf_id}")).await;
            assert_eq!(status, 200, "{runs}");
            let list = runs["runs"].as_array().cloned().unwrap_or_default();
            if list.len() == 1 && list[0]["status"] == "completed" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not complete within 15 s of being stored (lease: 60 s): {runs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(receiver.seen().len(), 1, "the step was delivered once");
    drop(server);
}
