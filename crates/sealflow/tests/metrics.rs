//! `/metrics`: a real server over HTTP, runs whose webhook steps hit a real local receiver, and
//! the page read back with a Prometheus text parser. Counters are compared before and after, so
//! each must have moved by exactly what the test did; no label may carry a secret, an id or a
//! path. `SEALFLOW_METRICS_LISTEN` is checked through the real binary.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::OpenMetricsValue;
use sealflow::config::Config;
use sealflow::store::Role;
use sealflow_egress::AllowList;
use serde_json::{json, Value};

fn allow_loopback(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
    c.run_rate_limit = 3;
}

/// The page at `url`, with its status and content type.
async fn fetch(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let res = client.get(url).send().await.expect("scrape");
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, res.text().await.expect("body"))
}

/// One series of a page: its family's name, its labels, and its value (for a histogram, its
/// count, with the sum beside it).
#[derive(Debug)]
struct Series {
    family: String,
    labels: BTreeMap<String, String>,
    value: f64,
    sum: f64,
}

/// Parses a page strictly as OpenMetrics text (what Prometheus asks for first).
fn parse(text: &str) -> Vec<Series> {
    let page = parse_openmetrics(text).unwrap_or_else(|e| panic!("not OpenMetrics text ({e}):\n{text}"));
    let mut series = Vec::new();
    for (name, family) in &page.families {
        for sample in family.iter_samples() {
            let labels = sample.get_labelset().expect("a label set");
            let labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let (value, sum) = match &sample.value {
                OpenMetricsValue::Counter(c) => (c.value.as_f64(), 0.0),
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => (n.as_f64(), 0.0),
                OpenMetricsValue::Histogram(h) => (
                    h.count.expect("a histogram count") as f64,
                    h.sum.expect("a histogram sum").as_f64(),
                ),
                other => panic!("{name} has an unexpected value {other:?}"),
            };
            series.push(Series {
                family: name.clone(),
                labels,
                value,
                sum,
            });
        }
    }
    series
}

/// The series of `family` whose labels are exactly `labels`, if it is written (a counter nobody
/// has moved yet is not).
fn find<'a>(page: &'a [Series], family: &str, labels: &[(&str, &str)]) -> Option<&'a Series> {
    let mut hits = page.iter().filter(|s| {
        s.family == family
            && s.labels.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    });
    let hit = hits.next();
    assert!(
        hits.next().is_none(),
        "{family} {labels:?} matches several series"
    );
    hit
}

/// A counter's or gauge's value, or a histogram's count (0 when the series is not written).
fn value(page: &[Series], family: &str, labels: &[(&str, &str)]) -> f64 {
    find(page, family, labels).map_or(0.0, |s| s.value)
}

/// A histogram's sum of observations.
fn sum(page: &[Series], family: &str, labels: &[(&str, &str)]) -> f64 {
    find(page, family, labels).map_or(0.0, |s| s.sum)
}

/// The sum of every series of `family`.
fn total(page: &[Series], family: &str) -> f64 {
    page.iter().filter(|s| s.family == family).map(|s| s.value).sum()
}

/// What the test sent, tallied as the metrics should count it: (method, route template, status).
#[derive(Default)]
struct Tally(HashMap<(&'static str, &'static str, u16), u32>);

impl Tally {
    fn add(&mut self, method: &'static str, route: &'static str, status: u16) {
        *self.0.entry((method, route, status)).or_default() += 1;
    }
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(b);
    }
    split(req.send().await.expect("request")).await
}

