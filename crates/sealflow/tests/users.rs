//! Users and sign-in over HTTP: `POST /api/auth/login`, the login limit, server-signed JWTs
//! accepted beside API keys, and admins managing members through `/api/users`.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_error_shape, sealflow_bin, TestApp};
use sealflow::store::Role;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login request");
    common::split(res).await
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401_body_in_comparable_time() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    // Warm both paths once, then time a few of each.
    let _ = login(&app, "ada@example.com", "not the password").await;
    let _ = login(&app, "nobody@example.com", PASSWORD).await;
    let (mut wrong_time, mut unknown_time) = (Duration::ZERO, Duration::ZERO);
    let (mut wrong, mut unknown) = (Value::Null, Value::Null);
    for _ in 0..3 {
        let t = Instant::now();
        let (status, body) = login(&app, "ada@example.com", "not the password").await;
        wrong_time += t.elapsed();
        assert_eq!(status, 401, "{body}");
        wrong = body;
        let t = Instant::now();
        let (status, body) = login(&app, "nobody@example.com", PASSWORD).await;
        unknown_time += t.elapsed();
        assert_eq!(status, 401, "{body}");
        unknown = body;
    }
    assert_eq!(wrong, unknown, "the two failures must be indistinguishable");
    assert_eq!(
        assert_error_shape(&wrong, "unauthorized"),
        "invalid email or password"
    );
    // Without the dummy hash an unknown email answers in about a millisecond, far below this.
    assert!(
        unknown_time * 3 >= wrong_time,
        "unknown email took {unknown_time:?}, wrong password {wrong_time:?}"
    );
}

#[tokio::test]
async fn login_returns_a_server_signed_jwt_that_the_api_accepts_with_the_current_role() {
    let app = TestApp::spawn().await;
    let id = app.user("Ada@Example.com", PASSWORD, "acme", Role::Member).await;
    let (status, body) = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!({"id": id, "email": "ada@example.com"}));
    assert_eq!(body["workspaces"][0]["slug"], "acme");
    assert_eq!(body["workspaces"][0]["role"], "member");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let secret = json!({"name": "FROM_USER", "value": "v-123456"});
    let (status, created) = app.post("/api/workflows/secrets", &token, &secret).await;
    assert_eq!(status, 201, "{created}");

    // Demoted over the API: the same token now carries readonly rights, at once.
    let (status, changed) = patch(
        &app,
        &format!("/api/users/{id}"),
        &app.admin_key,
        &json!({"role": "readonly"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let (status, refused) = app.post("/api/workflows/secrets", &token, &secret).await;
    assert_eq!(status, 403, "{refused}");
    let (status, _) = app.get("/api/workflows/secrets", &token).await;
    assert_eq!(status, 200);

    // A token whose signature was made with another key is refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let (status, _) = app.get("/api/workflows/secrets", &forged).await;
    assert_eq!(status, 401);
}

async fn patch(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .patch(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request");
    common::split(res).await
}

#[tokio::test]
async fn the_login_limit_per_email_engages_with_429_and_retry_after() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..12 {
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": "ada@example.com", "password": "guess"}))
            .send()
            .await
            .expect("login");
        statuses.push(res.status().as_u16());
        last = Some(res);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    let res = last.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    // Even the right password is refused while the limit holds.
    let (status, body) = login(&app, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 429, "{body}");
    assert_error_shape(&body, "rate_limited");
}

#[tokio::test]
async fn admins_add_people_and_change_roles_but_a_workspace_keeps_an_admin() {
    let app = TestApp::spawn().await;
    let member_key = app.api_key("acme", Role::Member).await;
    let new_user = json!({"email": "bo@example.com", "password": PASSWORD, "role": "member"});
    let (status, body) = app.post("/api/users", &member_key, &new_user).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.post("/api/users", &app.admin_key, &new_user).await;
    assert_eq!(status, 201, "{body}");
    let bo = body["id"].as_str().unwrap().to_owned();
    let (status, _) = login(&app, "bo@example.com", PASSWORD).await;
    assert_eq!(status, 200);

    // A new account needs a password; an existing one joins without.
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_key,
            &json!({"email": "cy@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let other_admin = app.api_key("other", Role::Admin).await;
    let (status, body) = app
        .post(
            "/api/users",
            &other_admin,
            &json!({"email": "BO@example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = login(&app, "bo@example.com", PASSWORD).await;
    let slugs: Vec<&str> = body["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "other"]);

    // bo is the only admin of `other`: demoting or removing bo there is refused.
    let (status, body) = patch(
        &app,
        &format!("/api/users/{bo}"),
        &other_admin,
        &json!({"role": "member"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app.delete(&format!("/api/users/{bo}"), &other_admin, None).await;
    assert_eq!(status, 409, "{body}");
    // In acme bo is a member and can be removed; then bo's acme token stops working.
    let (_, body) = login(&app, "bo@example.com", PASSWORD).await;
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["workspace"], body["workspaces"][0]["id"]);
    let (status, _) = app
        .delete(&format!("/api/users/{bo}"), &app.admin_key, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/api/workflows/secrets", &token).await;
    assert_eq!(status, 401);
    let (status, list) = app.get("/api/users", &app.admin_key).await;
    assert_eq!(status, 200);
    assert!(list["users"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn a_login_names_the_workspace_its_token_acts_in() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    app.user("ada@example.com", PASSWORD, "beta", Role::Readonly)
        .await;
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD, "workspace": "beta"}))
        .send()
        .await
        .unwrap();
    let (status, body) = common::split(res).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, _) = app
        .post(
            "/api/workflows/secrets",
            token,
            &json!({"name": "X", "value": "yyyy"}),
        )
        .await;
    assert_eq!(status, 403, "readonly in beta");
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD, "workspace": "gamma"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_stores_only_an_argon2id_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sealflow_bin()
        .args([
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--workspace",
            "acme",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password 1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("created user ops@example.com"), "{stdout}");
    assert!(!stdout.contains("a long password"));

    let url = format!("sqlite://{}", dir.path().join("sealflow.db").display());
    let store = sealflow::store::open(&url).await.unwrap();
    let user = store
        .find_user_by_email("ops@example.com")
        .await
        .unwrap()
        .expect("user");
    assert!(user.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(common::dir_contains(dir.path(), b"a long password 1").is_empty());
}
