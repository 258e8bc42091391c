//! The validation matrix over HTTP: each invalid definition gets its exact status, a message
//! naming the step and field, and leaves the store as it was.

mod common;

use common::*;
use serde_json::{json, Value};

fn hook(id: &str, config: Value) -> Value {
    json!({"id": id, "type": "webhook", "config": config})
}

fn url() -> Value {
    json!("https://api.example.com/x")
}

/// (what, body, status, message substrings, details.step)
type Case = (&'static str, Value, u16, Vec<&'static str>, Option<&'static str>);

fn cases() -> Vec<Case> {
    let ok_hook = hook("first", json!({"url": url()}));
    vec![
        (
            "empty name",
            json!({"name": ""}),
            422,
            vec!["name must be 1 to 200"],
            None,
        ),
        (
            "long name",
            json!({"name": "n".repeat(201)}),
            422,
            vec!["name must be 1 to 200"],
            None,
        ),
        ("blank name", json!({"name": "   "}), 422, vec!["name"], None),
        (
            "missing name",
            json!({"steps": []}),
            400,
            vec!["name is required"],
            None,
        ),
        (
            "bad status",
            json!({"name": "x", "status": "running"}),
            422,
            vec!["status must be one of"],
            None,
        ),
        (
            "steps not an array",
            json!({"name": "x", "steps": {"id": "a"}}),
            422,
            vec!["steps"],
            None,
        ),
        (
            "51 steps",
            json!({"name": "x", "steps": (0..51).map(|i| hook(&format!("s{i}"), json!({"url": url()}))).collect::<Vec<_>>()}),
            422,
            vec!["50"],
            None,
        ),
        (
            "duplicate ids",
            json!({"name": "x", "steps": [ok_hook.clone(), hook("first", json!({"url": url()}))]}),
            422,
            vec!["\"first\"", "unique"],
            None,
        ),
        (
            "bad step id",
            json!({"name": "x", "steps": [hook("has space", json!({"url": url()}))]}),
            422,
            vec!["id"],
            None,
        ),
        (
            "unsupported type",
            json!({"name": "x", "steps": [{"id": "look", "type": "email_lookup", "config": {}}]}),
            422,
            vec![
                "step \"look\"",
                "email_lookup",
                "webhook, condition, delay, transform",
            ],
            Some("look"),
        ),
        (
            "webhook without url",
            json!({"name": "x", "steps": [hook("n", json!({}))]}),
            422,
            vec!["step \"n\"", "config.url"],
            Some("n"),
        ),
        (
            "webhook non-http url",
            json!({"name": "x", "steps": [hook("n", json!({"url": "ftp://x.example"}))]}),
            422,
            vec!["step \"n\"", "config.url"],
            Some("n"),
        ),
        (
            "webhook bad method",
            json!({"name": "x", "steps": [hook("notify", json!({"url": url(), "method": "FETCH"}))]}),
            422,
            vec!["step \"notify\": config.method must be one of GET, POST, PUT, PATCH, DELETE"],
            Some("notify"),
        ),
        (
            "webhook timeout too big",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "timeout_ms": 60001}))]}),
            422,
            vec!["step \"n\"", "config.timeout_ms"],
            Some("n"),
        ),
        (
            "webhook timeout wrong type",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "timeout_ms": "fast"}))]}),
            422,
            vec!["step \"n\"", "config.timeout_ms"],
            Some("n"),
        ),
        (
            "webhook header not a string",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "headers": {"X-A": 1}}))]}),
            422,
            vec!["step \"n\"", "config.headers"],
            Some("n"),
        ),
        (
            "webhook unknown key",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "metod": "GET"}))]}),
            422,
            vec!["step \"n\"", "metod"],
            Some("n"),
        ),
        (
            "malformed template",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "body": {"a": "{{input.x"}}))]}),
            422,
            vec!["step \"n\"", "config.body.a", "byte"],
            Some("n"),
        ),
        (
            "unknown template root",
            json!({"name": "x", "steps": [hook("n", json!({"url": url(), "body": "{{env.HOME}}"}))]}),
            422,
            vec!["step \"n\"", "config.body"],
            Some("n"),
        ),
        (
            "secret in a transform",
            json!({"name": "x", "steps": [{"id": "shape", "type": "transform", "config": {"output": {"t": "{{secrets.API_KEY}}"}}}]}),
            422,
            vec!["step \"shape\"", "secrets may only be used in webhook steps"],
            Some("shape"),
        ),
        (
            "secret in a condition",
            json!({"name": "x", "steps": [{"id": "c", "type": "condition", "config": {"field": "{{secrets.K}}", "operator": "exists"}}, ok_hook.clone()]}),
            422,
            vec!["step \"c\"", "secrets"],
            Some("c"),
        ),
        (
            "reference to a later step",
            json!({"name": "x", "steps": [hook("a", json!({"url": url(), "body": "{{steps.b.output}}"})), hook("b", json!({"url": url()}))]}),
            422,
            vec!["step \"a\"", "\"b\" comes after"],
            Some("a"),
        ),
        (
            "reference to itself",
            json!({"name": "x", "steps": [hook("a", json!({"url": url(), "body": "{{steps.a.output.x}}"}))]}),
            422,
            vec!["step \"a\"", "itself"],
            Some("a"),
        ),
        (
            "reference to no step",
            json!({"name": "x", "steps": [hook("a", json!({"url": url(), "body": "{{steps.ghost.output}}"}))]}),
            422,
            vec!["step \"a\"", "ghost"],
            Some("a"),
        ),
        (
            "condition bad operator",
            json!({"name": "x", "steps": [{"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "like", "value": 1}}]}),
            422,
            vec!["step \"c\"", "config.operator"],
            Some("c"),
        ),
        (
            "condition missing value",
            json!({"name": "x", "steps": [{"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "eq"}}]}),
            422,
            vec!["step \"c\"", "config.value"],
            Some("c"),
        ),
        (
            "condition bad regex",
            json!({"name": "x", "steps": [{"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "matches", "value": "(["}}]}),
            422,
            vec!["step \"c\"", "config.value"],
            Some("c"),
        ),
        (
            "condition jumps backwards",
            json!({"name": "x", "steps": [ok_hook.clone(), {"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "exists", "then": "first"}}]}),
            422,
            vec!["step \"c\"", "config.then", "forward"],
            Some("c"),
        ),
        (
            "condition else to nowhere",
            json!({"name": "x", "steps": [{"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "exists", "else": "nowhere"}}]}),
            422,
            vec!["step \"c\"", "config.else"],
            Some("c"),
        ),
        (
            "delay too long",
            json!({"name": "x", "steps": [{"id": "wait", "type": "delay", "config": {"seconds": 604801}}]}),
            422,
            vec!["step \"wait\"", "config.seconds"],
            Some("wait"),
        ),
        (
            "delay bad duration",
            json!({"name": "x", "steps": [{"id": "wait", "type": "delay", "config": {"duration": "5x"}}]}),
            422,
            vec!["step \"wait\"", "config.duration"],
            Some("wait"),
        ),
        (
            "delay both forms",
            json!({"name": "x", "steps": [{"id": "wait", "type": "delay", "config": {"seconds": 5, "duration": "5s"}}]}),
            422,
            vec!["step \"wait\""],
            Some("wait"),
        ),
        (
            "transform without output",
            json!({"name": "x", "steps": [{"id": "t", "type": "transform", "config": {}}]}),
            422,
            vec!["step \"t\"", "config.output"],
            Some("t"),
        ),
        (
            "unknown trigger type",
            json!({"name": "x", "trigger": {"type": "email"}}),
            422,
            vec!["trigger", "manual, webhook, schedule"],
            None,
        ),
        (
            "bad cron",
            json!({"name": "x", "trigger": {"type": "schedule", "config": {"cron": "*/5 * *"}}}),
            422,
            vec!["trigger.config.cron", "5-field"],
            None,
        ),
        (
            "bad timezone",
            json!({"name": "x", "trigger": {"type": "schedule", "config": {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}}}),
            422,
            vec!["trigger.config.timezone", "Mars/Olympus"],
            None,
        ),
        (
            "a stored secret named as the signing key",
            json!({"name": "x", "trigger": {"type": "webhook", "config": {"signing_secret": "HOOK_KEY"}}}),
            422,
            vec!["signing_secret", "signed"],
            None,
        ),
        (
            "name of the wrong type",
            json!({"name": 42}),
            400,
            vec!["invalid type"],
            None,
        ),
    ]
}

#[tokio::test]
async fn each_invalid_definition_is_refused_with_its_place_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let (status, existing) = app
        .post(
            "/api/workflows",
            key,
            &json!({"name": "keep", "steps": [hook("first", json!({"url": url()}))]}),
        )
        .await;
    assert_eq!(status, 201);
    let path = format!("/api/workflows/{}", existing["id"].as_str().unwrap());
    let cases = cases();
    assert!(cases.len() >= 25);

    for (what, body, status, needles, step) in cases {
        // As a create…
        let (got, res) = app.post("/api/workflows", key, &body).await;
        assert_eq!(got, status, "{what}: {res}");
        let code = if status == 422 {
            "validation_failed"
        } else {
            "invalid_request"
        };
        let message = assert_error_shape(&res, code);
        for needle in &needles {
            assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}");
        }
        if let Some(step) = step {
            assert_eq!(res["details"]["step"], step, "{what}: {res}");
            assert!(res["details"]["field"].is_string(), "{what}: {res}");
        }
        // …and, where the body is a definition change, as an update of an existing workflow.
        if status == 422 && body.get("template_id").is_none() {
            let mut change = body.clone();
            change.as_object_mut().unwrap().remove("name");
            if change.as_object().unwrap().is_empty() {
                change = body.clone();
            }
            let res = app
                .client
                .put(app.url(&path))
                .bearer_auth(key)
                .json(&change)
                .send()
                .await
                .unwrap();
            let (got, res) = split(res).await;
            assert_eq!(got, 422, "{what} as an update: {res}");
        }
    }

    let (_, list) = app.get("/api/workflows", key).await;
    assert_eq!(list["total"], 1, "an invalid definition was stored");
    let (_, kept) = app.get(&path, key).await;
    assert_eq!(
        (kept["version"].clone(), kept["name"].clone()),
        (json!(1), json!("keep"))
    );
    let (_, versions) = app.get(&format!("{path}/versions"), key).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_valid_definition_of_every_step_and_trigger_type_is_accepted() {
    let app = TestApp::spawn().await;
    let steps = json!([
        {"id": "check", "type": "condition", "config": {"field": "{{input.priority}}", "operator": "eq", "value": "high", "else": "end"}},
        {"id": "wait", "type": "delay", "config": {"duration": "5m"}},
        {"id": "shape", "type": "transform", "config": {"output": {"text": "Order {{input.id}} from {{run.id}}"}}},
        {"id": "notify", "type": "webhook", "config": {
            "url": "{{secrets.SLACK_URL}}", "method": "post",
            "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
            "body": {"text": "{{steps.shape.output.text}}"}, "timeout_ms": 5000, "retries": 2}},
    ]);
    for trigger in [
        json!({"type": "manual"}),
        json!({"type": "webhook", "config": {"signed": true}}),
        json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}}),
    ] {
        let (status, wf) = app
            .post(
                "/api/workflows",
                &app.admin_key,
                &json!({"name": "all types", "trigger": trigger, "steps": steps}),
            )
            .await;
        assert_eq!(status, 201, "{trigger}: {wf}");
        assert_eq!(wf["steps"], steps, "stored as sent");
        assert_eq!(wf["trigger"]["type"], trigger["type"]);
    }
}