#[tokio::test]
async fn counters_move_by_exactly_the_requests_runs_and_sends_the_test_made() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let other = TestApp::spawn().await;
    let rx = Receiver::start().await;
    let secret_value = random_secret_value();
    seed::store_secret(&app, "TOKEN", &secret_value).await;
    let ok_wf = app
        .workflow(&app.admin_key, json!({"name": "ok", "steps": [
            {"id": "shape", "type": "transform", "config": {"output": {"n": "{{input.n}}"}}},
            {"id": "send", "type": "webhook", "config": {
                "url": format!("{}/ok", rx.base), "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"}}},
        ]}))
        .await;
    let fail_wf = app
        .workflow(&app.admin_key, json!({"name": "fail", "steps": [
            {"id": "send", "type": "webhook", "config": {"url": format!("{}/fail", rx.base), "retries": 0}},
        ]}))
        .await;
    let quick_wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "quick", "steps": [
                {"id": "t", "type": "transform", "config": {"output": {"x": 1}}},
            ]}),
        )
        .await;
    let (status, hooked) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "hooked", "status": "active",
            "trigger": {"type": "webhook"},
            "steps": [{"id": "t", "type": "transform", "config": {"output": {"y": "{{input.y}}"}}}]}),
        )
        .await;
    assert_eq!(status, 201, "{hooked}");
    let hook_url = hooked["webhook_url"].as_str().unwrap().to_owned();
    let hook_token = hook_url.rsplit('/').next().unwrap().to_owned();
    let hooked_id = hooked["id"].as_str().unwrap().to_owned();

    let (status, kind, before) = fetch(&app.client, &app.url("/metrics")).await;
    assert_eq!(status, 200, "{before}");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let before = parse(&before);
    let mut tally = Tally::default();
    // The scrape above is itself a request, counted once it was answered.
    tally.add("GET", "/metrics", 200);

    // Requests: 2xx, a 404 from a route, a 401, a 422, and 404s that matched no route.
    let wf_path = format!("/api/workflows/{ok_wf}");
    for _ in 0..2 {
        let (s, _) = send(&app, reqwest::Method::GET, &wf_path, &app.admin_key, None).await;
        tally.add("GET", "/api/workflows/{id}", s);
    }
    let (s, _) = send(
        &app,
        reqwest::Method::GET,
        "/api/workflows/wf_doesnotexist",
        &app.admin_key,
        None,
    )
    .await;
    assert_eq!(s, 404);
    tally.add("GET", "/api/workflows/{id}", s);
    let (s, _) = send(
        &app,
        reqwest::Method::GET,
        "/api/workflows/secrets",
        "sf_live_wrong",
        None,
    )
    .await;
    assert_eq!(s, 401);
    tally.add("GET", "/api/workflows/secrets", s);
    let (s, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/workflows",
        &app.admin_key,
        Some(&json!({"name": ""})),
    )
    .await;
    assert!((400..500).contains(&s), "{s}");
    tally.add("POST", "/api/workflows", s);
    let stray = format!("/api/nowhere/{}", random_secret_value());
    for _ in 0..2 {
        let (s, _) = send(&app, reqwest::Method::GET, &stray, &app.admin_key, None).await;
        assert_eq!(s, 404);
        tally.add("GET", "unmatched", s);
    }

    // Runs: two that complete (each a transform and a 2xx send), one whose send gets a 500.
    let mut run_ids = Vec::new();
    for (wf, n) in [(&ok_wf, 1), (&ok_wf, 2), (&fail_wf, 3)] {
        let path = format!("/api/workflows/{wf}/run?wait=10");
        let (s, run) = send(
            &app,
            reqwest::Method::POST,
            &path,
            &app.admin_key,
            Some(&json!({"input": {"n": n}})),
        )
        .await;
        assert!(s == 200 || s == 201, "{s} {run}");
        tally.add("POST", "/api/workflows/{id}/run", s);
        let expected = if *wf == fail_wf { "failed" } else { "completed" };
        assert_eq!(run["status"], expected, "{run}");
        run_ids.push(run["id"].as_str().unwrap().to_owned());
    }
    // A webhook-triggered run (its token is in the path, never in a label).
    let hook = app
        .client
        .post(format!("{hook_url}?wait=10"))
        .json(&json!({"y": "z"}))
        .send()
        .await
        .unwrap();
    let (s, run) = split(hook).await;
    assert!(s == 200 || s == 202, "{s} {run}");
    assert_eq!(run["status"], "completed", "{run}");
    tally.add("POST", "/api/hooks/{token}", s);
    run_ids.push(run["id"].as_str().unwrap().to_owned());

    // The rate limit (3 a minute here): a fresh key's fourth run in a minute is refused. A
    // minute boundary between the calls would let it through, so try again with another key.
    let mut quick_runs = 0;
    let mut refusals = 0;
    for _ in 0..3 {
        let key = app.api_key("acme", Role::Admin).await;
        for _ in 0..4 {
            let path = format!("/api/workflows/{quick_wf}/run?wait=10");
            let (s, run) = send(
                &app,
                reqwest::Method::POST,
                &path,
                &key,
                Some(&json!({"input": {}})),
            )
            .await;
            tally.add("POST", "/api/workflows/{id}/run", s);
            match s {
                429 => refusals += 1,
                200 | 201 => {
                    assert_eq!(run["status"], "completed", "{run}");
                    run_ids.push(run["id"].as_str().unwrap().to_owned());
                    quick_runs += 1;
                }
                _ => panic!("{s} {run}"),
            }
        }
        if refusals > 0 {
            break;
        }
    }
    assert!(refusals > 0, "the rate limit never refused a run");

    let (status, _, after_text) = fetch(&app.client, &app.url("/metrics")).await;
    assert_eq!(status, 200);
    let after = parse(&after_text);
    let delta =
        |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);

    // Every request, by route template and status, and nothing else.
    let mut counted = 0.0;
    for ((method, route, status), n) in &tally.0 {
        let status = status.to_string();
        let labels = [
            ("method", *method),
            ("route", *route),
            ("status", status.as_str()),
        ];
        assert_eq!(
            delta("sealflow_http_requests", &labels),
            f64::from(*n),
            "{labels:?}"
        );
        counted += f64::from(*n);
    }
    let all = total(&after, "sealflow_http_requests") - total(&before, "sealflow_http_requests");
    assert_eq!(all, counted, "requests counted that the test did not make");
    let latency = |s: &[Series]| {
        value(
            s,
            "sealflow_http_request_duration_seconds",
            &[("method", "GET"), ("route", "unmatched")],
        )
    };
    assert_eq!(latency(&after) - latency(&before), 2.0);

    // Runs by trigger and status; steps by type; sends by outcome as the receiver saw them.
    let manual = 3.0 + f64::from(quick_runs);
    assert_eq!(delta("sealflow_runs_started", &[("trigger", "manual")]), manual);
    assert_eq!(delta("sealflow_runs_started", &[("trigger", "webhook")]), 1.0);
    let finished = |trigger, status| {
        delta(
            "sealflow_runs_finished",
            &[("trigger", trigger), ("status", status)],
        )
    };
    assert_eq!(finished("manual", "completed"), 2.0 + f64::from(quick_runs));
    assert_eq!(finished("manual", "failed"), 1.0);
    assert_eq!(finished("webhook", "completed"), 1.0);
    let steps = |t| delta("sealflow_step_duration_seconds", &[("step_type", t)]);
    assert_eq!(steps("webhook"), 3.0);
    assert_eq!(steps("transform"), 2.0 + 1.0 + f64::from(quick_runs));
    let seen = rx.seen();
    let to = |prefix: &str| seen.iter().filter(|r| r.path.starts_with(prefix)).count() as f64;
    assert_eq!((to("/ok"), to("/fail")), (2.0, 1.0));
    let sends = |outcome, class| {
        delta(
            "sealflow_webhook_sends",
            &[("outcome", outcome), ("status_class", class)],
        )
    };
    assert_eq!(sends("success", "2xx"), to("/ok"));
    assert_eq!(sends("http_error", "5xx"), to("/fail"));
    assert_eq!(delta("sealflow_secret_decryptions", &[("outcome", "ok")]), 2.0);
    // Each use of a secret is audited before the send.
    assert_eq!(delta("sealflow_audit_writes", &[("outcome", "ok")]), 2.0);
    assert_eq!(
        delta("sealflow_rate_limit_refusals", &[("limit", "runs")]),
        f64::from(refusals)
    );

    // Group commits happened (every run wrote), each of at least one write.
    let commits = delta("sealflow_db_commit_duration_seconds", &[]);
    assert!(
        commits >= run_ids.len() as f64,
        "{commits} commits for {} runs",
        run_ids.len()
    );
    let batch = "sealflow_db_commit_batch_size";
    let writes = sum(&after, batch, &[]) - sum(&before, batch, &[]);
    assert!(writes >= commits, "{writes} writes in {commits} commits");
    // Everything has finished, so nothing is due.
    assert_eq!(value(&after, "sealflow_queue_due_runs", &[]), 0.0);
    assert_eq!(value(&after, "sealflow_queue_oldest_due_age_seconds", &[]), 0.0);

    // No label carries a secret, a key, a token, an id or a requested path.
    let mut forbidden = vec![
        secret_value.clone(),
        app.admin_key.clone(),
        hook_token.clone(),
        stray.clone(),
    ];
    forbidden.extend([
        ok_wf.clone(),
        fail_wf.clone(),
        quick_wf.clone(),
        hooked_id.clone(),
    ]);
    forbidden.extend(run_ids.iter().cloned());
    for series in &after {
        for (name, v) in &series.labels {
            for f in &forbidden {
                assert!(
                    !v.contains(f.as_str()),
                    "{} label {name}={v:?} holds {f:?}",
                    series.family
                );
            }
            assert!(
                !v.contains("wf_") && !v.contains("run_"),
                "{} label {name}={v:?}",
                series.family
            );
        }
    }
    for f in &forbidden {
        assert!(!after_text.contains(f.as_str()), "the page holds {f:?}");
    }

    // Another server in the same process keeps its own registry.
    let (_, _, theirs) = fetch(&other.client, &other.url("/metrics")).await;
    let theirs = parse(&theirs);
    assert_eq!(total(&theirs, "sealflow_runs_started"), 0.0);
    assert_eq!(
        value(
            &theirs,
            "sealflow_http_requests",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_run_waiting_for_a_worker_shows_in_the_queue_gauges() {
    let app = TestApp::spawn_with(|c| {
        allow_loopback(c);
        c.engine.workers = 1;
    })
    .await;
    let rx = Receiver::start().await;
    let slow = app
        .workflow(
            &app.admin_key,
            json!({"name": "slow", "steps": [
            {"id": "wait", "type": "webhook", "config": {"url": format!("{}/slow/1500", rx.base)}}]}),
        )
        .await;
    // The first run holds the only worker; the second is queued behind it.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, run) = app
            .post(
                &format!("/api/workflows/{slow}/run"),
                &app.admin_key,
                &json!({"input": {}}),
            )
            .await;
        assert!(s == 201 || s == 202, "{s} {run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, text) = fetch(&app.client, &app.url("/metrics")).await;
    let page = parse(&text);
    assert_eq!(value(&page, "sealflow_queue_due_runs", &[]), 1.0);
    let age = value(&page, "sealflow_queue_oldest_due_age_seconds", &[]);
    assert!((0.2..5.0).contains(&age), "oldest due age {age}");
    for id in &ids {
        assert_eq!(
            app.wait_finished(&app.admin_key, id, 15).await["status"],
            "completed"
        );
    }
    let (_, _, text) = fetch(&app.client, &app.url("/metrics")).await;
    assert_eq!(value(&parse(&text), "sealflow_queue_due_runs", &[]), 0.0);
}

/// The address a server process logged for its own metrics listener.
fn metrics_address(log: &str) -> Option<String> {
    let rest = log.split("metrics_on=").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
}

#[tokio::test]
async fn the_metrics_listen_setting_turns_metrics_off_or_moves_them_to_their_own_listener() {
    let client = reqwest::Client::new();
    let key = new_master_key();

    // Default: on the main listener.
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", &key)]).unwrap();
    let (status, _, page) = fetch(&client, &format!("{}/metrics", server.base)).await;
    assert_eq!(status, 200, "{page}");
    parse(&page);
    drop(server);

    // Off: a 404 like any unknown path.
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("SEALFLOW_MASTER_KEY", key.as_str()),
        ("SEALFLOW_METRICS_LISTEN", "off"),
    ];
    let server = ServerProcess::start(dir.path(), &envs).unwrap();
    let (status, _, body) = fetch(&client, &format!("{}/metrics", server.base)).await;
    assert_eq!(status, 404, "{body}");
    assert_error_shape(&serde_json::from_str(&body).unwrap(), "not_found");
    assert!(metrics_address(&server.log.lock().unwrap()).is_none());
    drop(server);

    // An address: served there only; the main listener's requests are what it counts.
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("SEALFLOW_MASTER_KEY", key.as_str()),
        ("SEALFLOW_METRICS_LISTEN", "127.0.0.1:0"),
    ];
    let server = ServerProcess::start(dir.path(), &envs).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let addr = loop {
        if let Some(addr) = metrics_address(&server.log.lock().unwrap()) {
            break addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(format!("http://{addr}"), server.base);
    let (status, _, _) = fetch(&client, &format!("{}/metrics", server.base)).await;
    assert_eq!(status, 404, "the main listener still serves /metrics");
    let (status, _, _) = fetch(&client, &format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
    let (status, _, _) = fetch(&client, &format!("http://{addr}/healthz")).await;
    assert_eq!(status, 404, "the metrics listener serves more than /metrics");
    let (status, _, page) = fetch(&client, &format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200, "{page}");
    let (_, _, page) = fetch(&client, &format!("http://{addr}/metrics")).await;
    let page = parse(&page);
    let healthz = [("method", "GET"), ("route", "/healthz"), ("status", "200")];
    assert_eq!(value(&page, "sealflow_http_requests", &healthz), 1.0);
    let main_404 = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(value(&page, "sealflow_http_requests", &main_404), 1.0);
    // Its own scrapes are not API traffic.
    let all = total(&page, "sealflow_http_requests");
    assert_eq!(all, 2.0, "{page:?}");
    drop(server);

    // Anything else is refused at start, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("SEALFLOW_MASTER_KEY", key.as_str()),
        ("SEALFLOW_METRICS_LISTEN", "sideways"),
    ];
    let err = ServerProcess::start(dir.path(), &envs)
        .err()
        .expect("a bad value is refused");
    assert!(err.contains("--metrics-listen \"sideways\""), "{err}");
}
