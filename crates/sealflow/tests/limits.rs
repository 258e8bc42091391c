//! Size limits against amplification: a definition over `SEALFLOW_MAX_DEFINITION_BYTES` is a
//! 422; a step that would render more than `SEALFLOW_MAX_STEP_BYTES` (transform output, webhook
//! request, condition operands) and a run that would record more than `SEALFLOW_MAX_RUN_BYTES`
//! fail naming the limit; and a real server process under the amplification attempts stays up
//! with a peak RSS (read from `/proc`) under a fixed bound.

mod common;

use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::seed::admin_key_in;
use common::*;
use sealflow::config::Config;
use sealflow_egress::AllowList;
use serde_json::{json, Map, Value};

/// Peak resident memory the server process may reach during the attempts. A debug build idles
/// at a few tens of MiB; each attempt may hold a step's budget (1 MiB) and a run's record
/// (4 MiB) per worker, so 8 workers stay well below this. The attempts unbounded would need
/// about 100 GB.
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;

fn transform(id: &str, output: Value) -> Value {
    json!({"id": id, "type": "transform", "config": {"output": output}})
}

/// Ten copies of `source` under keys a0..a9.
fn ten(source: &str) -> Value {
    Value::Object(
        (0..10)
            .map(|i| (format!("a{i}"), json!(source)))
            .collect::<Map<_, _>>(),
    )
}

/// Six transforms, each ten copies of the one before: 10^6 copies of the input at the end.
fn six_levels_of_ten() -> Value {
    let steps: Vec<Value> = (1..=6)
        .map(|level| {
            let source = if level == 1 {
                "{{input.x}}".to_owned()
            } else {
                format!("{{{{steps.l{}.output}}}}", level - 1)
            };
            transform(&format!("l{level}"), ten(&source))
        })
        .collect();
    json!({"name": "amplify", "steps": steps})
}

/// Fifty transforms, each a copy of the whole input.
fn fifty_copies() -> Value {
    let steps: Vec<Value> = (0..50)
        .map(|i| transform(&format!("c{i}"), json!({"copy": "{{input.x}}", "n": i})))
        .collect();
    json!({"name": "fifty", "steps": steps})
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("request");
        split(res).await
    }

    /// The run once it has finished, and the size of that response in bytes.
    async fn finished(&self, run_id: &str, secs: u64) -> (Value, usize) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let res = self
                .client
                .get(format!("{}/api/workflows/runs/{run_id}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .expect("request");
            let text = res.text().await.expect("body");
            let run: Value = serde_json::from_str(&text).expect("json");
            if matches!(run["status"].as_str(), Some("completed" | "failed")) {
                return (run, text.len());
            }
            assert!(Instant::now() < deadline, "run did not finish in {secs}s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplifying_definitions_fail_at_the_limits_and_the_server_stays_up_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("SEALFLOW_MASTER_KEY", master_key.as_str()),
            ("SEALFLOW_RUN_RATE_LIMIT", "1000"),
        ],
    )
    .expect("server starts");
    let idle_kib = peak_rss_kib(server.pid());
    let api = Api {
        base: server.base.clone(),
        key: admin_key_in(dir.path()).await,
        client: reqwest::Client::new(),
    };
    let (status, amplify) = api.post("/api/workflows", &six_levels_of_ten()).await;
    assert_eq!(status, 201, "{amplify}");
    let (status, fifty) = api.post("/api/workflows", &fifty_copies()).await;
    assert_eq!(status, 201, "{fifty}");

    // Eight runs at once (one per worker): four of each kind.
    let mut runs = Vec::new();
    for i in 0..8 {
        let (wf, x) = if i % 2 == 0 {
            (&amplify, "A".repeat(100_000))
        } else {
            (&fifty, "B".repeat(900_000))
        };
        let path = format!("/api/workflows/{}/run", wf["id"].as_str().unwrap());
        let (status, run) = api.post(&path, &json!({"input": {"x": x}})).await;
        assert_eq!(status, 201, "{run}");
        runs.push((i % 2 == 0, run["id"].as_str().unwrap().to_owned()));
    }
    for (amplifying, id) in &runs {
        let (run, bytes) = api.finished(id, 60).await;
        assert_eq!(run["status"], "failed", "{}", run["error"]);
        let error = run["error"].as_str().unwrap();
        if *amplifying {
            // Ten copies of 100 KB fit in 1 MiB; a hundred do not.
            assert!(error.starts_with("step \"l2\" failed: the rendered output is over the step limit of 1048576 bytes (SEALFLOW_MAX_STEP_BYTES)"), "{error}");
            assert_eq!(run["steps"][0]["status"], "completed");
        } else {
            // Four copies of 900 KB fit in 4 MiB; the fifth does not.
            assert!(error.starts_with("step \"c4\" failed: the run's recorded outputs would pass the run limit of 4194304 bytes (SEALFLOW_MAX_RUN_BYTES)"), "{error}");
            assert_eq!(
                run["steps"][4]["output"],
                json!({}),
                "the failed step's output is not kept"
            );
        }
        // The whole run as served: the recorded outputs (at most 4 MiB), the input and metadata.
        assert!(bytes < 6 << 20, "a GET of the run is {bytes} bytes");
    }

    let health = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
    assert_eq!(health.status(), 200, "the server still answers");
    let peak_kib = peak_rss_kib(server.pid());
    eprintln!("peak RSS: idle {idle_kib} KiB, after the attempts {peak_kib} KiB");
    assert!(
        peak_kib < MAX_PEAK_RSS_KIB,
        "peak RSS {peak_kib} KiB (idle {idle_kib} KiB) is over {MAX_PEAK_RSS_KIB} KiB"
    );
    server.stop();
}

