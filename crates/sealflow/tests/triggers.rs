//! Triggers: webhook ingest over real HTTP, and schedules driven by an injected clock.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::receiver::Receiver;
use common::*;
use hmac::{Hmac, Mac};
use sealflow::engine::scheduler::{Clock, Scheduler};
use sealflow::engine::{Engine, EngineConfig};
use sealflow::store::{PageRequest, Store};
use sealflow_egress::AllowList;
use serde_json::{json, Value};
use sha2::Sha256;

fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn hook(app: &TestApp, url: &str, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = app
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    split(req.send().await.unwrap()).await
}

async fn put(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    split(
        app.client
            .put(app.url(path))
            .bearer_auth(&app.admin_key)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn webhook_ingest_starts_runs_and_refuses_unknown_rotated_paused_and_bad_bodies() {
    let app = TestApp::spawn_with(|c| {
        c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
        c.body_limit = 2048;
    })
    .await;
    let rx = Receiver::start().await;
    assert_eq!(
        app.post(
            "/api/workflows/secrets",
            &app.admin_key,
            &json!({"name": "API_TOKEN", "value": "hook-secret-987"})
        )
        .await
        .0,
        201
    );
    let (_, wf) = app.post("/api/workflows", &app.admin_key, &json!({"name": "ingest", "status": "active",
        "trigger": {"type": "webhook"},
        "steps": [{"id": "fwd", "type": "webhook", "config": {"url": format!("{}/echo", rx.base),
            "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}"}, "body": {"got": "{{input.order}}"}}}]})).await;
    let id = wf["id"].as_str().unwrap().to_owned();
    let url = wf["webhook_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/api/hooks/", app.base)), "{url}");

    // Ended within the wait: 200 with the run object, the same one GET /runs/{id} returns.
    let (status, body) = hook(&app, &format!("{url}?wait=10"), r#"{"order": 42}"#, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    let (_, run) = app
        .get(
            &format!("/api/workflows/runs/{}", body["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert_eq!(body, run, "the ingest answer is the run object");
    // Without ?wait= (or when the wait ends first) the answer stays 202 {id, status}.
    let (status, queued) = hook(&app, &url, r#"{"order": 43}"#, &[]).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(
        queued.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "status"],
        "{queued}"
    );
    assert_eq!(
        (run["trigger_type"].clone(), run["input"].clone()),
        (json!("webhook"), json!({"order": 42}))
    );
    let seen = rx.seen();
    assert_eq!(seen[0].header("authorization").unwrap(), "Bearer hook-secret-987");
    assert!(!run.to_string().contains("hook-secret-987"));

    let (status, body) = hook(
        &app,
        &format!("{}/api/hooks/{}", app.base, "x".repeat(32)),
        "{}",
        &[],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_error_shape(&body, "not_found");
    let (status, body) = hook(&app, &url, "{not json", &[]).await;
    assert_eq!(status, 400, "{body}");
    let res = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let (status, body) = hook(&app, &url, &format!(r#"{{"pad": "{}"}}"#, "x".repeat(4096)), &[]).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = hook(&app, &url, "[1, 2]", &[]).await;
    assert_eq!(status, 400, "input must be an object");

    // Rotation: the old URL stops at once, the new one works.
    let (status, rotated) = app
        .post(
            &format!("/api/workflows/{id}/webhook/rotate"),
            &app.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_url = rotated["webhook_url"].as_str().unwrap().to_owned();
    assert_ne!(new_url, url);
    assert_eq!(hook(&app, &url, "{}", &[]).await.0, 404);
    assert_eq!(hook(&app, &new_url, "{}", &[]).await.0, 202);
    let (_, current) = app.get(&format!("/api/workflows/{id}"), &app.admin_key).await;
    assert_eq!(current["webhook_url"], new_url.as_str());

    // Only active workflows accept calls.
    assert_eq!(
        put(
            &app,
            &format!("/api/workflows/{id}"),
            &json!({"status": "paused"})
        )
        .await
        .0,
        200
    );
    let (status, body) = hook(&app, &new_url, "{}", &[]).await;
    assert_eq!(status, 409, "{body}");
    let manual = app.workflow(&app.admin_key, json!({"name": "manual"})).await;
    assert_eq!(
        app.post(
            &format!("/api/workflows/{manual}/webhook/rotate"),
            &app.admin_key,
            &json!({})
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn signed_webhooks_need_a_fresh_valid_signature() {
    let app = TestApp::spawn().await;
    let (_, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "signed", "status": "active",
        "trigger": {"type": "webhook", "config": {"signed": true}}}),
        )
        .await;
    let key = wf["webhook_signing_key"]
        .as_str()
        .expect("key shown on create")
        .to_owned();
    assert!(key.starts_with("whsec_") && key.len() >= 40, "{key}");
    let url = wf["webhook_url"].as_str().unwrap().to_owned();
    let body = r#"{"event":"paid"}"#;
    let now = (chrono::Utc::now().timestamp()).to_string();
    let stale = (chrono::Utc::now().timestamp() - 301).to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16);
    let cases: Vec<Case> = vec![
        ("no headers", vec![], 401),
        (
            "no timestamp",
            vec![("x-signature-256", sign(&key, &now, body))],
            401,
        ),
        ("no signature", vec![("x-signature-timestamp", now.clone())], 401),
        (
            "wrong key",
            vec![
                ("x-signature-timestamp", now.clone()),
                ("x-signature-256", sign("other-key", &now, body)),
            ],
            401,
        ),
        (
            "stale",
            vec![
                ("x-signature-timestamp", stale.clone()),
                ("x-signature-256", sign(&key, &stale, body)),
            ],
            401,
        ),
        (
            "timestamp swapped",
            vec![
                ("x-signature-timestamp", now.clone()),
                ("x-signature-256", sign(&key, &stale, body)),
            ],
            401,
        ),
        (
            "not hex",
            vec![
                ("x-signature-timestamp", now.clone()),
                ("x-signature-256", "sha256=zz".into()),
            ],
            401,
        ),
        (
            "good",
            vec![
                ("x-signature-timestamp", now.clone()),
                ("x-signature-256", sign(&key, &now, body)),
            ],
            202,
        ),
    ];
    for (what, headers, status) in cases {
        let (got, res) = hook(&app, &url, body, &headers).await;
        assert_eq!(got, status, "{what}: {res}");
        if status == 401 {
            assert_error_shape(&res, "unauthorized");
        }
    }
    // A body changed after signing fails.
    let headers = vec![
        ("x-signature-timestamp", now.clone()),
        ("x-signature-256", sign(&key, &now, body)),
    ];
    assert_eq!(hook(&app, &url, r#"{"event":"refund"}"#, &headers).await.0, 401);
    let (_, runs) = app.get("/api/workflows/runs", &app.admin_key).await;
    assert_eq!(runs["total"], 1, "only the good call started a run");
}

#[tokio::test]
async fn the_ingest_route_is_rate_limited_per_workflow() {
    let app = TestApp::spawn_with(|c| c.hook_rate_limit = 2).await;
    let mut urls = Vec::new();
    for name in ["a", "b"] {
        let (_, wf) = app
            .post(
                "/api/workflows",
                &app.admin_key,
                &json!({"name": name, "status": "active", "trigger": {"type": "webhook"}}),
            )
            .await;
        urls.push(wf["webhook_url"].as_str().unwrap().to_owned());
    }
    assert_eq!(hook(&app, &urls[0], "{}", &[]).await.0, 202);
    assert_eq!(hook(&app, &urls[0], "{}", &[]).await.0, 202);
    let res = app
        .client
        .post(&urls[0])
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        hook(&app, &urls[1], "{}", &[]).await.0,
        202,
        "another workflow has its own window"
    );
}

/// A run handed to a local worker is answered from the worker's committed record: for a run
/// that completes through a branch (a skipped step) and for one that fails, the `?wait` answer
/// is exactly what `GET` of the run returns.
#[tokio::test]
async fn a_waited_ingest_answer_is_the_stored_run_for_branches_and_failures() {
    let app = TestApp::spawn_with(|c| {
        c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let rx = Receiver::start().await;
    let steps = json!([
        {"id": "shape", "type": "transform", "config": {"output": {"n": "{{input.n}}", "f": 1.5}}},
        {"id": "big", "type": "condition", "config": {"field": "{{steps.shape.output.n}}", "operator": "gt", "value": 10, "then": "send", "else": "end"}},
        {"id": "unused", "type": "transform", "config": {"output": {}}},
        {"id": "send", "type": "webhook", "config": {"url": format!("{}/echo", rx.base), "body": {"n": "{{input.n}}"}}},
        {"id": "end", "type": "transform", "config": {"output": {"done": true}}},
    ]);
    let (_, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "branchy", "status": "active",
            "trigger": {"type": "webhook"}, "steps": steps}),
        )
        .await;
    let url = wf["webhook_url"].as_str().unwrap().to_owned();
    let (_, failing) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "failing", "status": "active",
            "trigger": {"type": "webhook"}, "steps": [
                {"id": "ok", "type": "transform", "config": {"output": {"a": "{{input.n}}"}}},
                {"id": "boom", "type": "webhook", "config": {"url": format!("{}/fail", rx.base)}},
                {"id": "never", "type": "transform", "config": {"output": {}}},
            ]}),
        )
        .await;
    let failing_url = failing["webhook_url"].as_str().unwrap().to_owned();
    for (url, body, want) in [
        (&url, r#"{"n": 42}"#, "completed"),
        (&url, r#"{"n": 3}"#, "completed"),
        (&failing_url, r#"{"n": 1}"#, "failed"),
    ] {
        let (status, answer) = hook(&app, &format!("{url}?wait=10"), body, &[]).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], want, "{answer}");
        let (_, stored) = app
            .get(
                &format!("/api/workflows/runs/{}", answer["id"].as_str().unwrap()),
                &app.admin_key,
            )
            .await;
        assert_eq!(answer, stored, "the ?wait answer is the stored run");
    }
}

/// The hit is counted in the same commit as the run; calls refused before a run is inserted
/// (here: the workflow is paused) still count, as they did when the hit was its own write.
#[tokio::test]
async fn refused_ingest_calls_still_count_against_the_window() {
    let app = TestApp::spawn_with(|c| c.hook_rate_limit = 3).await;
    let (_, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "w", "status": "active", "trigger": {"type": "webhook"}}),
        )
        .await;
    let id = wf["id"].as_str().unwrap().to_owned();
    let url = wf["webhook_url"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(
        put(
            &app,
            &format!("/api/workflows/{id}"),
            &json!({"status": "paused"})
        )
        .await
        .0,
        200
    );
    assert_eq!(hook(&app, &url, "{}", &[]).await.0, 409);
    assert_eq!(
        put(
            &app,
            &format!("/api/workflows/{id}"),
            &json!({"status": "active"})
        )
        .await
        .0,
        200
    );
    assert_eq!(hook(&app, &url, "{}", &[]).await.0, 202);
    assert_eq!(
        hook(&app, &url, "{}", &[]).await.0,
        429,
        "the refused call counted"
    );
    let (_, runs) = app.get("/api/workflows/runs", &app.admin_key).await;
    assert_eq!(runs["total"], 2, "a limited call inserts nothing");
}

/// A clock the test moves by hand.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const MINUTE: i64 = 60_000;

async fn schedule_runs(store: &Arc<dyn Store>, ws: &str) -> Vec<Value> {
    let (runs, _) = store
        .list_runs(
            ws,
            None,
            None,
            PageRequest {
                offset: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    runs.into_iter().map(|r| r.input).collect()
}

#[tokio::test]
async fn schedules_fire_once_per_tick_stop_when_paused_and_fire_once_after_downtime() {
    let app = TestApp::spawn_with(|c| c.engine.schedule_every = std::time::Duration::from_secs(3600)).await;
    let (_, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "cron", "status": "active",
        "trigger": {"type": "schedule", "config": {"cron": "*/1 * * * *", "timezone": "Europe/Berlin"}}}),
        )
        .await;
    let wf_id = wf["id"].as_str().unwrap().to_owned();
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap().id;
    let saved = app
        .store
        .get_workflow(&ws, &wf_id)
        .await
        .unwrap()
        .unwrap()
        .updated_at;
    let first_tick = (saved / MINUTE + 1) * MINUTE;
    let clock = Arc::new(ManualClock(AtomicI64::new(first_tick - 1)));
    let engine = Engine::new(&EngineConfig::default(), app.store.clone(), secrets_service(&app)).unwrap();
    let scheduler = Scheduler::new(app.store.clone(), clock.clone(), engine);

    assert_eq!(scheduler.tick().await.unwrap(), 0, "before the first tick");
    clock.0.store(first_tick, Ordering::SeqCst);
    assert_eq!(scheduler.tick().await.unwrap(), 1);
    assert_eq!(
        scheduler.tick().await.unwrap(),
        0,
        "the same tick never fires twice"
    );
    clock.0.store(first_tick + MINUTE + 30_000, Ordering::SeqCst);
    assert_eq!(scheduler.tick().await.unwrap(), 1);
    let inputs = schedule_runs(&app.store, &ws).await;
    assert_eq!(inputs.len(), 2);
    assert_eq!(
        inputs[0]["scheduled_for"],
        sealflow::ids::rfc3339(first_tick + MINUTE)
    );

    // Ten minutes of downtime: one run, for the latest missed tick.
    clock.0.store(first_tick + 11 * MINUTE + 5_000, Ordering::SeqCst);
    assert_eq!(scheduler.tick().await.unwrap(), 1);
    assert_eq!(scheduler.tick().await.unwrap(), 0);
    let inputs = schedule_runs(&app.store, &ws).await;
    assert_eq!(inputs.len(), 3);
    assert_eq!(
        inputs[0]["scheduled_for"],
        sealflow::ids::rfc3339(first_tick + 11 * MINUTE)
    );

    // Paused: nothing fires.
    assert_eq!(
        put(
            &app,
            &format!("/api/workflows/{wf_id}"),
            &json!({"status": "paused"})
        )
        .await
        .0,
        200
    );
    clock.0.store(first_tick + 20 * MINUTE, Ordering::SeqCst);
    assert_eq!(scheduler.tick().await.unwrap(), 0);
    let (_, runs) = app
        .get(
            &format!("/api/workflows/runs?workflow_id={wf_id}"),
            &app.admin_key,
        )
        .await;
    assert!(runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["trigger_type"] == "schedule"));
    assert_eq!(runs["total"], 3);
}

#[tokio::test]
async fn two_schedulers_on_one_database_never_fire_the_same_tick_twice() {
    let app = TestApp::spawn_with(|c| c.engine.schedule_every = std::time::Duration::from_secs(3600)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, wf) = app
            .post(
                "/api/workflows",
                &app.admin_key,
                &json!({"name": format!("cron{i}"), "status": "active",
            "trigger": {"type": "schedule", "config": {"cron": "* * * * *"}}}),
            )
            .await;
        ids.push(wf["id"].as_str().unwrap().to_owned());
    }
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap().id;
    // A second, independent pool on the same database file: another instance.
    let other: Arc<dyn Store> = sealflow::store::open(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(sealflow::ids::now_ms() + 2 * MINUTE)));
    let a = Scheduler::new(
        app.store.clone(),
        clock.clone(),
        Engine::new(&EngineConfig::default(), app.store.clone(), secrets_service(&app)).unwrap(),
    );
    let b = Scheduler::new(
        other.clone(),
        clock.clone(),
        Engine::new(&EngineConfig::default(), other.clone(), secrets_service(&app)).unwrap(),
    );
    for round in 0..3 {
        clock.0.fetch_add(MINUTE, Ordering::SeqCst);
        let (fa, fb) = tokio::join!(a.tick(), b.tick());
        assert_eq!(
            fa.unwrap() + fb.unwrap(),
            5,
            "round {round}: every workflow fired exactly once"
        );
    }
    let inputs = schedule_runs(&app.store, &ws).await;
    assert_eq!(inputs.len(), 15);
}

fn secrets_service(app: &TestApp) -> Arc<sealflow::domain::secrets::SecretsService> {
    let vault =
        sealflow::vault::Vault::new(sealflow::vault::MasterKey::from_base64(&app.master_key).unwrap());
    Arc::new(sealflow::domain::secrets::SecretsService::new(
        app.store.clone(),
        Arc::new(vault),
        Default::default(),
    ))
}
