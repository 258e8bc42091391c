//! Input placed into webhook URLs, over a real server and a raw receiver that records the exact
//! request line: every value is encoded for the component its tag stands in, so it cannot add a
//! query parameter or a path segment, climb the path, add userinfo or move the request to
//! another host; destination-choosing tags are refused in steps that carry secrets.

mod common;

use common::raw_receiver::RawReceiver;
use common::seed::{insert_unvalidated_workflow, store_secret};
use common::*;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sealflow::config::Config;
use sealflow_egress::AllowList;
use serde_json::{json, Value};

/// What a value must look like on the wire: everything but `A-Z a-z 0-9 - . _ ~` escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One value per trick: delimiters of every component, escapes, dot segments, whitespace,
/// Unicode (including a full-width dot), CR/LF, the empty string, and the examples.
const HOSTILE: [&str; 24] = [
    "/",
    "?",
    "#",
    "&",
    "=",
    "@",
    ":",
    "%2F",
    "%2e%2e",
    "..",
    ".",
    "a b&c",
    "a+b",
    "évil",
    "\u{FF0E}evil",
    "a\r\nX-Injected: 1",
    "",
    "evil.test/#",
    "evil.test:80@x",
    "\\evil",
    "x&admin=true",
    "https://evil.test/",
    "tab\there",
    "%00",
];

fn allow_loopback(c: &mut Config) {
    c.engine.egress.allow_list = AllowList::parse("127.0.0.1/32").unwrap();
}

fn enc(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

fn hook(url: &str, headers: Value) -> Value {
    json!({"name": "u", "steps": [{"id": "send", "type": "webhook",
        "config": {"url": url, "method": "GET", "headers": headers, "retries": 0}}]})
}

#[tokio::test]
async fn a_value_stays_inside_its_userinfo_path_query_or_fragment_component() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    let url = format!(
        "http://{{{{input.v}}}}@127.0.0.1:{}/p/{{{{input.v}}}}/end?{{{{input.v}}}}={{{{input.v}}}}&page=1#{{{{input.v}}}}",
        rx.port
    );
    let wf = app.workflow(&app.admin_key, hook(&url, json!({}))).await;
    for value in HOSTILE {
        let before = rx.count();
        let run = app
            .run_and_wait(&app.admin_key, &wf, json!({"v": value}), 10)
            .await;
        if ["", ".", ".."].contains(&value) {
            // The path segment would be empty or climb: nothing is sent.
            assert_eq!(run["status"], "failed", "{value:?}: {run}");
            let error = run["error"].as_str().unwrap();
            assert!(error.contains("cannot be placed in a path segment"), "{error}");
            assert_eq!(rx.count(), before, "{value:?} was sent");
            continue;
        }
        assert_eq!(run["status"], "completed", "{value:?}: {run}");
        let seen = rx.seen();
        assert_eq!(seen.len(), before + 1, "{value:?}");
        let got = &seen[before];
        let e = enc(value);
        assert_eq!(
            got.line,
            format!("GET /p/{e}/end?{e}={e}&page=1 HTTP/1.1"),
            "{value:?}"
        );
        assert_eq!(
            got.header_values("host"),
            [format!("127.0.0.1:{}", rx.port)],
            "{value:?}"
        );
        // The userinfo became Basic credentials for exactly the value, with no password.
        assert_eq!(
            got.header_values("authorization"),
            [format!("Basic {}", b64(&format!("{value}:")))],
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn a_host_label_value_cannot_move_the_request_to_another_host() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    let attacker = RawReceiver::start().await;
    let url = format!("http://127.{{{{input.label}}}}.0.1:{}/ok", rx.port);
    let wf = app.workflow(&app.admin_key, hook(&url, json!({}))).await;

    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"label": "0"}), 10)
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        rx.seen()[0].header_values("host"),
        [format!("127.0.0.1:{}", rx.port)]
    );

    let steer = format!("0.0.1:{}/steal?", attacker.port);
    let userinfo = format!("0.0.1:{}@127.0.0", attacker.port);
    let mut values: Vec<&str> = HOSTILE.to_vec();
    values.extend([steer.as_str(), userinfo.as_str(), "0x7f", "-0", "0-"]);
    for value in values {
        let run = app
            .run_and_wait(&app.admin_key, &wf, json!({"label": value}), 10)
            .await;
        assert_eq!(run["status"], "failed", "{value:?}: {run}");
        let error = run["error"].as_str().unwrap();
        // `0x7f` is a valid label: WHATWG reads the all-numeric host as the IPv4 address
        // 127.127.0.1, outside the egress allow-list, so the guard refuses it instead.
        if value != "0x7f" {
            assert!(
                error.contains("cannot be placed in the host"),
                "{value:?}: {error}"
            );
        }
    }
    assert_eq!(attacker.count(), 0, "the attacker's receiver got a request");
    assert_eq!(rx.count(), 1);

    // The example, with a literal domain after the tag.
    let wf = app
        .workflow(
            &app.admin_key,
            hook("https://{{input.sub}}.example.com/hook", json!({})),
        )
        .await;
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"sub": "evil.test/#"}), 10)
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("a host label may hold only"),
        "{run}"
    );
}

