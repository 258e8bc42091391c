//! The run engine in process, against real local HTTP receivers: webhook sends with secrets,
//! failures that send nothing, egress, retries, branching, transforms, delays, cancel,
//! idempotency and the rate limit.

mod common;

use common::receiver::Receiver;
use common::*;
use sealflow::config::Config;
use sealflow_egress::AllowList;
use serde_json::{json, Value};

const SECRETS: &str = "/api/workflows/secrets";

fn allow_loopback(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
}

fn webhook(id: &str, config: Value) -> Value {
    json!({"id": id, "type": "webhook", "config": config})
}

async fn secret(app: &TestApp, name: &str, value: &str, allowed_hosts: Option<Value>) {
    let mut body = json!({"name": name, "value": value});
    if let Some(h) = allowed_hosts {
        body["allowed_hosts"] = h;
    }
    assert_eq!(app.post(SECRETS, &app.admin_key, &body).await.0, 201);
}

fn step(run: &Value, i: usize) -> &Value {
    &run["steps"][i]
}

/// Runs reuse built redactors per set of secret values: after a replace, and after a delete and
/// re-create under the same name (which starts again at version 1), a run masks the new value.
#[tokio::test]
async fn a_replaced_or_recreated_secret_is_masked_in_the_next_run() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "echo", "steps": [webhook("send", json!({
                "url": format!("{}/echo", rx.base),
                "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
            }))]}),
        )
        .await;
    let first = random_secret_value();
    secret(&app, "TOKEN", &first, None).await;
    let mut values = vec![first];
    for change in ["replace", "delete and re-create", "replace again"] {
        // The same value twice: the second run takes the kept redactor.
        for _ in 0..2 {
            let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
            assert_eq!(run["status"], "completed", "{run}");
            let text = run.to_string();
            for v in &values {
                assert!(
                    !text.contains(v.as_str()),
                    "{change}: a run record leaks a secret: {text}"
                );
            }
            assert!(text.contains("[REDACTED]"), "{text}");
        }
        let next = random_secret_value();
        if change.starts_with("delete") {
            let (status, _) = app
                .delete(SECRETS, &app.admin_key, Some(&json!({"name": "TOKEN"})))
                .await;
            assert_eq!(status, 200);
        }
        let (status, _) = app
            .post(SECRETS, &app.admin_key, &json!({"name": "TOKEN", "value": next}))
            .await;
        assert!(status == 200 || status == 201, "{change}: {status}");
        values.push(next);
    }
    let seen = rx.seen();
    assert_eq!(seen.len(), 6);
    // Each pair of runs sent the value current at the time.
    for (i, got) in seen.iter().enumerate() {
        assert_eq!(
            got.header("authorization").unwrap(),
            format!("Bearer {}", values[i / 2])
        );
    }
}

