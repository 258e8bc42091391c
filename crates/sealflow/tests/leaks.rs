//! A secret a run resolved never comes back out at the edges (issue 9, items 1–5).
//!
//! Each test drives the real `sealflow serve` binary at debug or trace log level against real
//! local receivers that echo the secret the ways an attacker's host could: cut by the 64 KiB cap,
//! as parts of a whole-URL secret and its `Authorization: Basic` header, as JSON numbers and
//! numeric text, in hex, case-changed, percent-encoded, or as line-broken base64; or place it in
//! the URL host so that it shows up in errors and in the HTTP client's log lines. Then the value
//! (raw and in each encoding, and every 8-character piece where prefix safety is claimed) is
//! looked for, ASCII case-insensitively, in every API response, in the run as the store holds
//! it, in the server's whole log, and in the raw bytes of the SQLite files.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::receiver::Receiver;
use common::*;
use rand::Rng;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Everything but RFC 3986 unreserved characters, as the engine percent-encodes.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A real server with an admin key, recording every answer it gives.
struct Scene {
    dir: TempDir,
    server: Option<ServerProcess>,
    key: String,
    client: reqwest::Client,
    answers: Vec<String>,
    run_ids: Vec<String>,
}

impl Scene {
    /// `sealflow serve` at `log_level`, allowed to reach every loopback address.
    fn start(log_level: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master_key = new_master_key();
        let key = admin_key(dir.path(), &master_key);
        let server = ServerProcess::start(
            dir.path(),
            &[
                ("SEALFLOW_MASTER_KEY", master_key.as_str()),
                ("SEALFLOW_LOG", log_level),
                ("SEALFLOW_EGRESS_ALLOW", "127.0.0.0/8"),
            ],
        )
        .expect("server starts");
        Self {
            dir,
            server: Some(server),
            key,
            client: reqwest::Client::new(),
            answers: Vec::new(),
            run_ids: Vec::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_ref().unwrap().base)
    }

    async fn call(&mut self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.bearer_auth(&self.key).send().await.unwrap();
        let status = res.status().as_u16();
        let headers = format!("{:?}", res.headers());
        let text = res.text().await.unwrap();
        self.answers.push(headers);
        self.answers.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn secret(&mut self, name: &str, value: &str, allowed_hosts: Option<Value>) {
        let mut body = json!({"name": name, "value": value});
        if let Some(hosts) = allowed_hosts {
            body["allowed_hosts"] = hosts;
        }
        let req = self.client.post(self.url("/api/workflows/secrets")).json(&body);
        let (status, answer) = self.call(req).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// Creates a workflow of `steps`, runs it (waiting server side) and reads it back.
    async fn run(&mut self, steps: Value) -> Value {
        let req = self
            .client
            .post(self.url("/api/workflows"))
            .json(&json!({"name": "leak check", "steps": steps}));
        let (status, wf) = self.call(req).await;
        assert_eq!(status, 201, "{wf}");
        let id = wf["id"].as_str().unwrap().to_owned();
        let req = self
            .client
            .post(self.url(&format!("/api/workflows/{id}/run?wait=20")))
            .json(&json!({"input": {}}));
        let (status, run) = self.call(req).await;
        assert_eq!(status, 201, "{run}");
        let run_id = run["id"].as_str().unwrap().to_owned();
        self.run_ids.push(run_id.clone());
        let req = self
            .client
            .get(self.url(&format!("/api/workflows/runs/{run_id}")));
        let (_, run) = self.call(req).await;
        assert!(
            matches!(run["status"].as_str(), Some("completed" | "failed")),
            "the run finished: {run}"
        );
        let req = self.client.get(self.url("/api/workflows/runs"));
        self.call(req).await;
        run
    }

    /// Stops the server and gathers what it answered, logged and stored.
    async fn finish(mut self) -> Evidence {
        let server = self.server.take().unwrap();
        let log = tokio::task::block_in_place(|| server.stop());
        assert!(log.contains("sealflow listening"), "the log was captured:\n{log}");
        let mut texts: Vec<(String, String)> = self
            .answers
            .into_iter()
            .map(|a| ("API answer".to_owned(), a))
            .collect();
        texts.push(("server log".into(), log));
        let store = sealflow::store::open(&format!(
            "sqlite://{}",
            self.dir.path().join("sealflow.db").display()
        ))
        .await
        .unwrap();
        let ws = store.find_workspace("acme").await.unwrap().unwrap();
        for id in &self.run_ids {
            let run = store.get_run(&ws.id, id).await.unwrap().unwrap();
            texts.push(("stored run".into(), format!("{run:?} {:?}", run.error)));
            for step in store.run_steps(id).await.unwrap() {
                let output = step.output.as_ref().map(Value::to_string).unwrap_or_default();
                texts.push((
                    "stored step".into(),
                    format!("{output} {:?} {step:?}", step.error),
                ));
            }
        }
        drop(store);
        Evidence { texts, dir: self.dir }
    }
}

/// What the server answered, logged and stored, plus its data directory.
struct Evidence {
    texts: Vec<(String, String)>,
    dir: TempDir,
}

impl Evidence {
    /// Fails if `needle` occurs, ignoring ASCII case, in any answer, log line, stored record or
    /// data file; also after line breaks (real or JSON-escaped) are taken out, when `unbroken`.
    fn assert_absent(&self, what: &str, needle: &str, unbroken: bool) {
        let needle = needle.to_ascii_lowercase();
        for (label, text) in &self.texts {
            let text = text.to_ascii_lowercase();
            assert!(
                !text.contains(&needle),
                "{label} holds {what} {needle:?}:\n{text}"
            );
            if unbroken {
                let joined = without_line_breaks(&text);
                assert!(
                    !joined.contains(&needle),
                    "{label} holds {what} {needle:?} across line breaks"
                );
            }
        }
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap().to_ascii_lowercase();
                let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
                assert!(!found, "{} holds {what} {needle:?}", path.display());
            }
        }
    }

