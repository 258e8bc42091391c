//! Which headers a webhook step may set: routing headers (`Host`, `X-Forwarded-*`, …) are refused
//! in steps that use secrets, framing headers and `X-Sealflow-Delivery` in every step, all at save
//! time (422 naming step and field) and again when a stored definition is run; `Idempotency-Key`
//! may be configured. What was sent is read byte for byte from a raw receiver.

mod common;

use common::raw_receiver::RawReceiver;
use common::receiver::Receiver;
use common::seed::{insert_unvalidated_workflow, store_secret};
use common::*;
use sealflow::config::Config;
use sealflow_egress::AllowList;
use serde_json::{json, Value};

fn allow_loopback(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
}

fn hook(config: Value) -> Value {
    json!({"name": "h", "steps": [{"id": "send", "type": "webhook", "config": config}]})
}

async fn workflow_count(app: &TestApp) -> u64 {
    let (status, list) = app.get("/api/workflows", &app.admin_key).await;
    assert_eq!(status, 200, "{list}");
    list["total"].as_u64().unwrap()
}

#[tokio::test]
async fn routing_headers_are_refused_in_steps_with_secrets_and_sent_as_configured_without() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    for name in [
        "Host",
        "host",
        "X-Forwarded-Host",
        "x-forwarded-for",
        "Forwarded",
        "Via",
        "Proxy-Authorization",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Real-IP",
    ] {
        for value in ["internal.example", "{{input.vhost}}"] {
            let (status, body) = app
                .post(
                    "/api/workflows",
                    &app.admin_key,
                    &hook(json!({
                        "url": format!("{}/ok", rx.base),
                        "headers": {"Authorization": "Bearer {{secrets.TOKEN}}", name: value},
                    })),
                )
                .await;
            assert_eq!(status, 422, "{name}: {value}: {body}");
            let message = assert_error_shape(&body, "validation_failed");
            assert!(message.contains("uses secrets"), "{message}");
            assert_eq!(body["details"]["step"], "send", "{body}");
            assert_eq!(
                body["details"]["field"],
                format!("config.headers.{name}"),
                "{body}"
            );
        }
    }
    assert_eq!(
        workflow_count(&app).await,
        0,
        "a refused definition is not stored"
    );

    // Without a secret the request carries nothing to steal, so the header is the author's choice.
    let wf = app
        .workflow(
            &app.admin_key,
            hook(json!({"url": format!("{}/vhost", rx.base), "headers": {"Host": "{{input.vhost}}"}})),
        )
        .await;
    let run = app
        .run_and_wait(
            &app.admin_key,
            &wf,
            json!({"vhost": "tenant.internal.example"}),
            10,
        )
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header_values("host"), ["tenant.internal.example"]);
}

#[tokio::test]
async fn framing_headers_and_the_delivery_header_are_refused_in_every_step() {
    let app = TestApp::spawn().await;
    for name in [
        "Content-Length",
        "Transfer-Encoding",
        "transfer-encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Expect",
        "Proxy-Connection",
        "X-Sealflow-Delivery",
        "x-sealflow-delivery",
    ] {
        let (status, body) = app
            .post(
                "/api/workflows",
                &app.admin_key,
                &hook(json!({"url": "https://api.example.com/x", "headers": {name: "0"}, "body": {"a": 1}})),
            )
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        let message = assert_error_shape(&body, "validation_failed");
        assert!(
            message.contains(&format!("config.headers.{name} may not be set")),
            "{message}"
        );
        assert_eq!(
            body["details"]["field"],
            format!("config.headers.{name}"),
            "{body}"
        );
    }
    assert_eq!(workflow_count(&app).await, 0);
}

#[tokio::test]
async fn a_stored_definition_with_a_host_header_and_a_secret_fails_its_run_and_sends_nothing() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    let value = random_secret_value();
    store_secret(&app, "TOKEN", &value).await;
    // A definition saved before the rule existed: written to the store as it was then.
    let wf = insert_unvalidated_workflow(
        &app,
        json!([{"id": "send", "type": "webhook", "config": {
            "url": format!("{}/ok", rx.base),
            "headers": {"Host": "{{input.vhost}}", "Authorization": "Bearer {{secrets.TOKEN}}"},
        }}]),
    )
    .await;
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"vhost": "other.internal"}), 10)
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("config.headers.Host may not be set"), "{error}");
    assert_eq!(rx.count(), 0, "nothing was sent");
    assert!(!run.to_string().contains(&value));
}

#[tokio::test]
async fn the_delivery_id_cannot_be_configured_but_an_idempotency_key_is_sent_on_every_attempt() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = Receiver::start().await;
    let (status, body) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &hook(json!({
                "url": format!("{}/ok", rx.base),
                "headers": {"Idempotency-Key": "order-{{input.order}}", "X-Sealflow-Delivery": "{{input.order}}"},
            })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["field"], "config.headers.X-Sealflow-Delivery");
    let wf = app
        .workflow(
            &app.admin_key,
            hook(json!({
                "url": format!("{}/flaky/1", rx.base),
                "headers": {"Idempotency-Key": "order-{{input.order}}"},
            })),
        )
        .await;
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"order": 42}), 15)
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 2, "one retry after the 503");
    let delivery = format!("{}-send", run["id"].as_str().unwrap());
    for got in &seen {
        assert_eq!(got.header("idempotency-key").as_deref(), Some("order-42"));
        assert_eq!(
            got.header("x-sealflow-delivery").as_deref(),
            Some(delivery.as_str())
        );
    }
}
