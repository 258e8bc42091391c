//! The official Encrata Go CLI against sealflow, as raw HTTP: every request below is shaped as
//! the CLI sends it (path under `/api/cli`, method, query, JSON body, headers), and every
//! assertion reads the fields the CLI reads.

mod common;

use common::{assert_error_shape, split, TestApp};
use serde_json::{json, Value};

/// The CLI's headers: bearer key, JSON accept, its user agent.
fn cli(app: &TestApp, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(key)
        .header("Accept", "application/json")
        .header("User-Agent", "encrata-cli/0.11.2")
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    split(req.send().await.expect("request")).await
}

fn find_key<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} not listed: {list}"))
}

async fn transform_workflow(app: &TestApp) -> String {
    app.workflow(
        &app.admin_key,
        json!({"name": "echo", "steps": [{"id": "echo", "type": "transform",
               "config": {"output": {"email": "{{input.email}}"}}}]}),
    )
    .await
}

#[tokio::test]
async fn keys_are_listed_created_renamed_disabled_enabled_and_revoked_under_the_cli_prefix() {
    let app = TestApp::spawn().await;
    let admin = app.admin_key.clone();
    use reqwest::Method;

    let (status, created) =
        send(cli(&app, Method::POST, "/api/cli/keys", &admin).json(&json!({"name": "laptop"}))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    let prefix = created["key_prefix"].as_str().unwrap();
    assert!(
        key.starts_with(prefix) && prefix.len() >= 8,
        "{prefix} is not a prefix of the key"
    );
    assert!(created["key_preview"].as_str().unwrap().starts_with(prefix));

    let (status, list) = send(cli(&app, Method::GET, "/api/cli/keys", &admin)).await;
    assert_eq!(status, 200, "{list}");
    let listed = find_key(&list, &id);
    assert_eq!(listed["key_prefix"], prefix);
    assert!(listed["key_preview"].is_string());
    assert_eq!(listed["is_active"], true);
    assert_eq!(listed["credits_used"], 0);
    assert_eq!(listed["credit_limit"], Value::Null);
    assert!(!list.to_string().contains(&key), "a listing leaked the key");

    let (status, body) =
        send(cli(&app, Method::PUT, "/api/cli/keys", &admin).json(&json!({"id": id, "name": "work laptop"})))
            .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &admin)).await;
    assert_eq!(find_key(&list, &id)["name"], "work laptop");

    // Disabled: refused like a revoked key, still listed, and it can come back.
    let (status, body) = send(
        cli(&app, Method::PATCH, "/api/cli/keys", &admin)
            .query(&[("id", id.as_str()), ("action", "disable")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(cli(&app, Method::GET, "/api/cli/me", &key)).await;
    assert_eq!(status, 401, "a disabled key was accepted: {body}");
    assert_error_shape(&body, "unauthorized");
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &admin)).await;
    assert_eq!(find_key(&list, &id)["is_active"], false);

    let (status, _) = send(
        cli(&app, Method::PATCH, "/api/cli/keys", &admin).query(&[("id", id.as_str()), ("action", "enable")]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(cli(&app, Method::GET, "/api/cli/me", &key)).await;
    assert_eq!(status, 200, "an enabled key was refused: {body}");

    let (status, body) = send(
        cli(&app, Method::PATCH, "/api/cli/keys", &admin)
            .query(&[("id", id.as_str()), ("action", "explode")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body, "invalid_request");

    // Revoke keeps the key listed as disabled; permanent removes it.
    let (status, _) =
        send(cli(&app, Method::DELETE, "/api/cli/keys", &admin).query(&[("id", id.as_str())])).await;
    assert_eq!(status, 200);
    let (status, _) = send(cli(&app, Method::GET, "/api/cli/me", &key)).await;
    assert_eq!(status, 401);
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &admin)).await;
    assert_eq!(find_key(&list, &id)["is_active"], false);
    let (status, _) = send(
        cli(&app, Method::DELETE, "/api/cli/keys", &admin)
            .query(&[("id", id.as_str()), ("permanent", "true")]),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &admin)).await;
    assert!(
        !list.to_string().contains(&id),
        "a permanently revoked key is still listed: {list}"
    );
    let (status, body) = send(
        cli(&app, Method::PATCH, "/api/cli/keys", &admin).query(&[("id", id.as_str()), ("action", "enable")]),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // The same API without the CLI prefix.
    let (status, list) = send(cli(&app, Method::GET, "/api/keys", &admin)).await;
    assert_eq!(status, 200);
    assert!(list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["key_prefix"].is_string()));
}

#[tokio::test]
async fn a_credit_limit_is_stored_listed_and_refuses_runs_past_it_with_402() {
    let app = TestApp::spawn().await;
    use reqwest::Method;
    let wf = transform_workflow(&app).await;
    let (_, created) =
        send(cli(&app, Method::POST, "/api/cli/keys", &app.admin_key).json(&json!({"name": "ci"}))).await;
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());

    let (status, body) = send(
        cli(&app, Method::POST, "/api/cli/keys/limit", &app.admin_key)
            .json(&json!({"id": id, "credit_limit": 2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &app.admin_key)).await;
    assert_eq!(find_key(&list, id)["credit_limit"], 2);

    let run_path = format!("/api/cli/workflows/{wf}/run");
    for _ in 0..2 {
        let (status, body) = send(cli(&app, Method::POST, &run_path, key).json(&json!({}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(cli(&app, Method::POST, &run_path, key).json(&json!({}))).await;
    assert_eq!(status, 402, "{body}");
    assert_error_shape(&body, "insufficient_credits");
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &app.admin_key)).await;
    assert_eq!(find_key(&list, id)["credits_used"], 2, "{list}");

    // An idempotent replay costs nothing.
    let (status, _) = send(
        cli(&app, Method::POST, "/api/cli/keys/limit", &app.admin_key)
            .json(&json!({"id": id, "credit_limit": null})),
    )
    .await;
    assert_eq!(status, 200);
    for expected in [201, 200] {
        let (status, body) = send(
            cli(&app, Method::POST, &run_path, key)
                .header("Idempotency-Key", "once")
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    let (_, list) = send(cli(&app, Method::GET, "/api/cli/keys", &app.admin_key)).await;
    assert_eq!(find_key(&list, id)["credits_used"], 3, "{list}");
    assert_eq!(find_key(&list, id)["credit_limit"], Value::Null);

    let (status, body) = send(
        cli(&app, Method::POST, "/api/cli/keys/limit", &app.admin_key)
            .json(&json!({"id": id, "credit_limit": -1})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn me_answers_who_the_caller_is_and_a_bad_key_is_401() {
    let app = TestApp::spawn().await;
    for path in ["/api/cli/me", "/api/me"] {
        let (status, me) = send(cli(&app, reqwest::Method::GET, path, &app.admin_key)).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["role"], "admin");
        assert_eq!(me["workspace"]["name"], "acme");
        assert!(me["workspace"]["id"].as_str().unwrap().starts_with("ws_"));
        assert!(me["key"]["id"].as_str().unwrap().starts_with("key_"));
        assert!(!me.to_string().contains(&app.admin_key), "me echoed the key");
        let (status, body) = send(cli(
            &app,
            reqwest::Method::GET,
            path,
            "sf_live_0000000000000000000000000000000000000000",
        ))
        .await;
        assert_eq!(status, 401, "{body}");
        assert_error_shape(&body, "unauthorized");
    }
}

#[tokio::test]
async fn workflows_status_reads_the_run_and_its_steps_in_the_cli_shape() {
    let app = TestApp::spawn().await;
    let wf = transform_workflow(&app).await;
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"email": "a@x.com"}), 10)
        .await;
    let id = run["id"].as_str().unwrap();

    let (status, body) = send(cli(
        &app,
        reqwest::Method::GET,
        &format!("/api/cli/workflows/runs/{id}"),
        &app.admin_key,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["id"], id);
    assert_eq!(body["run"]["status"], "completed");
    assert!(
        body["run"].get("output_rows").is_some(),
        "run.output_rows missing: {body}"
    );
    assert!(body["run"].get("steps").is_none());
    let steps = body["steps"].as_array().expect("steps beside the run");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["step_id"], "echo");
    assert_eq!(steps[0]["step_type"], "transform");
    assert_eq!(steps[0]["status"], "completed");
    assert!(steps[0]["duration_ms"].is_number());

    // The SDK's flat shape stays under /api.
    let (_, flat) = app
        .get(&format!("/api/workflows/runs/{id}"), &app.admin_key)
        .await;
    assert_eq!(flat["id"], id);
    assert_eq!(flat["steps"][0]["id"], "echo");

    // `workflows runs` reads id, status, output_rows, credits_used, created_at.
    let (status, list) = send(
        cli(
            &app,
            reqwest::Method::GET,
            "/api/cli/workflows/runs",
            &app.admin_key,
        )
        .query(&[("workflow_id", wf.as_str()), ("limit", "20")]),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let first = &list["runs"][0];
    for field in ["id", "status", "output_rows", "credits_used", "created_at"] {
        assert!(first.get(field).is_some(), "runs[0].{field} missing: {list}");
    }
}

#[tokio::test]
async fn the_same_idempotency_key_with_a_different_body_is_409() {
    let app = TestApp::spawn().await;
    let wf = transform_workflow(&app).await;
    let path = format!("/api/cli/workflows/{wf}/run");
    let post = |body: Value| {
        cli(&app, reqwest::Method::POST, &path, &app.admin_key)
            .header("Idempotency-Key", "idem-123")
            .json(&body)
    };
    let (status, first) = send(post(json!({"input": {"email": "a@x.com"}}))).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = send(post(json!({"input": {"email": "a@x.com"}}))).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    // Same input, another field: before, only `input` was compared and this replayed with 200.
    let (status, body) = send(post(
        json!({"input": {"email": "a@x.com"}, "note": "another body"}),
    ))
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "conflict");
}

#[tokio::test]
async fn a_429_carries_retry_after_and_all_three_rate_limit_headers() {
    let app = TestApp::spawn_with(|c| c.run_rate_limit = 1).await;
    let wf = transform_workflow(&app).await;
    let path = format!("/api/cli/workflows/{wf}/run");
    let (status, _) = send(cli(&app, reqwest::Method::POST, &path, &app.admin_key).json(&json!({}))).await;
    assert_eq!(status, 201);
    let res = cli(&app, reqwest::Method::POST, &path, &app.admin_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let header = |name: &str| -> i64 {
        res.headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(header("x-ratelimit-limit"), 1);
    assert_eq!(header("x-ratelimit-remaining"), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let reset = header("x-ratelimit-reset");
    assert!(reset >= now && reset <= now + 61, "reset {reset} vs now {now}");
    let retry = header("retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    let (_, body) = split(res).await;
    assert_error_shape(&body, "rate_limited");
}

#[tokio::test]
async fn integrations_routes_answer_503_json_saying_they_are_not_part_of_sealflow() {
    let app = TestApp::spawn().await;
    use reqwest::Method;
    for (method, path) in [
        (Method::GET, "/api/cli/workflows/integrations"),
        (Method::GET, "/api/cli/workflows/integrations/nango/providers"),
        (Method::POST, "/api/cli/workflows/integrations/nango/session"),
        (Method::DELETE, "/api/cli/workflows/integrations/int_1"),
        (Method::GET, "/api/workflows/integrations"),
    ] {
        let (status, body) = send(cli(&app, method.clone(), path, &app.admin_key).json(&json!({}))).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        let message = assert_error_shape(&body, "not_supported");
        assert!(message.contains("not part of sealflow"), "{message}");
    }
}