    /// The value in every encoding the engine promises to mask.
    fn assert_value_absent(&self, value: &str) {
        for (what, needle) in encodings(value) {
            self.assert_absent(what, &needle, false);
        }
    }

    /// No piece of `value` of `len` characters anywhere.
    fn assert_no_piece(&self, what: &str, value: &str, len: usize) {
        let chars: Vec<char> = value.chars().collect();
        for window in chars.windows(len) {
            self.assert_absent(what, &window.iter().collect::<String>(), false);
        }
    }

    fn contains(&self, label: &str, needle: &str) -> bool {
        self.texts.iter().any(|(l, t)| l == label && t.contains(needle))
    }
}

fn without_line_breaks(text: &str) -> String {
    text.replace("\\r", "")
        .replace("\\n", "")
        .replace(['\r', '\n'], "")
}

/// The forms a secret is promised to be masked in (ASCII case is ignored by the search).
fn encodings(value: &str) -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(value).unwrap();
    let debug = format!("{value:?}");
    vec![
        ("the raw value", value.to_owned()),
        ("the upper-case value", value.to_uppercase()),
        ("the lower-case value", value.to_lowercase()),
        ("the JSON-escaped value", json[1..json.len() - 1].to_owned()),
        ("the Debug-escaped value", debug[1..debug.len() - 1].to_owned()),
        (
            "the percent-encoded value",
            percent_encoding::utf8_percent_encode(value, COMPONENT).to_string(),
        ),
        ("the form-encoded value", form_encode(value)),
        ("the hex value", hex::encode(value)),
        ("the base64 value", STANDARD.encode(value)),
        ("the unpadded base64 value", STANDARD_NO_PAD.encode(value)),
        ("the URL-safe base64 value", URL_SAFE.encode(value)),
        (
            "the unpadded URL-safe base64 value",
            URL_SAFE_NO_PAD.encode(value),
        ),
    ]
}

fn form_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, COMPONENT)
        .to_string()
        .replace("%20", "+")
}

/// The base64 characters that depend on `value` alone, for each alignment inside a larger blob.
fn embedded_base64(value: &str) -> Vec<String> {
    (0..3)
        .map(|offset| {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = STANDARD_NO_PAD.encode(&bytes);
            let first = (8 * offset).div_ceil(6);
            let last = bytes.len() * 8 / 6;
            encoded[first..last].to_owned()
        })
        .collect()
}

fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut out = rng.gen_range(1..=9).to_string();
    while out.len() < n {
        out.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    out
}