#[tokio::test]
async fn a_secret_reaches_the_receiver_in_url_header_and_body_and_is_recorded_nowhere() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    // Characters that must be percent-encoded in a URL and escaped in JSON.
    let value = format!("{}/+?&\"x y", random_secret_value());
    secret(&app, "TOKEN", &value, None).await;
    let wf = app
        .workflow(&app.admin_key, json!({"name": "send", "steps": [webhook("send", json!({
            "url": format!("{}/echo/{{{{secrets.TOKEN}}}}?k={{{{secrets.TOKEN}}}}", rx.base),
            "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
            "body": {"token": "{{secrets.TOKEN}}", "note": "inline {{secrets.TOKEN}} text", "who": "{{input.who}}"},
        }))]}))
        .await;
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"who": "ada"}), 10)
        .await;
    assert_eq!(run["status"], "completed", "{run}");

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let got = &seen[0];
    assert_eq!(got.header("authorization").unwrap(), format!("Bearer {value}"));
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(&value, COMPONENT).to_string();
    assert_eq!(
        got.path,
        format!("/echo/{encoded}"),
        "the secret is one path segment"
    );
    assert_eq!(got.query.as_deref(), Some(format!("k={encoded}").as_str()));
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["token"], value.as_str());
    assert_eq!(body["note"], format!("inline {value} text"));
    assert_eq!(body["who"], "ada");
    assert_eq!(got.header("content-type").as_deref(), Some("application/json"));

    // The receiver echoed the secret raw, base64-encoded and JSON-escaped: none of it is kept.
    let (_, stored) = app
        .get(
            &format!("/api/workflows/runs/{}", run["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    let (_, list) = app.get("/api/workflows/runs", &app.admin_key).await;
    for text in [stored.to_string(), run.to_string(), list.to_string()] {
        for needle in [
            value.clone(),
            b64(&value),
            b64(&format!("Bearer {value}")),
            encoded.clone(),
        ] {
            assert!(!text.contains(&needle), "a run record leaks the secret: {text}");
        }
    }
    assert!(stored.to_string().contains("[REDACTED]"), "{stored}");
    assert_eq!(step(&stored, 0)["output"]["status_code"], 200);
    let dir = app.stop().await;
    assert!(
        dir_contains(dir.path(), value.as_bytes()).is_empty(),
        "the database files hold the plaintext"
    );
    assert!(dir_contains(dir.path(), b64(&value).as_bytes()).is_empty());
}

#[tokio::test]
async fn missing_secret_disallowed_host_crlf_and_redirects_fail_the_step_and_send_nothing() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let other = Receiver::start().await;
    rx.redirect_to(&other.base);
    secret(
        &app,
        "PINNED",
        "pinned-value-123",
        Some(json!(["hooks.example.com"])),
    )
    .await;
    secret(&app, "MULTILINE", "line1\r\nX-Injected: yes", None).await;
    secret(&app, "PLAIN", "plain-value-456", None).await;
    let cases = [
        (
            "missing",
            json!({"url": format!("{}/ok", rx.base), "headers": {"X-K": "{{secrets.NOPE}}"}}),
            "secret \"NOPE\" not found",
        ),
        (
            "pinned",
            json!({"url": format!("{}/ok", rx.base), "body": {"k": "{{secrets.PINNED}}"}}),
            "not in its allowed_hosts",
        ),
        (
            "crlf",
            json!({"url": format!("{}/ok", rx.base), "headers": {"X-K": "{{secrets.MULTILINE}}"}}),
            "CR or LF",
        ),
        (
            "redirect",
            json!({"url": format!("{}/redirect", rx.base), "headers": {"X-K": "{{secrets.PLAIN}}"}, "retries": 0}),
            "redirects are not followed",
        ),
    ];
    for (what, config, needle) in cases {
        let before = rx.count();
        let wf = app
            .workflow(
                &app.admin_key,
                json!({"name": what, "steps": [webhook("s", config)]}),
            )
            .await;
        let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
        assert_eq!(run["status"], "failed", "{what}: {run}");
        let error = step(&run, 0)["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(needle), "{what}: {error}");
        assert!(
            run["error"].as_str().unwrap().contains("step \"s\" failed"),
            "{what}: {run}"
        );
        let expected_hits = usize::from(what == "redirect"); // the first hop answers the 302
        assert_eq!(
            rx.count() - before,
            expected_hits,
            "{what}: the receiver got a request"
        );
        for v in ["pinned-value-123", "line1", "plain-value-456"] {
            assert!(!run.to_string().contains(v), "{what}: {run}");
        }
    }
    assert_eq!(other.count(), 0, "the redirect target got the secret");
}

#[tokio::test]
async fn egress_to_private_ranges_is_refused_unless_the_allow_list_names_it() {
    let app = TestApp::spawn().await; // empty allow-list
    let rx = Receiver::start().await;
    let port = rx.base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        "http://10.0.0.1/ok".to_owned(),
        "http://172.16.0.1/ok".to_owned(),
        "http://192.168.1.1/ok".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://100.64.0.1/ok".to_owned(),
        "http://0.0.0.0/ok".to_owned(),
        "http://[::ffff:127.0.0.1]/ok".to_owned(),
    ] {
        let wf = app
            .workflow(
                &app.admin_key,
                json!({"name": "e", "steps": [webhook("s", json!({"url": url, "retries": 0}))]}),
            )
            .await;
        let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
        assert_eq!(run["status"], "failed", "{url}: {run}");
        assert!(
            step(&run, 0)["error"].as_str().unwrap().contains("refused"),
            "{url}: {run}"
        );
    }
    assert_eq!(rx.count(), 0);

    let allowed =
        TestApp::spawn_with(|c| c.engine.egress.allow_list = AllowList::parse("localhost").unwrap()).await;
    let wf = allowed
        .workflow(&allowed.admin_key, json!({"name": "e", "steps": [webhook("s", json!({"url": format!("http://localhost:{port}/ok")}))]}))
        .await;
    let run = allowed.run_and_wait(&allowed.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(rx.count(), 1);
}

#[tokio::test]
async fn retries_reuse_one_delivery_id_and_exhausted_retries_fail_the_run() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "r", "steps": [webhook("s", json!({"url": format!("{}/flaky/2", rx.base)}))]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 15).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(step(&run, 0)["attempts"], 3);
    let ids: Vec<String> = rx.seen().iter().map(|r| r.delivery_id()).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.iter()
            .all(|i| *i == format!("{}-s", run["id"].as_str().unwrap())),
        "{ids:?}"
    );

    let wf = app.workflow(&app.admin_key, json!({"name": "f", "steps": [webhook("s", json!({"url": format!("{}/fail", rx.base), "retries": 1}))]})).await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 15).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(step(&run, 0)["attempts"], 2);
    assert_eq!(step(&run, 0)["output"]["status_code"], 500);
    assert!(step(&run, 0)["error"].as_str().unwrap().contains("HTTP 500"));
}

