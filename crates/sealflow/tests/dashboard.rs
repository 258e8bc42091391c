//! The dashboard over plain HTTP: sign-in, the session cookie's attributes, sign-out, CSRF,
//! redirects without a session, readonly users, workspace isolation and write-only secrets.
//! (The same flows in a real browser are in `tests/browser.rs`.)

mod common;

use common::TestApp;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use sealflow::store::Role;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A cookie-keeping client that does not follow redirects.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    last_set_cookie: Vec<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
        re.captures(&self.body)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body))[1]
            .to_owned()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
            last_set_cookie: Vec::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header(COOKIE, cookie)
        };
        let res = req.send().await.expect("request");
        self.last_set_cookie = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for sc in &self.last_set_cookie {
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: res.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// Signs in and returns the session's CSRF token (from the runs page).
    async fn signed_in(app: &TestApp, email: &str) -> (Self, String) {
        let mut b = Browser::new(app);
        let page = b.sign_in(email, PASSWORD).await;
        assert_eq!(
            (page.status, page.location.as_deref()),
            (303, Some("/runs")),
            "{}",
            page.body
        );
        let csrf = b.get("/runs").await.csrf();
        (b, csrf)
    }
}

#[tokio::test]
async fn every_dashboard_page_without_a_session_redirects_to_sign_in() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    for path in [
        "/",
        "/runs",
        "/runs/run_x",
        "/workflows",
        "/workflows/wf_x",
        "/secrets",
        "/secrets/delete?name=A",
        "/keys",
        "/runs?status=failed",
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.location.as_deref(), Some("/login"), "{path}");
    }
    for path in [
        "/secrets",
        "/workflows",
        "/keys",
        "/keys/revoke",
        "/logout",
        "/runs/run_x/cancel",
    ] {
        let page = b
            .post(path, &[("csrf", "x"), ("name", "A"), ("value", "b")])
            .await;
        assert_eq!(
            (page.status, page.location.as_deref()),
            (303, Some("/login")),
            "{path}"
        );
    }
    let login = b.get("/login").await;
    assert_eq!(login.status, 200);
    for needle in [
        r#"<label for="email">Email</label>"#,
        r#"<label for="password">Password</label>"#,
        ">Sign in</button>",
    ] {
        assert!(login.body.contains(needle), "{needle}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_samesite_strict_and_sign_out_revokes_it() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let mut b = Browser::new(&app);
    let page = b.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(page.status, 303);
    let cookie = b
        .last_set_cookie
        .iter()
        .find(|c| c.starts_with("sealflow_session="))
        .expect("session cookie")
        .clone();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http gets no Secure: {cookie}");
    let runs = b.get("/runs").await;
    assert_eq!(runs.status, 200);
    assert!(runs.body.contains("ada@example.com"));

    // The database holds only the token's hash.
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert!(common::dir_contains(app.dir.path(), token.as_bytes()).is_empty());

    let old = b.cookies.clone();
    let csrf = runs.csrf();
    let out = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
    assert!(b
        .last_set_cookie
        .iter()
        .any(|c| c.starts_with("sealflow_session=;") && c.contains("Max-Age=0")));
    // Replaying the old cookie after sign-out does not work: the session is gone server-side.
    b.cookies = old;
    let again = b.get("/runs").await;
    assert_eq!((again.status, again.location.as_deref()), (303, Some("/login")));
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://flows.example.com".to_owned())).await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let mut b = Browser::new(&app);
    b.sign_in("ada@example.com", PASSWORD).await;
    let cookie = b
        .last_set_cookie
        .iter()
        .find(|c| c.starts_with("sealflow_session="))
        .expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn the_sign_in_form_answers_a_wrong_password_and_an_unknown_email_alike() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let mut b = Browser::new(&app);
    let wrong = b.sign_in("ada@example.com", "not it at all").await;
    let unknown = b.sign_in("ghost@example.com", PASSWORD).await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let strip = |p: &Page, email: &str| {
        let re = regex::Regex::new(r#"value="[^"]*""#).unwrap();
        re.replace_all(&p.body.replace(email, "E"), "").into_owned()
    };
    assert_eq!(
        strip(&wrong, "ada@example.com"),
        strip(&unknown, "ghost@example.com")
    );
    assert!(wrong.body.contains("Invalid email or password."));
    assert!(
        !wrong.body.contains("not it at all"),
        "the password is never echoed"
    );
}

#[tokio::test]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let (mut b, csrf) = Browser::signed_in(&app, "ada@example.com").await;
    let page = b
        .post("/secrets", &[("name", "NO_TOKEN"), ("value", "v-abcdef")])
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let page = b
        .post(
            "/secrets",
            &[
                ("csrf", "forged-token"),
                ("name", "NO_TOKEN"),
                ("value", "v-abcdef"),
            ],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(app.secret_names(&app.admin_key).await.is_empty());
    // The sign-in form refuses a post without its token too.
    let mut fresh = Browser::new(&app);
    let page = fresh
        .post("/login", &[("email", "ada@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, 403);
    // With the token the same post works.
    let page = b
        .post(
            "/secrets",
            &[("csrf", &csrf), ("name", "WITH_TOKEN"), ("value", "v-abcdef")],
        )
        .await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/secrets?notice=saved"))
    );
    assert_eq!(app.secret_names(&app.admin_key).await, ["WITH_TOKEN"]);
}

#[tokio::test]
async fn a_secret_value_is_never_rendered_not_even_after_a_failed_save() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Member).await;
    let (mut b, csrf) = Browser::signed_in(&app, "ada@example.com").await;
    let value = common::random_secret_value();
    let bad = b
        .post(
            "/secrets",
            &[("csrf", &csrf), ("name", "1BAD NAME"), ("value", &value)],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("name must match"), "{}", bad.body);
    assert!(bad.body.contains("1BAD NAME"), "the name is kept in the form");
    assert!(!bad.body.contains(&value));
    let ok = b
        .post(
            "/secrets",
            &[
                ("csrf", &csrf),
                ("name", "GOOD"),
                ("value", &value),
                ("allowed_hosts", "hooks.example.com"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    let list = b.get("/secrets").await;
    assert!(list.body.contains("GOOD") && list.body.contains("hooks.example.com"));
    assert!(!list.body.contains(&value));
    assert!(!list.body.contains(&common::b64(&value)));
}

#[tokio::test]
async fn readonly_users_see_no_write_controls_and_their_forged_posts_are_refused() {
    let app = TestApp::spawn().await;
    app.user("ro@example.com", PASSWORD, "acme", Role::Readonly).await;
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"template_id": "tpl_forward_api", "status": "active"}),
        )
        .await;
    let (mut b, csrf) = Browser::signed_in(&app, "ro@example.com").await;
    for path in ["/secrets", "/workflows", &format!("/workflows/{wf}"), "/keys"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        for control in [
            "Save secret",
            "Create workflow",
            ">Run</button>",
            "Activate workflow",
            "Pause workflow",
            "Save definition",
            "Create key",
            "Rotate webhook URL",
            "/api/hooks/",
        ] {
            assert!(
                !page.body.contains(control),
                "{control} shown to readonly on {path}"
            );
        }
    }
    // Forged posts with the user's own valid CSRF token are refused by role.
    for (path, form) in [
        ("/secrets", vec![("name", "RO"), ("value", "v-abcdef")]),
        ("/workflows", vec![("template_id", "")]),
        (&*format!("/workflows/{wf}/run"), vec![("input", "{}")]),
        (&*format!("/workflows/{wf}/webhook"), vec![]),
        ("/keys", vec![("name", "k"), ("role", "admin")]),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        let page = b.post(path, &fields).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
    }
    assert!(app.secret_names(&app.admin_key).await.is_empty());
    let (_, runs) = app.get("/api/workflows/runs", &app.admin_key).await;
    assert_eq!(runs["total"], 0);
}

#[tokio::test]
async fn a_user_of_workspace_a_reaches_nothing_of_workspace_b() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    let b_key = app.api_key("beta", Role::Admin).await;
    let (status, _) = app
        .post(
            "/api/workflows/secrets",
            &b_key,
            &json!({"name": "BETA_ONLY", "value": "v-beta-1"}),
        )
        .await;
    assert_eq!(status, 201);
    let b_wf = app
        .workflow(
            &b_key,
            json!({"template_id": "tpl_forward_api", "name": "Beta flow"}),
        )
        .await;
    let (_, run) = app
        .post(&format!("/api/workflows/{b_wf}/run"), &b_key, &json!({}))
        .await;
    let b_run = run["id"].as_str().unwrap().to_owned();
    let beta = app.store.find_workspace("beta").await.unwrap().unwrap();

    let (mut b, csrf) = Browser::signed_in(&app, "ada@example.com").await;
    for path in ["/secrets", "/workflows", "/runs", "/keys"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200);
        for needle in ["BETA_ONLY", "Beta flow", b_wf.as_str(), b_run.as_str(), "beta"] {
            assert!(!page.body.contains(needle), "{needle} of beta on {path}");
        }
    }
    for path in [
        format!("/workflows/{b_wf}"),
        format!("/runs/{b_run}"),
        format!("/runs/{b_run}?fragment=1"),
    ] {
        assert_eq!(b.get(&path).await.status, 404, "{path}");
    }
    for (path, form) in [
        (format!("/workflows/{b_wf}/run"), vec![("input", "{}")]),
        (format!("/workflows/{b_wf}/status"), vec![("status", "paused")]),
        (format!("/workflows/{b_wf}/webhook"), vec![]),
        (format!("/runs/{b_run}/cancel"), vec![]),
        ("/secrets/delete".to_owned(), vec![("name", "BETA_ONLY")]),
        ("/switch".to_owned(), vec![("workspace", beta.id.as_str())]),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        assert_eq!(b.post(&path, &fields).await.status, 404, "{path}");
    }
    assert_eq!(app.secret_names(&b_key).await, ["BETA_ONLY"]);
    let (_, wf) = app.get(&format!("/api/workflows/{b_wf}"), &b_key).await;
    assert_eq!(wf["status"], "draft");
}