/// A loopback address other than 127.0.0.1, for a receiver whose address is a secret.
fn random_loopback_ip() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "127.{}.{}.{}",
        rng.gen_range(1..255),
        rng.gen_range(0..255),
        rng.gen_range(1..255)
    )
}

/// A mixed-case host label: the URL parser lowercases hosts, so only a case-blind mask finds it.
fn mixed_case_label() -> String {
    format!("Sv{}Q", sealflow::ids::random_base62(30))
}

fn webhook(id: &str, config: Value) -> Value {
    json!({"id": id, "type": "webhook", "config": config})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_straddling_the_64_kib_cut_is_kept_in_no_record_and_forwarded_nowhere() {
    let rx = Receiver::start().await;
    let elsewhere = Receiver::start_on("127.0.0.2").await;
    let mut scene = Scene::start("debug");
    let value = random_secret_value();
    scene.secret("TOKEN", &value, Some(json!(["127.0.0.1"]))).await;
    let mut steps = Vec::new();
    // Bytes of the echoed form before the cut: from one to all but one.
    let cuts = [(1, ""), (8, ""), (20, ""), (value.len() - 1, ""), (30, "/b64")];
    for (i, (before, form)) in cuts.iter().enumerate() {
        steps.push(webhook(
            &format!("cut{i}"),
            json!({"url": format!("{}/big/{before}{form}", rx.base), "body": {"v": "{{secrets.TOKEN}}"}}),
        ));
        // A later step may forward the recorded body anywhere: it must only ever see the mask.
        steps.push(webhook(
            &format!("fwd{i}"),
            json!({"url": format!("{}/ok", elsewhere.base), "body": {"got": format!("{{{{steps.cut{i}.output.body}}}}")}}),
        ));
    }
    let run = scene.run(Value::Array(steps)).await;
    assert_eq!(run["status"], "completed", "{run}");
    for i in 0..cuts.len() {
        let output = &run["steps"][2 * i]["output"];
        assert_eq!(output["truncated"], true, "{output}");
        let body = output["body"].as_str().unwrap();
        assert!(body.len() <= 64 * 1024, "the kept body respects the cap");
        assert!(body.starts_with("....."), "the filler before the cut is kept");
    }
    assert_eq!(rx.count(), cuts.len());
    let forwarded = elsewhere.seen();
    assert_eq!(forwarded.len(), cuts.len(), "every forward was sent");
    let sent: Vec<String> = forwarded
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_ascii_lowercase())
        .collect();
    let evidence = scene.finish().await;
    let b64 = STANDARD.encode(&value);
    for piece in [value.as_str(), b64.as_str()] {
        let chars: Vec<char> = piece.chars().collect();
        for window in chars.windows(8) {
            let window = window.iter().collect::<String>().to_ascii_lowercase();
            for body in &sent {
                assert!(
                    !body.contains(&window),
                    "a host outside allowed_hosts got {window:?}"
                );
            }
        }
    }
    evidence.assert_value_absent(&value);
    evidence.assert_no_piece("a piece of the value", &value, 8);
    evidence.assert_no_piece("a piece of the value's base64", &b64, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_url_secret_is_masked_in_its_userinfo_path_query_and_basic_auth_echo() {
    let rx = Receiver::start().await;
    let mut scene = Scene::start("trace");
    let random = |n| sealflow::ids::random_base62(n);
    let (user, pass) = (format!("u{}", random(20)), format!("p{}", random(20)));
    let (team, channel, token) = (format!("T{}", random(12)), format!("B{}", random(12)), random(24));
    let host = rx.base.trim_start_matches("http://");
    let value =
        format!("http://{user}:{pass}@{host}/echo/services/{team}/{channel}?token={token}&team={team}");
    scene.secret("SLACK_WEBHOOK_URL", &value, None).await;
    let run = scene
        .run(json!([webhook(
            "notify",
            json!({"url": "{{secrets.SLACK_WEBHOOK_URL}}", "body": {"text": "hello"}})
        )]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let pair = format!("{user}:{pass}");
    assert_eq!(
        seen[0].header("authorization").unwrap(),
        format!("Basic {}", STANDARD.encode(&pair)),
        "the userinfo travelled as HTTP Basic"
    );
    assert_eq!(seen[0].path, format!("/echo/services/{team}/{channel}"));
    let evidence = scene.finish().await;
    assert!(evidence.contains("stored step", "[REDACTED]"));
    evidence.assert_value_absent(&value);
    let path = format!("/echo/services/{team}/{channel}");
    let query = format!("token={token}&team={team}");
    for part in [&user, &pass, &pair, &path, &query, &token, &team, &channel] {
        evidence.assert_value_absent(part);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_secrets_echoed_as_json_numbers_or_numeric_text_are_masked() {
    let rx = Receiver::start().await;
    let mut scene = Scene::start("debug");
    let (pin, big) = (digits(8), digits(30));
    scene.secret("PIN", &pin, None).await;
    scene.secret("BIG", &big, None).await;
    let mut steps = Vec::new();
    for name in ["PIN", "BIG"] {
        for path in ["number", "text"] {
            steps.push(webhook(
                &format!("{path}_{}", name.to_lowercase()),
                json!({"url": format!("{}/{path}", rx.base), "body": {"v": format!("{{{{secrets.{name}}}}}")}}),
            ));
        }
    }
    let run = scene.run(Value::Array(steps)).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(rx.count(), 4);
    // The documents stay JSON: only the secret-bearing numbers are replaced.
    assert_eq!(run["steps"][0]["output"]["body"]["list"][0], 1, "{run}");
    let evidence = scene.finish().await;
    for value in [&pin, &big] {
        evidence.assert_value_absent(value);
    }
    // A 30-digit number parsed as a float keeps 17 significant digits: none of them may remain.
    evidence.assert_no_piece("a piece of the 30-digit value", &big, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_the_url_host_is_masked_in_step_errors_and_run_errors() {
    let ip = random_loopback_ip();
    let failing = Receiver::start_on(&ip).await;
    let port = failing.base.rsplit(':').next().unwrap().to_owned();
    let mut scene = Scene::start("info");
    let label = mixed_case_label();
    scene.secret("SUBDOMAIN", &label, None).await;
    scene.secret("INTERNAL_HOST", &ip, None).await;
    let unreachable = scene
        .run(json!([webhook(
            "send",
            json!({"url": "http://{{secrets.SUBDOMAIN}}.invalid/x", "retries": 0})
        )]))
        .await;
    assert_eq!(unreachable["status"], "failed", "{unreachable}");
    let step_error = unreachable["steps"][0]["error"].as_str().unwrap();
    assert!(step_error.contains("could not connect"), "{step_error}");
    assert!(step_error.contains("[REDACTED]"), "{step_error}");
    let broken = scene
        .run(json!([webhook(
            "send",
            json!({"url": format!("http://{{{{secrets.INTERNAL_HOST}}}}:{port}/fail"), "retries": 0})
        )]))
        .await;
    assert_eq!(broken["status"], "failed", "{broken}");
    let step_error = broken["steps"][0]["error"].as_str().unwrap();
    assert!(step_error.starts_with("HTTP 500 from [REDACTED]"), "{step_error}");
    assert!(broken["error"].as_str().unwrap().contains("HTTP 500"), "{broken}");
    assert_eq!(failing.count(), 1, "the request did reach the host");
    let evidence = scene.finish().await;
    evidence.assert_value_absent(&label);
    evidence.assert_value_absent(&ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hex_case_changed_percent_encoded_and_line_broken_base64_echoes_are_masked() {
    let rx = Receiver::start().await;
    let mut scene = Scene::start("debug");
    let value = format!("{}:/?+ é~", random_secret_value());
    scene.secret("TOKEN", &value, None).await;
    let body = json!({"v": "{{secrets.TOKEN}}"});
    let run = scene
        .run(json!([
            webhook(
                "encodings",
                json!({"url": format!("{}/encodings", rx.base), "body": body})
            ),
            webhook("mime", json!({"url": format!("{}/mime", rx.base), "body": body})),
        ]))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(rx.count(), 2);
    let echoed = &run["steps"][0]["output"]["body"];
    assert!(
        echoed["mime"].as_array().is_some_and(|a| a.len() == 3),
        "{echoed}"
    );
    let evidence = scene.finish().await;
    evidence.assert_value_absent(&value);
    let percent =
        percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
    evidence.assert_absent("the percent-encoded value", &percent, false);
    for core in embedded_base64(&value) {
        let chars: Vec<char> = core.chars().collect();
        for window in chars.windows(8) {
            let window: String = window.iter().collect();
            evidence.assert_absent("a piece of the value's base64", &window, true);
        }
    }
}

#[tokio::test]
async fn secrets_shorter_than_four_bytes_are_refused_and_a_stored_short_one_fails_its_step_unsent() {
    use sealflow::vault::{MasterKey, SecretAad, Vault};
    use secrecy::SecretString;

    let app = TestApp::spawn_with(|c| {
        c.engine.egress.allow_list = sealflow_egress::AllowList::parse("127.0.0.1/32").unwrap()
    })
    .await;
    let rx = Receiver::start().await;
    for short in ["a", "ab", "abc", "é1"] {
        let (status, body) = app
            .post(
                "/api/workflows/secrets",
                &app.admin_key,
                &json!({"name": "SHORT", "value": short}),
            )
            .await;
        assert_eq!(status, 400, "{short:?}: {body}");
        let message = assert_error_shape(&body, "invalid_request");
        assert!(message.contains("at least 4 bytes"), "{message}");
    }
    assert!(app.secret_names(&app.admin_key).await.is_empty());
    let (status, _) = app
        .post(
            "/api/workflows/secrets",
            &app.admin_key,
            &json!({"name": "FOUR", "value": "abcd"}),
        )
        .await;
    assert_eq!(status, 201, "four bytes are enough");

    // A value stored before the rule (written straight into the store, as an old version would).
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap();
    let vault = Vault::new(MasterKey::from_base64(&app.master_key).unwrap());
    let aad = SecretAad {
        workspace_id: &ws.id,
        name: "LEGACY",
        version: 1,
    };
    let sealed = vault.seal(&aad, &SecretString::from("xyz")).unwrap();
    let row = sealflow::store::SecretRecord {
        workspace_id: ws.id.clone(),
        name: "LEGACY".into(),
        version: 1,
        sealed,
        allowed_hosts: None,
        created_at: 0,
        updated_at: 0,
    };
    app.store.insert_secret(&row, 1000, "test").await.unwrap();
    let wf = app
        .workflow(
            &app.admin_key,
            json!({"name": "short", "steps": [webhook("send", json!({"url": format!("{}/echo", rx.base), "body": {"v": "{{secrets.LEGACY}}"}}))]}),
        )
        .await;
    let run = app.run_and_wait(&app.admin_key, &wf, json!({}), 10).await;
    let run = app
        .wait_finished(&app.admin_key, run["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("shorter than 4 bytes"), "{error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.count(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_secret_even_at_trace_level() {
    let ip = random_loopback_ip();
    let internal = Receiver::start_on(&ip).await;
    let rx = Receiver::start().await;
    let mut scene = Scene::start("trace");
    let label = mixed_case_label();
    let token = random_secret_value();
    let port = internal.base.rsplit(':').next().unwrap().to_owned();
    let host = rx.base.trim_start_matches("http://");
    let url = format!(
        "http://u{}:{}@{host}/echo/{}",
        random_secret_value(),
        random_secret_value(),
        random_secret_value()
    );
    scene.secret("SUBDOMAIN", &label, None).await;
    scene.secret("INTERNAL_HOST", &ip, None).await;
    scene.secret("TOKEN", &token, None).await;
    scene.secret("HOOK_URL", &url, None).await;
    // The HTTP client logs connection destinations (the host label, the address) at debug and
    // trace; the echo puts the token and the URL's parts into the response the engine reads.
    scene
        .run(json!([webhook(
            "unreachable",
            json!({"url": "http://{{secrets.SUBDOMAIN}}.invalid/x", "retries": 0})
        ),]))
        .await;
    scene
        .run(json!([
            webhook("internal", json!({"url": format!("http://{{{{secrets.INTERNAL_HOST}}}}:{port}/ok"), "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"}, "body": {"v": "{{secrets.TOKEN}}"}})),
            webhook("whole", json!({"url": "{{secrets.HOOK_URL}}", "body": {"v": "{{secrets.TOKEN}}"}})),
        ]))
        .await;
    assert_eq!(internal.count(), 1);
    assert_eq!(rx.count(), 1);
    let evidence = scene.finish().await;
    assert!(
        evidence.contains("server log", "TRACE"),
        "the log was written at trace level"
    );
    for value in [&label, &ip, &token, &url] {
        evidence.assert_value_absent(value);
    }
}
