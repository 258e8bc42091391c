//! Hardening at the edges (issue 9): webhook signing keys, who sees ingest URLs, replayed signed
//! calls, and what counts as a request body. Real servers over real HTTP on fresh SQLite files.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use sealflow::config::{Config, MasterKeySource};
use sealflow::startup::Application;
use sealflow::store::Role;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::Sha256;

fn sign(key: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// POSTs `body` to an ingest URL with an optional (timestamp, signature).
async fn hook(client: &reqwest::Client, url: &str, body: &str, sig: Option<(i64, &str)>) -> (u16, Value) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some((ts, signature)) = sig {
        req = req
            .header("x-signature-timestamp", ts.to_string())
            .header("x-signature-256", signature);
    }
    split(req.send().await.unwrap()).await
}

/// Creates an active, signed webhook workflow; returns (id, url, signing key).
async fn signed_workflow(app: &TestApp) -> (String, String, String) {
    let (status, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "signed", "status": "active",
                    "trigger": {"type": "webhook", "config": {"signed": true}}}),
        )
        .await;
    assert_eq!(status, 201, "{wf}");
    (
        wf["id"].as_str().unwrap().to_owned(),
        wf["webhook_url"].as_str().unwrap().to_owned(),
        wf["webhook_signing_key"].as_str().unwrap().to_owned(),
    )
}

async fn run_total(app: &TestApp) -> i64 {
    let (_, runs) = app.get("/api/workflows/runs", &app.admin_key).await;
    runs["total"].as_i64().unwrap()
}

#[tokio::test]
async fn a_stored_secret_cannot_be_named_as_a_signing_key_so_it_cannot_be_guessed_through_signatures() {
    let app = TestApp::spawn().await;
    let pin = "4821";
    assert_eq!(
        app.post(
            "/api/workflows/secrets",
            &app.admin_key,
            &json!({"name": "PIN", "value": pin})
        )
        .await
        .0,
        201
    );
    let (status, res) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "oracle", "status": "active",
                    "trigger": {"type": "webhook", "config": {"signing_secret": "PIN"}}}),
        )
        .await;
    assert_eq!(status, 422, "{res}");
    assert!(assert_error_shape(&res, "validation_failed").contains("signed"));

    // A signed workflow checks against its own generated key: the secret's value signs nothing.
    let (_, url, key) = signed_workflow(&app).await;
    let body = r#"{"guess":1}"#;
    let ts = now();
    let (status, res) = hook(&app.client, &url, body, Some((ts, &sign(pin, ts, body)))).await;
    assert_eq!(status, 401, "{res}");
    assert_error_shape(&res, "unauthorized");
    let (status, res) = hook(&app.client, &url, body, Some((ts, &sign(&key, ts, body)))).await;
    assert_eq!(status, 202, "{res}");
    // 256 bits from the master key: base64url of 32 bytes after the prefix.
    assert_eq!(key.len(), "whsec_".len() + 43, "{key}");
}

