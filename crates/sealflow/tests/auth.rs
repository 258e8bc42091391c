//! Authentication and authorization: API keys, JWTs, roles and workspace isolation.

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sealflow::auth::jwt::{JwtConfig, JwtKey};
use sealflow::store::Role;
use secrecy::SecretString;
use serde_json::{json, Value};

const SECRETS: &str = "/api/workflows/secrets";
const HS_SECRET: &str = "a-test-hs256-secret-that-is-long-enough-0123456789";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn jwt_config(key: JwtKey) -> JwtConfig {
    JwtConfig {
        key,
        issuer: Some("https://idp.test".into()),
        audience: Some("sealflow".into()),
        workspace_claim: "workspace".into(),
        role_claim: "role".into(),
    }
}

fn claims(workspace: &str, role: &str, exp: i64) -> Value {
    json!({"sub": "user-1", "workspace": workspace, "role": role, "exp": exp,
           "iss": "https://idp.test", "aud": "sealflow"})
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn eddsa(claims: &Value) -> String {
    let pem = include_bytes!("fixtures/ed25519_private.pem");
    encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_pem(pem).unwrap(),
    )
    .unwrap()
}

async fn status_with(app: &TestApp, token: Option<&str>) -> (u16, Value) {
    let mut req = app.client.get(app.url(SECRETS));
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    split(req.send().await.unwrap()).await
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_api_keys_are_401() {
    let app = TestApp::spawn().await;
    let member = app.api_key("acme", Role::Member).await;
    assert_eq!(status_with(&app, Some(&format!("Bearer {member}"))).await.0, 200);

    let unknown = format!("Bearer sf_live_{}", "A".repeat(40));
    for token in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer "),
        Some(unknown.as_str()),
        Some("Bearer not-a-jwt"),
    ] {
        let (status, body) = status_with(&app, token).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_error_shape(&body, "unauthorized");
    }

    // Revoke through the keys API; the very next request fails.
    let (_, keys) = app.get("/api/keys", &app.admin_key).await;
    let member_id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "member")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .delete(&format!("/api/keys?id={member_id}"), &app.admin_key, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "API key revoked");
    // A revoked key stays listed, disabled (the official CLI can enable it again).
    assert_eq!(
        (body["is_active"].clone(), body["deleted"].clone()),
        (json!(false), json!(false))
    );
    let (status, body) = status_with(&app, Some(&format!("Bearer {member}"))).await;
    assert_eq!(status, 401);
    assert!(assert_error_shape(&body, "unauthorized").contains("revoked"));
}

#[tokio::test]
async fn hs256_jwts_work_and_expired_forged_or_misaddressed_ones_are_401() {
    let app =
        TestApp::spawn_with(|c| c.jwt = Some(jwt_config(JwtKey::Secret(SecretString::from(HS_SECRET)))))
            .await;
    let ok = hs256(&claims("acme", "member", now() + 600), HS_SECRET);
    assert_eq!(status_with(&app, Some(&format!("Bearer {ok}"))).await.0, 200);

    let mut wrong_iss = claims("acme", "member", now() + 600);
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = claims("acme", "member", now() + 600);
    wrong_aud["aud"] = json!("someone-else");
    let mut no_exp = claims("acme", "member", 0);
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases = [
        (
            "expired",
            hs256(&claims("acme", "member", now() - 3600), HS_SECRET),
            "expired",
        ),
        (
            "forged",
            hs256(
                &claims("acme", "admin", now() + 600),
                "another-secret-of-sufficient-length-xyz",
            ),
            "signature",
        ),
        (
            "wrong algorithm",
            eddsa(&claims("acme", "admin", now() + 600)),
            "algorithm",
        ),
        ("wrong issuer", hs256(&wrong_iss, HS_SECRET), "issuer"),
        ("wrong audience", hs256(&wrong_aud, HS_SECRET), "audience"),
        ("no exp", hs256(&no_exp, HS_SECRET), "exp"),
        (
            "unknown workspace",
            hs256(&claims("nowhere", "admin", now() + 600), HS_SECRET),
            "workspace",
        ),
        (
            "unknown role",
            hs256(&claims("acme", "owner", now() + 600), HS_SECRET),
            "role",
        ),
        // alg=none: header {"alg":"none"} with an empty signature.
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(r#"{"alg":"none","typ":"JWT"}"#),
                b64url(&claims("acme", "admin", now() + 600).to_string())
            ),
            "invalid",
        ),
    ];
    for (what, token, needle) in cases {
        let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401, "{what}: {body}");
        let message = assert_error_shape(&body, "unauthorized");
        assert!(message.contains(needle), "{what}: {message}");
    }
}