#[tokio::test]
async fn conditions_branch_and_skip_transforms_render_and_outputs_feed_later_steps() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let steps = json!([
        {"id": "shape", "type": "transform", "config": {"output": {"greeting": "hi {{input.name}}", "n": "{{input.n}}"}}},
        {"id": "big", "type": "condition", "config": {"field": "{{steps.shape.output.n}}", "operator": "gt", "value": 10, "then": "notify", "else": "end"}},
        {"id": "unused", "type": "transform", "config": {"output": {}}},
        webhook("notify", json!({"url": format!("{}/echo", rx.base), "body": {"text": "{{steps.shape.output.greeting}}"}})),
    ]);
    let wf = app
        .workflow(&app.admin_key, json!({"name": "branch", "steps": steps}))
        .await;

    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"name": "ada", "n": 42}), 10)
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        step(&run, 0)["output"],
        json!({"greeting": "hi ada", "n": 42}),
        "whole tags keep their type"
    );
    assert_eq!(step(&run, 1)["output"], json!({"result": true}));
    assert_eq!(step(&run, 2)["status"], "skipped");
    assert_eq!(step(&run, 3)["status"], "completed");
    let sent: Value = serde_json::from_slice(&rx.seen()[0].body).unwrap();
    assert_eq!(sent, json!({"text": "hi ada"}));
    assert_eq!(
        (run["steps_total"].clone(), run["steps_completed"].clone()),
        (json!(4), json!(3))
    );

    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"name": "bob", "n": 3}), 10)
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(step(&run, 1)["output"], json!({"result": false}));
    assert_eq!(
        (step(&run, 2)["status"].clone(), step(&run, 3)["status"].clone()),
        (json!("skipped"), json!("skipped"))
    );
    assert_eq!(rx.count(), 1, "the else branch ended the run");

    // A transform naming a missing path fails with a message that names it.
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "missing", "steps": [
        {"id": "t", "type": "transform", "config": {"output": "{{input.nope.deeper}}"}}]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    assert_eq!(run["status"], "failed");
    assert!(
        step(&run, 0)["error"]
            .as_str()
            .unwrap()
            .contains("input.nope.deeper"),
        "{run}"
    );
}

#[tokio::test]
async fn a_delayed_run_holds_no_worker_and_can_be_cancelled_while_waiting() {
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
        {"id": "wait", "type": "delay", "config": {"seconds": 60}},
        webhook("after", json!({"url": format!("{}/ok", rx.base)}))]}),
        )
        .await;
    let quick = app
        .workflow(
            &app.admin_key,
            json!({"name": "quick", "steps": [
        webhook("now", json!({"url": format!("{}/ok", rx.base)}))]}),
        )
        .await;
    let (_, parked) = app
        .post(&format!("/api/workflows/{slow}/run"), &app.admin_key, &json!({}))
        .await;
    let parked_id = parked["id"].as_str().unwrap().to_owned();
    // With one worker, the quick run only finishes if the delayed run does not hold it.
    let run = app.run_and_wait(&app.admin_key, &quick, json!({}), 10).await;
    assert_eq!(run["status"], "completed", "{run}");
    let (_, waiting) = app
        .get(&format!("/api/workflows/runs/{parked_id}"), &app.admin_key)
        .await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(step(&waiting, 0)["status"], "running");
    assert_eq!(step(&waiting, 1)["status"], "pending");

    let (status, body) = app
        .post(
            &format!("/api/workflows/runs/{parked_id}/cancel"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "Run cancelled", "id": parked_id, "status": "cancelled"})
    );
    let (_, cancelled) = app
        .get(&format!("/api/workflows/runs/{parked_id}"), &app.admin_key)
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(step(&cancelled, 0)["status"], "cancelled");
    assert_eq!(step(&cancelled, 1)["status"], "cancelled");
    let (status, body) = app
        .post(
            &format!("/api/workflows/runs/{parked_id}/cancel"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "conflict");
    assert_eq!(rx.count(), 1, "only the quick run sent anything");
}

#[tokio::test]
async fn cancelling_a_run_aborts_its_in_flight_request() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "slow", "steps": [
        webhook("slow", json!({"url": format!("{}/slow/20000", rx.base), "timeout_ms": 30000})),
        webhook("next", json!({"url": format!("{}/ok", rx.base)}))]}),
        )
        .await;
    let (_, run) = app
        .post(&format!("/api/workflows/{wf}/run"), &app.admin_key, &json!({}))
        .await;
    let id = run["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rx.count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the request was never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    assert_eq!(
        app.post(
            &format!("/api/workflows/runs/{id}/cancel"),
            &app.admin_key,
            &json!({})
        )
        .await
        .0,
        200
    );
    let run = app.wait_finished(&app.admin_key, &id, 10).await;
    assert_eq!(run["status"], "cancelled");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1, "no step ran after the cancel");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let (_, again) = app
        .get(&format!("/api/workflows/runs/{id}"), &app.admin_key)
        .await;
    assert_eq!(
        again["status"], "cancelled",
        "the worker did not overwrite the cancel: {again}"
    );
}