#[tokio::test]
async fn the_switcher_moves_a_session_between_the_users_workspaces() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Admin).await;
    app.user("ada@example.com", PASSWORD, "beta", Role::Readonly)
        .await;
    let b_key = app.api_key("beta", Role::Admin).await;
    app.post(
        "/api/workflows/secrets",
        &b_key,
        &json!({"name": "BETA_ONLY", "value": "v-beta-1"}),
    )
    .await;
    let beta = app.store.find_workspace("beta").await.unwrap().unwrap();
    let (mut b, csrf) = Browser::signed_in(&app, "ada@example.com").await;
    assert!(!b.get("/secrets").await.body.contains("BETA_ONLY"));
    let page = b
        .post("/switch", &[("csrf", &csrf), ("workspace", &beta.id)])
        .await;
    assert_eq!(page.status, 303);
    let secrets = b.get("/secrets").await;
    assert!(secrets.body.contains("BETA_ONLY"));
    assert!(!secrets.body.contains("Save secret"), "readonly in beta");
}

#[tokio::test]
async fn the_editor_shows_a_validation_message_beside_the_step_it_names() {
    let app = TestApp::spawn().await;
    app.user("ada@example.com", PASSWORD, "acme", Role::Member).await;
    let wf = app
        .workflow(&app.admin_key, json!({"template_id": "tpl_forward_api"}))
        .await;
    let (mut b, csrf) = Browser::signed_in(&app, "ada@example.com").await;
    let definition = json!({"name": "X", "trigger": {"type": "manual"},
        "steps": [{"id": "first", "type": "transform", "config": {"output": {}}},
                  {"id": "broken", "type": "webhook", "config": {"url": "ftp://nope"}}]});
    let page = b
        .post(
            &format!("/workflows/{wf}"),
            &[("csrf", &csrf), ("definition", &definition.to_string())],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    let li = regex::Regex::new(r#"(?s)<li class="invalid"><code>broken</code>.*?field-error.*?config\.url"#)
        .unwrap();
    assert!(li.is_match(&page.body), "{}", page.body);
    let (_, stored) = app.get(&format!("/api/workflows/{wf}"), &app.admin_key).await;
    assert_eq!(stored["version"], 1, "nothing saved");
}