#[tokio::test]
async fn a_path_value_cannot_climb_out_of_its_segment() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    let wf = app
        .workflow(
            &app.admin_key,
            hook(&format!("{}/users/{{{{input.id}}}}/keys", rx.base), json!({})),
        )
        .await;
    for value in ["..", ".", ""] {
        let run = app
            .run_and_wait(&app.admin_key, &wf, json!({"id": value}), 10)
            .await;
        assert_eq!(run["status"], "failed", "{value:?}: {run}");
    }
    assert_eq!(rx.count(), 0, "{:?}", rx.seen());
    let run = app
        .run_and_wait(&app.admin_key, &wf, json!({"id": "a/../../admin?x=1#"}), 10)
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        rx.seen()[0].line,
        "GET /users/a%2F..%2F..%2Fadmin%3Fx%3D1%23/keys HTTP/1.1"
    );
}

#[tokio::test]
async fn a_caller_chosen_destination_is_refused_for_requests_that_carry_secrets() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let attacker = RawReceiver::start().await;
    let value = random_secret_value();
    store_secret(&app, "TOKEN", &value).await;
    let auth = json!({"Authorization": "Bearer {{secrets.TOKEN}}"});
    for url in ["{{input.url}}", "{{input.base}}/v1/events"] {
        let (status, body) = app
            .post("/api/workflows", &app.admin_key, &hook(url, auth.clone()))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        let message = assert_error_shape(&body, "validation_failed");
        assert!(
            message.contains("would choose where this step's secrets are sent"),
            "{message}"
        );
        assert_eq!(body["details"], json!({"step": "send", "field": "config.url"}));
    }
    let (status, body) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &hook("https://{{input.host}}/x", json!({})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("last label of the host"),
        "{body}"
    );

    // A definition stored before the rule: its run fails before anything is sent.
    let old = insert_unvalidated_workflow(&app, hook("{{input.url}}", auth)["steps"].clone()).await;
    let run = app
        .run_and_wait(
            &app.admin_key,
            &old,
            json!({"url": format!("{}/steal", attacker.base)}),
            10,
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(attacker.count(), 0, "the secret went to the caller's URL");

    // Without a secret, the whole URL may come from input (the request carries nothing of ours).
    let wf = app
        .workflow(&app.admin_key, hook("{{input.url}}", json!({})))
        .await;
    let run = app
        .run_and_wait(
            &app.admin_key,
            &wf,
            json!({"url": format!("{}/callback?a=1", attacker.base)}),
            10,
        )
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(attacker.seen()[0].line, "GET /callback?a=1 HTTP/1.1");
}

#[tokio::test]
async fn a_secret_url_base_keeps_its_host_and_the_values_after_it_are_encoded() {
    let app = TestApp::spawn_with(allow_loopback).await;
    let rx = RawReceiver::start().await;
    store_secret(&app, "BASE", &format!("{}/api", rx.base)).await;
    let wf = app
        .workflow(
            &app.admin_key,
            hook("{{secrets.BASE}}/items/{{input.id}}?q={{input.q}}", json!({})),
        )
        .await;
    let run = app
        .run_and_wait(
            &app.admin_key,
            &wf,
            json!({"id": "1/../../x", "q": "a b&c=d"}),
            10,
        )
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        rx.seen()[0].line,
        "GET /api/items/1%2F..%2F..%2Fx?q=a%20b%26c%3Dd HTTP/1.1"
    );
}