#[tokio::test]
async fn the_signing_key_is_shown_once_per_key_and_rotates_with_the_url() {
    let app = TestApp::spawn().await;
    let (id, url, key) = signed_workflow(&app).await;
    let (_, other_url, other_key) = signed_workflow(&app).await;
    assert_ne!(key, other_key, "each workflow has its own key");

    // Not in get, list or versions.
    let path = format!("/api/workflows/{id}");
    for p in [path.clone(), "/api/workflows".into(), format!("{path}/versions")] {
        let (status, body) = app.get(&p, &app.admin_key).await;
        assert_eq!(status, 200, "{p}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("webhook_signing_key") && !text.contains(&key),
            "{p}: {text}"
        );
    }
    // An update that leaves signing as it was does not show it again.
    let (status, updated) = put(&app, &path, &json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated.get("webhook_signing_key").is_none(), "{updated}");

    // Rotating gives a new URL and a new key; the old pair no longer starts anything.
    let (status, rotated) = app
        .post(&format!("{path}/webhook/rotate"), &app.admin_key, &json!({}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_url = rotated["webhook_url"].as_str().unwrap();
    let new_key = rotated["webhook_signing_key"].as_str().unwrap();
    assert_ne!(new_key, key);
    let body = r#"{"n":1}"#;
    let ts = now();
    assert_eq!(
        hook(&app.client, &url, body, Some((ts, &sign(&key, ts, body))))
            .await
            .0,
        404
    );
    assert_eq!(
        hook(&app.client, new_url, body, Some((ts, &sign(&key, ts, body))))
            .await
            .0,
        401
    );
    assert_eq!(
        hook(&app.client, new_url, body, Some((ts, &sign(new_key, ts, body))))
            .await
            .0,
        202
    );
    // One workflow's key does not sign for another.
    assert_eq!(
        hook(
            &app.client,
            &other_url,
            body,
            Some((ts, &sign(new_key, ts, body)))
        )
        .await
        .0,
        401
    );

    // Turning signing on in an update shows the key in that response.
    let plain = app
        .workflow(
            &app.admin_key,
            json!({"name": "plain", "status": "active", "trigger": {"type": "webhook"}}),
        )
        .await;
    let (status, wf) = put(
        &app,
        &format!("/api/workflows/{plain}"),
        &json!({"trigger": {"type": "webhook", "config": {"signed": true}}}),
    )
    .await;
    assert_eq!(status, 200, "{wf}");
    let key = wf["webhook_signing_key"]
        .as_str()
        .expect("shown when signing is turned on");
    let url = wf["webhook_url"].as_str().unwrap();
    assert_eq!(hook(&app.client, url, body, None).await.0, 401, "now signed");
    assert_eq!(
        hook(&app.client, url, body, Some((ts, &sign(key, ts, body))))
            .await
            .0,
        202
    );
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
async fn readonly_callers_never_see_a_webhook_url_in_any_response() {
    let app = TestApp::spawn().await;
    let readonly = app.api_key("acme", Role::Readonly).await;
    let member = app.api_key("acme", Role::Member).await;
    let id = app
        .workflow(
            &app.admin_key,
            json!({"name": "hook", "status": "active", "trigger": {"type": "webhook"}}),
        )
        .await;
    let (_, wf) = app.get(&format!("/api/workflows/{id}"), &member).await;
    let url = wf["webhook_url"].as_str().expect("a member sees it").to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();

    let paths = [
        format!("/api/workflows/{id}"),
        "/api/workflows".to_owned(),
        "/api/workflows?status=active".to_owned(),
        format!("/api/workflows/{id}/versions"),
        format!("/api/cli/workflows/{id}"),
        "/api/cli/workflows".to_owned(),
    ];
    for p in &paths {
        let (status, body) = app.get(p, &readonly).await;
        assert_eq!(status, 200, "{p}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(&token) && !text.contains("/api/hooks/"),
            "{p}: {text}"
        );
    }
    let (_, one) = app.get(&format!("/api/workflows/{id}"), &readonly).await;
    assert_eq!(one["webhook_url"], Value::Null);
    assert_eq!(
        one["trigger"]["type"], "webhook",
        "the rest of the workflow is visible"
    );
    let (_, list) = app.get("/api/workflows", &member).await;
    assert_eq!(
        list["workflows"][0]["webhook_url"],
        url.as_str(),
        "members still see it"
    );
}

#[tokio::test]
async fn a_replayed_signed_call_is_refused_and_starts_no_second_run() {
    let app = TestApp::spawn().await;
    let (_, url, key) = signed_workflow(&app).await;
    let body = r#"{"order":42}"#;
    let ts = now();
    let signature = sign(&key, ts, body);
    assert_eq!(hook(&app.client, &url, body, Some((ts, &signature))).await.0, 202);
    let (status, res) = hook(&app.client, &url, body, Some((ts, &signature))).await;
    assert_eq!(status, 409, "{res}");
    assert!(assert_error_shape(&res, "conflict").contains("sign each call anew"));
    // The same MAC written in upper-case hex is the same signature.
    let upper = format!("sha256={}", signature["sha256=".len()..].to_uppercase());
    assert_eq!(hook(&app.client, &url, body, Some((ts, &upper))).await.0, 409);
    // A fresh signature for the same body is a new call.
    let later = ts - 1;
    assert_eq!(
        hook(&app.client, &url, body, Some((later, &sign(&key, later, body))))
            .await
            .0,
        202
    );
    assert_eq!(run_total(&app).await, 2);
}

#[tokio::test]
async fn a_signed_call_replayed_at_another_instance_on_the_same_database_is_refused() {
    let app = TestApp::spawn().await;
    let (_, url, key) = signed_workflow(&app).await;
    // A second instance over the same database file and master key.
    let mut config = Config::for_data_dir(
        app.dir.path(),
        MasterKeySource::Inline(SecretString::from(app.master_key.clone())),
    );
    config.engine.poll = std::time::Duration::from_millis(20);
    let second = Application::build(config).await.expect("second instance builds");
    let second_base = format!("http://127.0.0.1:{}", second.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let second_url = url.replace(&app.base, &second_base);
    assert_ne!(second_url, url);

    let body = r#"{"order":7}"#;
    let ts = now();
    let signature = sign(&key, ts, body);
    assert_eq!(hook(&app.client, &url, body, Some((ts, &signature))).await.0, 202);
    let (status, res) = hook(&app.client, &second_url, body, Some((ts, &signature))).await;
    assert_eq!(status, 409, "{res}");
    assert_eq!(run_total(&app).await, 1);
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
}

#[tokio::test]
async fn calls_without_a_valid_signature_do_not_use_up_the_rate_limit() {
    let app = TestApp::spawn_with(|c| c.hook_rate_limit = 2).await;
    let (_, url, key) = signed_workflow(&app).await;
    let ts = now();
    for i in 0..6 {
        let body = format!(r#"{{"junk":{i}}}"#);
        let bad = if i % 2 == 0 { None } else { Some((ts, "sha256=00")) };
        let (status, res) = hook(&app.client, &url, &body, bad).await;
        assert_eq!(status, 401, "{res}");
    }
    for i in 0..2 {
        let body = format!(r#"{{"good":{i}}}"#);
        let (status, res) = hook(&app.client, &url, &body, Some((ts, &sign(&key, ts, &body)))).await;
        assert_eq!(status, 202, "good call {i}: {res}");
    }
    let body = r#"{"good":2}"#;
    let (status, res) = hook(&app.client, &url, body, Some((ts, &sign(&key, ts, body)))).await;
    assert_eq!(status, 429, "{res}");
    assert_eq!(run_total(&app).await, 2);
}

#[tokio::test]
async fn a_signed_call_refused_for_another_reason_may_be_sent_again_as_is() {
    let app = TestApp::spawn().await;
    let (id, url, key) = signed_workflow(&app).await;
    let path = format!("/api/workflows/{id}");
    assert_eq!(put(&app, &path, &json!({"status": "paused"})).await.0, 200);
    let body = r#"{"order":1}"#;
    let ts = now();
    let signature = sign(&key, ts, body);
    assert_eq!(
        hook(&app.client, &url, body, Some((ts, &signature))).await.0,
        409,
        "paused"
    );
    assert_eq!(put(&app, &path, &json!({"status": "active"})).await.0, 200);
    assert_eq!(hook(&app.client, &url, body, Some((ts, &signature))).await.0, 202);
    assert_eq!(
        hook(&app.client, &url, body, Some((ts, &signature))).await.0,
        409,
        "now a replay"
    );
    assert_eq!(run_total(&app).await, 1);
}

async fn post_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    split(
        app.client
            .post(app.url(path))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn only_a_single_json_object_is_a_request_body() {
    let app = TestApp::spawn().await;
    let wf = app.workflow(&app.admin_key, json!({"name": "w"})).await;
    let cases = [
        (
            "/api/workflows/secrets",
            r#"["ARRAY_SECRET", "v"]"#,
            "one JSON object",
        ),
        ("/api/keys", r#"["array-key", "admin"]"#, "one JSON object"),
        ("/api/workflows", r#"["array-wf"]"#, "one JSON object"),
        (
            "/api/workflows/secrets",
            r#"{"name": "TRAILING", "value": "v-1234"} x"#,
            "after the JSON object",
        ),
        (
            "/api/workflows/secrets",
            r#"{"name": "TWO", "value": "v-1234"}{"name": "TWO", "value": "w-1234"}"#,
            "after the JSON object",
        ),
        ("/api/workflows/secrets", r#""just a string""#, "one JSON object"),
        ("/api/workflows/secrets", "42", "one JSON object"),
    ];
    for (path, body, needle) in cases {
        let (status, res) = post_raw(&app, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {res}");
        let message = assert_error_shape(&res, "invalid_request");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (status, res) = post_raw(&app, &format!("/api/workflows/{wf}/run"), "null").await;
    assert_eq!(status, 400, "a null run body: {res}");
    let (status, res) = post_raw(&app, &format!("/api/workflows/{wf}/run"), "[]").await;
    assert_eq!(status, 400, "an array run body: {res}");
    // Nothing was created by any of them.
    assert!(app.secret_names(&app.admin_key).await.is_empty());
    let (_, keys) = app.get("/api/keys", &app.admin_key).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let (_, wfs) = app.get("/api/workflows", &app.admin_key).await;
    assert_eq!(wfs["total"], 1);
    assert_eq!(run_total(&app).await, 0);
    // Whitespace around one object is fine.
    let (status, res) = post_raw(
        &app,
        "/api/workflows/secrets",
        "\n  {\"name\": \"OK\", \"value\": \"v-1234\"}  \n",
    )
    .await;
    assert_eq!(status, 201, "{res}");
}

#[tokio::test]
async fn an_ingest_body_must_be_one_json_object() {
    let app = TestApp::spawn().await;
    let (_, wf) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "hook", "status": "active", "trigger": {"type": "webhook"}}),
        )
        .await;
    let url = wf["webhook_url"].as_str().unwrap();
    for body in [r#"[{"a":1}]"#, r#"{"a":1} trailing"#, "null", ""] {
        let (status, res) = hook(&app.client, url, body, None).await;
        assert_eq!(status, 400, "{body:?}: {res}");
        assert_error_shape(&res, "invalid_request");
    }
    assert_eq!(run_total(&app).await, 0);
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_a_json_400() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/workflows/%FF%FE",
        "/api/workflows/runs/%C3%28",
        "/api/hooks/%80",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = split(res).await;
        // The hook route only takes POST: its 405 is JSON too.
        assert!(status == 400 || status == 405, "{path}: {status} {body}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
        assert!(body["code"].is_string(), "{path}: {body}");
    }
    let res = app
        .client
        .post(app.url("/api/hooks/%FF"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, body) = split(res).await;
    assert_eq!(status, 400, "{body}");
    assert!(assert_error_shape(&body, "invalid_request").contains("UTF-8"));
}

#[tokio::test]
async fn template_paths_are_capped_when_saved_and_errors_name_them_briefly() {
    let app = TestApp::spawn().await;
    let deep = format!("{{{{input{}}}}}", ".a".repeat(100_000));
    let (status, res) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "deep", "steps": [{"id": "t", "type": "transform", "config": {"output": deep}}]}),
        )
        .await;
    assert!(
        status == 422 || status == 413,
        "{status}: {}",
        &res.to_string()[..200.min(res.to_string().len())]
    );
    assert!(res.to_string().len() < 1000, "{} bytes", res.to_string().len());

    // The longest path that may be saved is named in at most a short prefix when missing.
    let segment = "k".repeat(sealflow_template::MAX_SEGMENT_BYTES);
    let path = format!(".{segment}").repeat(sealflow_template::MAX_PATH_SEGMENTS);
    let id = app
        .workflow(
            &app.admin_key,
            json!({"name": "long", "steps": [{"id": "t", "type": "transform",
                   "config": {"output": format!("{{{{input{path}}}}}")}}]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &id, json!({}), 10).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("not found") && error.len() < 300,
        "{} bytes: {error}",
        error.len()
    );
}
