//! Every bad input the spec names: the exact status, the JSON error shape, and an unchanged store.

mod common;

use common::*;
use serde_json::{json, Value};

const SECRETS: &str = "/api/workflows/secrets";

/// Snapshot of what the store holds for `acme`: names with versions.
async fn snapshot(app: &TestApp) -> Vec<(String, i64)> {
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap();
    let mut out = Vec::new();
    for meta in app.store.list_secrets(&ws.id).await.unwrap() {
        let row = app.store.get_secret(&ws.id, &meta.name).await.unwrap().unwrap();
        out.push((meta.name, row.version));
    }
    out
}

async fn post_raw(app: &TestApp, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(SECRETS))
        .bearer_auth(&app.admin_key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    split(res).await
}

#[tokio::test]
async fn each_invalid_secret_is_refused_with_its_rule_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| c.secret_limits.max_per_workspace = 3).await;
    let key = &app.admin_key;
    for name in ["KEEP_A", "KEEP_B"] {
        assert_eq!(
            app.post(SECRETS, key, &json!({"name": name, "value": "original"}))
                .await
                .0,
            201
        );
    }
    let before = snapshot(&app).await;

    let big = "x".repeat(64 * 1024 + 1);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "name with a dash",
            json!({"name": "BAD-NAME", "value": "v"}),
            400,
            "name must match",
        ),
        (
            "name starting with a digit",
            json!({"name": "1ABC", "value": "v"}),
            400,
            "name must match",
        ),
        (
            "empty name",
            json!({"name": "", "value": "v"}),
            400,
            "name must match",
        ),
        (
            "name too long",
            json!({"name": "N".repeat(129), "value": "v"}),
            400,
            "name must match",
        ),
        (
            "empty value",
            json!({"name": "KEEP_A", "value": ""}),
            400,
            "value must not be empty",
        ),
        (
            "oversize value",
            json!({"name": "KEEP_A", "value": big}),
            400,
            "at most 65536 bytes",
        ),
        (
            "missing value",
            json!({"name": "KEEP_A"}),
            400,
            "missing field `value`",
        ),
        ("missing name", json!({"value": "v"}), 400, "missing field `name`"),
        (
            "value of the wrong type",
            json!({"name": "KEEP_A", "value": 12345}),
            400,
            "invalid type",
        ),
        (
            "name of the wrong type",
            json!({"name": ["KEEP_A"], "value": "v"}),
            400,
            "invalid type",
        ),
        (
            "body that is not an object",
            json!(["KEEP_A"]),
            400,
            "invalid request body",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (got, res) = app.post(SECRETS, key, &body).await;
        assert_eq!(got, status, "{what}: {res}");
        let message = assert_error_shape(&res, "invalid_request");
        assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}");
        assert!(
            !message.contains("12345"),
            "{what}: the offending value is echoed: {message}"
        );
        assert_eq!(snapshot(&app).await, before, "{what} changed the store");
    }

    // The count limit: the third fits, the fourth does not.
    assert_eq!(
        app.post(SECRETS, key, &json!({"name": "THIRD", "value": "value"}))
            .await
            .0,
        201
    );
    let before = snapshot(&app).await;
    let (status, res) = app
        .post(SECRETS, key, &json!({"name": "FOURTH", "value": "value"}))
        .await;
    assert_eq!(status, 400);
    assert!(assert_error_shape(&res, "invalid_request").contains("at most 3 secrets"));
    assert_eq!(snapshot(&app).await, before);
    // Replacing an existing name is still allowed at the limit.
    assert_eq!(
        app.post(SECRETS, key, &json!({"name": "THIRD", "value": "value-2"}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn malformed_json_oversize_bodies_and_wrong_media_types_are_refused() {
    let app = TestApp::spawn_with(|c| c.body_limit = 4096).await;
    assert_eq!(
        app.post(
            SECRETS,
            &app.admin_key,
            &json!({"name": "KEEP", "value": "value"})
        )
        .await
        .0,
        201
    );
    let before = snapshot(&app).await;

    let (status, res) = post_raw(&app, br#"{"name": "X", "value": "#.to_vec(), "application/json").await;
    assert_eq!(status, 400, "{res}");
    assert!(assert_error_shape(&res, "invalid_request").contains("malformed JSON"));

    let (status, res) = post_raw(&app, b"{name: X}".to_vec(), "application/json").await;
    assert_eq!(status, 400, "{res}");
    assert!(assert_error_shape(&res, "invalid_request").contains("malformed JSON at line 1"));

    let huge = serde_json::to_vec(&json!({"name": "HUGE", "value": "v".repeat(5000)})).unwrap();
    let (status, res) = post_raw(&app, huge, "application/json").await;
    assert_eq!(status, 413, "{res}");
    assert!(assert_error_shape(&res, "payload_too_large").contains("4096"));

    let (status, res) = post_raw(
        &app,
        b"name=X&value=v".to_vec(),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(status, 415, "{res}");
    assert_error_shape(&res, "unsupported_media_type");

    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let (status, res) = app.get("/api/no/such/route", &app.admin_key).await;
    assert_eq!(status, 404);
    assert_error_shape(&res, "not_found");
    let res = app
        .client
        .put(app.url(SECRETS))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let (status, res) = split(res).await;
    assert_eq!(status, 405);
    assert_error_shape(&res, "method_not_allowed");
}

#[tokio::test]
async fn health_and_readiness_need_no_credentials_and_reveal_no_workspace_data() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(split(res).await, (200, json!({"status": "ok"})));
    let (status, body) = split(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "sqlite");
    assert!(!body.to_string().contains("acme"));
}