#[tokio::test]
async fn twenty_concurrent_runs_with_one_idempotency_key_create_exactly_one_run() {
    let app = TestApp::spawn_with(|c| {
        allow_loopback(c);
        c.run_rate_limit = 1000;
    })
    .await;
    let wf = app.workflow(&app.admin_key, json!({"name": "idem"})).await;
    let url = app.url(&format!("/api/workflows/{wf}/run"));
    let calls = (0..20).map(|_| {
        app.client
            .post(&url)
            .bearer_auth(&app.admin_key)
            .header("idempotency-key", "order-42")
            .json(&json!({"input": {"order": 42}}))
            .send()
    });
    let responses = futures::future::join_all(calls).await;
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for res in responses {
        let res = res.unwrap();
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        assert!(status == 201 || (status == 200 && replayed), "{status}");
        created += usize::from(status == 201);
        let body: Value = res.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1));
    let (_, list) = app
        .get(&format!("/api/workflows/runs?workflow_id={wf}"), &app.admin_key)
        .await;
    assert_eq!(list["total"], 1);

    let (status, body) = app
        .client
        .post(&url)
        .bearer_auth(&app.admin_key)
        .header("idempotency-key", "order-42")
        .json(&json!({"input": {"order": 43}}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 409);
    assert!(
        assert_error_shape(&body.json::<Value>().await.unwrap(), "conflict")
            .contains("different request body")
    );
}

#[tokio::test]
async fn the_run_rate_limit_answers_429_with_retry_after_and_paused_workflows_do_not_run() {
    let app = TestApp::spawn_with(|c| c.run_rate_limit = 3).await;
    let wf = app.workflow(&app.admin_key, json!({"name": "limited"})).await;
    let url = app.url(&format!("/api/workflows/{wf}/run"));
    for i in 0..3 {
        let res = app
            .client
            .post(&url)
            .bearer_auth(&app.admin_key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        assert_eq!(res.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            res.headers()["x-ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
        assert!(res.headers().contains_key("x-ratelimit-reset"));
    }
    let res = app
        .client
        .post(&url)
        .bearer_auth(&app.admin_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_error_shape(&res.json::<Value>().await.unwrap(), "rate_limited");
    // Another caller has its own window.
    let other = app.api_key("acme", sealflow::store::Role::Member).await;
    assert_eq!(
        app.post(&format!("/api/workflows/{wf}/run"), &other, &json!({}))
            .await
            .0,
        201
    );

    let paused = app
        .workflow(&other, json!({"name": "p", "status": "paused"}))
        .await;
    let (status, body) = app
        .post(&format!("/api/workflows/{paused}/run"), &other, &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let ro = app.api_key("acme", sealflow::store::Role::Readonly).await;
    assert_eq!(
        app.post(&format!("/api/workflows/{wf}/run"), &ro, &json!({}))
            .await
            .0,
        403
    );
    let beta = app.api_key("beta", sealflow::store::Role::Admin).await;
    assert_eq!(
        app.post(&format!("/api/workflows/{wf}/run"), &beta, &json!({}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_filtered_and_isolated_by_workspace() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let wf = app.workflow(&app.admin_key, json!({"name": "empty"})).await;
    let first = app.run_and_wait(&app.admin_key, &wf, json!({"i": 1}), 10).await;
    let second = app.run_and_wait(&app.admin_key, &wf, json!({"i": 2}), 10).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(first["workflow_version"], 1);
    assert_eq!(first["trigger_type"], "manual");
    let (_, list) = app
        .get(
            &format!("/api/workflows/runs?workflow_id={wf}&status=completed"),
            &app.admin_key,
        )
        .await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["runs"][0]["id"], second["id"]);
    let (_, none) = app.get("/api/workflows/runs?status=failed", &app.admin_key).await;
    assert_eq!(
        (none["runs"].clone(), none["total"].clone()),
        (json!([]), json!(0))
    );
    assert_eq!(
        app.get("/api/workflows/runs?status=bogus", &app.admin_key)
            .await
            .0,
        400
    );
    let beta = app.api_key("beta", sealflow::store::Role::Admin).await;
    assert_eq!(
        app.get(
            &format!("/api/workflows/runs/{}", first["id"].as_str().unwrap()),
            &beta
        )
        .await
        .0,
        404
    );
    let (_, beta_list) = app.get("/api/workflows/runs", &beta).await;
    assert_eq!(beta_list["total"], 0);
}