#[tokio::test]
async fn configured_issuer_and_audience_are_required_and_a_future_nbf_is_refused() {
    let app =
        TestApp::spawn_with(|c| c.jwt = Some(jwt_config(JwtKey::Secret(SecretString::from(HS_SECRET)))))
            .await;
    let without = |claim: &str| {
        let mut c = claims("acme", "member", now() + 600);
        c.as_object_mut().unwrap().remove(claim);
        c
    };
    let with_nbf = |nbf: i64| {
        let mut c = claims("acme", "member", now() + 600);
        c["nbf"] = json!(nbf);
        c
    };
    let mut numeric_iss = claims("acme", "member", now() + 600);
    numeric_iss["iss"] = json!(42);
    let cases = [
        ("no iss", without("iss"), "iss"),
        ("no aud", without("aud"), "aud"),
        ("iss not a string", numeric_iss, "iss"),
        ("nbf in 5 minutes", with_nbf(now() + 300), "not valid yet"),
    ];
    for (what, c, needle) in cases {
        let token = hs256(&c, HS_SECRET);
        let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401, "{what}: {body}");
        let message = assert_error_shape(&body, "unauthorized");
        assert!(message.contains(needle), "{what}: {message}");
    }
    // Within the leeway, and in the past, nbf is fine.
    for nbf in [now() + 5, now() - 60] {
        let token = hs256(&with_nbf(nbf), HS_SECRET);
        let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "nbf {nbf}: {body}");
    }
}

#[tokio::test]
async fn without_a_configured_issuer_or_audience_tokens_need_neither() {
    let app = TestApp::spawn_with(|c| {
        let mut jwt = jwt_config(JwtKey::Secret(SecretString::from(HS_SECRET)));
        jwt.issuer = None;
        jwt.audience = None;
        c.jwt = Some(jwt);
    })
    .await;
    let mut bare = claims("acme", "member", now() + 600);
    bare.as_object_mut().unwrap().remove("iss");
    bare.as_object_mut().unwrap().remove("aud");
    let token = hs256(&bare, HS_SECRET);
    let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{body}");
}