#[tokio::test]
async fn a_definition_over_the_size_limit_is_refused_and_a_rename_still_works() {
    let app = TestApp::spawn().await;
    // 300 KB: under the 1 MiB body limit, over the 256 KiB definition limit.
    let big = json!({"name": "big", "steps": [transform("t", json!("x".repeat(300_000)))]});
    let (status, body) = app.post("/api/workflows", &app.admin_key, &big).await;
    assert_eq!(status, 422, "{}", body["message"]);
    let message = assert_error_shape(&body, "validation_failed");
    assert!(
        message.contains("larger than 262144 bytes, the most allowed (SEALFLOW_MAX_DEFINITION_BYTES)"),
        "{message}"
    );
    assert_eq!(body["details"]["field"], "steps");
    let (_, list) = app.get("/api/workflows", &app.admin_key).await;
    assert_eq!(list["total"], 0);

    let id = app
        .workflow(
            &app.admin_key,
            json!({"name": "small", "steps": [transform("t", json!(1))]}),
        )
        .await;
    let res = app
        .client
        .put(app.url(&format!("/api/workflows/{id}")))
        .bearer_auth(&app.admin_key)
        .json(&json!({"steps": big["steps"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(res).await;
    assert_eq!(status, 422, "{}", body["message"]);
    let (_, wf) = app.get(&format!("/api/workflows/{id}"), &app.admin_key).await;
    assert_eq!(wf["version"], 1, "the refused update changed nothing");
}

fn small_limits(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
    c.engine.limits.step_bytes = 4096;
    c.engine.limits.run_bytes = 10_000;
}

#[tokio::test]
async fn configured_limits_fail_webhook_requests_conditions_and_runs_before_anything_is_sent() {
    let app = TestApp::spawn_with(small_limits).await;
    let rx = Receiver::start().await;
    let input = json!({"x": "y".repeat(3000)});
    let cases = [
        (
            json!([{"id": "send", "type": "webhook", "config": {
                "url": format!("{}/ok", rx.base), "body": {"a": "{{input.x}}", "b": "{{input.x}}"}}}]),
            "step \"send\" failed: the rendered request (URL, headers and body) is over the step limit of 4096 bytes (SEALFLOW_MAX_STEP_BYTES)",
        ),
        (
            json!([{"id": "send", "type": "webhook", "config": {
                "url": format!("{}/ok", rx.base), "headers": {"X-A": "{{input.x}}", "X-B": "{{input.x}}"}}}]),
            "step \"send\" failed: the rendered request (URL, headers and body) is over the step limit of 4096 bytes (SEALFLOW_MAX_STEP_BYTES)",
        ),
        (
            json!([{"id": "send", "type": "webhook", "config": {
                "url": format!("{}/ok?a={{{{input.x}}}}&b={{{{input.x}}}}", rx.base)}}]),
            "step \"send\" failed: config.url: the rendered URL would exceed 4096 bytes",
        ),
        (
            json!([{"id": "if", "type": "condition", "config": {
                "field": "{{input.x}}{{input.x}}", "operator": "eq", "value": "z"}}]),
            "step \"if\" failed: the rendered condition (field and value) is over the step limit of 4096 bytes (SEALFLOW_MAX_STEP_BYTES)",
        ),
        (
            json!([transform("a", json!("{{input.x}}")), transform("b", json!("{{input.x}}")),
                   transform("c", json!("{{input.x}}")), transform("d", json!("{{input.x}}"))]),
            "step \"d\" failed: the run's recorded outputs would pass the run limit of 10000 bytes (SEALFLOW_MAX_RUN_BYTES)",
        ),
    ];
    for (steps, expected) in cases {
        let wf = app
            .workflow(&app.admin_key, json!({"name": "l", "steps": steps}))
            .await;
        let run = app.run_and_wait(&app.admin_key, &wf, input.clone(), 10).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(run["error"], expected);
    }
    assert_eq!(rx.count(), 0, "no over-limit request was sent");
}

#[test]
fn a_limit_below_1024_bytes_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    for var in [
        "SEALFLOW_MAX_STEP_BYTES",
        "SEALFLOW_MAX_RUN_BYTES",
        "SEALFLOW_MAX_DEFINITION_BYTES",
    ] {
        let err = ServerProcess::start(
            dir.path(),
            &[("SEALFLOW_MASTER_KEY", master_key.as_str()), (var, "10")],
        )
        .err()
        .unwrap_or_else(|| panic!("{var}=10 was accepted"));
        assert!(err.contains("must be at least 1024 bytes"), "{var}: {err}");
    }
}