fn b64url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn public_key_jwts_work_and_an_hs256_token_signed_with_the_public_key_is_refused() {
    let public = include_bytes!("fixtures/ed25519_public.pem").to_vec();
    let app = TestApp::spawn_with(|c| c.jwt = Some(jwt_config(JwtKey::PublicPem(public.clone())))).await;
    let ok = eddsa(&claims("acme", "readonly", now() + 600));
    assert_eq!(status_with(&app, Some(&format!("Bearer {ok}"))).await.0, 200);
    // The key-confusion attack: HS256 keyed with the public key's bytes.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("acme", "admin", now() + 600),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    let (status, body) = status_with(&app, Some(&format!("Bearer {confused}"))).await;
    assert_eq!(status, 401, "{body}");
    // A readonly JWT may read but not write.
    let (status, body) = app
        .post(SECRETS, &ok, &json!({"name": "X", "value": "value"}))
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn rsa_public_keys_verify_rs256_tokens() {
    let public = include_bytes!("fixtures/rsa_public.pem").to_vec();
    let app = TestApp::spawn_with(|c| c.jwt = Some(jwt_config(JwtKey::PublicPem(public.clone())))).await;
    let private = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rsa_private.pem")).unwrap();
    let token = encode(
        &Header::new(Algorithm::RS256),
        &claims("acme", "member", now() + 600),
        &private,
    )
    .unwrap();
    let (status, _) = app
        .post(SECRETS, &token, &json!({"name": "FROM_JWT", "value": "value"}))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn readonly_may_list_but_not_create_or_delete() {
    let app = TestApp::spawn().await;
    app.post(
        SECRETS,
        &app.admin_key,
        &json!({"name": "KEPT", "value": "value"}),
    )
    .await;
    let readonly = app.api_key("acme", Role::Readonly).await;
    assert_eq!(app.secret_names(&readonly).await, ["KEPT"]);
    let (status, body) = app
        .post(SECRETS, &readonly, &json!({"name": "NEW", "value": "value"}))
        .await;
    assert_eq!(status, 403);
    assert!(assert_error_shape(&body, "forbidden").contains("readonly"));
    let (status, _) = app
        .delete(SECRETS, &readonly, Some(&json!({"name": "KEPT"})))
        .await;
    assert_eq!(status, 403);
    assert_eq!(app.secret_names(&app.admin_key).await, ["KEPT"]);
    // Members manage secrets but not keys.
    let member = app.api_key("acme", Role::Member).await;
    assert_eq!(
        app.post(SECRETS, &member, &json!({"name": "BY_MEMBER", "value": "value"}))
            .await
            .0,
        201
    );
    assert_eq!(app.get("/api/keys", &member).await.0, 403);
    assert_eq!(app.post("/api/keys", &member, &json!({"name": "k"})).await.0, 403);
}

#[tokio::test]
async fn one_workspace_cannot_see_replace_or_delete_anothers_secrets() {
    let app = TestApp::spawn().await;
    let a = &app.admin_key;
    let b = app.api_key("beta", Role::Admin).await;
    assert_eq!(
        app.post(SECRETS, &b, &json!({"name": "SHARED_NAME", "value": "b-value"}))
            .await
            .0,
        201
    );
    assert_eq!(
        app.post(SECRETS, &b, &json!({"name": "ONLY_B", "value": "b-value"}))
            .await
            .0,
        201
    );

    assert!(app.secret_names(a).await.is_empty());
    let (status, _) = app.delete(SECRETS, a, Some(&json!({"name": "ONLY_B"}))).await;
    assert_eq!(status, 404);
    // Same name in A creates A's own secret and leaves B's untouched.
    assert_eq!(
        app.post(SECRETS, a, &json!({"name": "SHARED_NAME", "value": "a-value"}))
            .await
            .0,
        201
    );

    assert_eq!(app.secret_names(&b).await, ["ONLY_B", "SHARED_NAME"]);
    let ws_b = app.store.find_workspace("beta").await.unwrap().unwrap();
    assert_eq!(
        app.store
            .get_secret(&ws_b.id, "SHARED_NAME")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    // Keys of B are invisible to A and cannot be revoked by A.
    let (_, keys_b) = app.get("/api/keys", &b).await;
    let b_key_id = keys_b["keys"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app.delete(&format!("/api/keys?id={b_key_id}"), a, None).await;
    assert_eq!(status, 404);
    assert_eq!(app.secret_names(&b).await.len(), 2);
}

#[tokio::test]
async fn keys_api_shows_a_key_once_keeps_only_a_preview_and_caps_roles() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post("/api/keys", &app.admin_key, &json!({"name": "deploy"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sf_live_"));
    assert_eq!(created["role"], "member");
    assert_eq!(app.secret_names(&key).await.len(), 0, "the new key works");

    let (_, list) = app.get("/api/keys", &app.admin_key).await;
    assert!(
        !list.to_string().contains(&key),
        "a listed key shows its whole value: {list}"
    );
    let item = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap();
    assert_eq!(item["is_active"], true);
    assert_eq!(item["credits_used"], 0);
    assert!(key.starts_with(item["key_preview"].as_str().unwrap().split('…').next().unwrap()));

    let (status, _) = app
        .post(
            "/api/keys",
            &app.admin_key,
            &json!({"name": "x", "role": "owner"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = app
        .delete(
            &format!("/api/keys?id={}&permanent=true", created["id"].as_str().unwrap()),
            &app.admin_key,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["message"].clone(), body["deleted"].clone()),
        (json!("API key deleted"), json!(true))
    );
    assert_eq!(status_with(&app, Some(&format!("Bearer {key}"))).await.0, 401);
}

#[tokio::test]
async fn every_use_of_an_api_key_is_counted_under_concurrent_requests() {
    let app = TestApp::spawn().await;
    let member = app.api_key("acme", Role::Member).await;
    // Uses are added up per key while a write is under way; none may be lost or counted twice.
    let requests = (0..300).map(|_| app.get(SECRETS, &member));
    for (status, body) in futures::future::join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
    let counted = || async {
        let (_, keys) = app.get("/api/keys", &app.admin_key).await;
        let member_key = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["role"] == "member")
            .cloned()
            .unwrap();
        (
            member_key["total_requests"].as_i64().unwrap(),
            member_key["last_used"].clone(),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut total, mut last_used) = counted().await;
    while total < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (total, last_used) = counted().await;
    }
    assert_eq!(total, 300);
    assert!(last_used.is_string(), "last use recorded: {last_used}");
    // Written a moment later still: nothing more is counted than was used.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(counted().await.0, 300);
}
