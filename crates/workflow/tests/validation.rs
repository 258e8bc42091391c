//! The validation contract: a matrix of invalid definitions with their exact
//! messages and details, and valid definitions of every step and trigger type
//! with the typed configs (defaults applied) they produce.

use std::collections::BTreeMap;

use sealflow_workflow::{
    validate, validate_steps, validate_trigger, Branch, ConditionConfig, DelayConfig, Invalid, Method,
    Operator, StepConfig, StepType, TransformConfig, Trigger, WebhookConfig,
};
use serde_json::{json, Value};

/// One webhook step with this config, as a steps array.
fn hook(config: Value) -> Value {
    json!([{"id": "notify", "type": "webhook", "config": config}])
}

fn one(id: &str, ty: &str, config: Value) -> Value {
    json!([{"id": id, "type": ty, "config": config}])
}

fn step_err(steps: Value) -> Invalid {
    match validate(None, Some(&steps)) {
        Ok(def) => panic!("accepted {steps}: {def:?}"),
        Err(e) => e,
    }
}

fn trigger_err(trigger: Value) -> Invalid {
    match validate(Some(&trigger), None) {
        Ok(def) => panic!("accepted {trigger}: {def:?}"),
        Err(e) => e,
    }
}

/// (steps, message, step, field)
fn step_cases() -> Vec<(Value, &'static str, Option<&'static str>, &'static str)> {
    let big: Vec<Value> = (0..51)
        .map(|i| json!({"id": format!("s{i}"), "type": "delay", "config": {"seconds": 1}}))
        .collect();
    vec![
        // --- the steps array and step objects
        (json!({"id": "a"}), "steps must be an array", None, "steps"),
        (
            Value::Array(big),
            "steps has 51 entries; at most 50 are allowed",
            None,
            "steps",
        ),
        (
            json!(["webhook"]),
            "steps[0] must be an object with id, type and config",
            None,
            "steps[0]",
        ),
        (
            json!([{"type": "delay"}]),
            "steps[0]: id is required",
            None,
            "steps[0].id",
        ),
        (
            json!([{"id": 7, "type": "delay"}]),
            "steps[0]: id must be a string",
            None,
            "steps[0].id",
        ),
        (
            json!([{"id": "bad id", "type": "delay"}]),
            r#"steps[0]: id "bad id" must be 1 to 64 letters, digits, "_" or "-""#,
            None,
            "steps[0].id",
        ),
        (
            json!([{"id": "a".repeat(65), "type": "delay"}]),
            r#"steps[0]: id "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" must be 1 to 64 letters, digits, "_" or "-""#,
            None,
            "steps[0].id",
        ),
        (
            json!([{"id": "a", "type": "delay", "config": {"seconds": 1}},
                   {"id": "a", "type": "delay", "config": {"seconds": 1}}]),
            r#"steps[1]: id "a" is already used by an earlier step; step ids must be unique"#,
            None,
            "steps[1].id",
        ),
        (
            json!([{"id": "x"}]),
            r#"step "x": type is required"#,
            Some("x"),
            "type",
        ),
        (
            json!([{"id": "x", "type": 1}]),
            r#"step "x": type must be a string"#,
            Some("x"),
            "type",
        ),
        (
            one("x", "email_lookup", json!({})),
            r#"step "x": type "email_lookup" is not supported; supported types: webhook, condition, delay, transform"#,
            Some("x"),
            "type",
        ),
        (
            one("x", "phone_lookup", json!({})),
            r#"step "x": type "phone_lookup" is not supported; supported types: webhook, condition, delay, transform"#,
            Some("x"),
            "type",
        ),
        (
            json!([{"id": "x", "type": "delay", "config": {"seconds": 1}, "configs": {}}]),
            r#"step "x": unknown key "configs"; a step has id, type and config"#,
            Some("x"),
            "configs",
        ),
        (
            json!([{"id": "x", "type": "delay", "config": [1]}]),
            r#"step "x": config must be an object"#,
            Some("x"),
            "config",
        ),
        (
            json!([{"id": "x", "type": "webhook"}]),
            r#"step "x": config.url is required"#,
            Some("x"),
            "config.url",
        ),
        // --- unknown config keys
        (
            hook(json!({"url": "https://example.com", "metod": "GET"})),
            r#"step "notify": config has unknown key "metod"; webhook config keys are url, method, headers, body, timeout_ms, retries"#,
            Some("notify"),
            "config.metod",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "eq", "value": 1, "otherwise": "end"}),
            ),
            r#"step "c": config has unknown key "otherwise"; condition config keys are field, operator, value, then, else"#,
            Some("c"),
            "config.otherwise",
        ),
        (
            one("t", "transform", json!({"output": 1, "ouput": 2})),
            r#"step "t": config has unknown key "ouput"; transform config keys are output"#,
            Some("t"),
            "config.ouput",
        ),
        // --- webhook fields
        (
            hook(json!({"url": 5})),
            r#"step "notify": config.url must be a string"#,
            Some("notify"),
            "config.url",
        ),
        (
            hook(json!({"url": "ftp://example.com/x"})),
            r#"step "notify": config.url must be an absolute http:// or https:// URL with a host, got "ftp://example.com/x""#,
            Some("notify"),
            "config.url",
        ),
        (
            hook(json!({"url": "https:///x"})),
            r#"step "notify": config.url must be an absolute http:// or https:// URL with a host, got "https:///x""#,
            Some("notify"),
            "config.url",
        ),
        (
            hook(json!({"url": "example.com/hook"})),
            r#"step "notify": config.url must be an absolute http:// or https:// URL with a host, got "example.com/hook""#,
            Some("notify"),
            "config.url",
        ),
        (
            hook(json!({"url": "ftp://{{input.host}}/x"})),
            r#"step "notify": config.url must start with http://, https:// or a template tag, got "ftp://{{input.host}}/x""#,
            Some("notify"),
            "config.url",
        ),
        (
            hook(json!({"url": "https://example.com", "method": "FETCH"})),
            r#"step "notify": config.method must be one of GET, POST, PUT, PATCH, DELETE"#,
            Some("notify"),
            "config.method",
        ),
        (
            hook(json!({"url": "https://example.com", "method": 1})),
            r#"step "notify": config.method must be one of GET, POST, PUT, PATCH, DELETE"#,
            Some("notify"),
            "config.method",
        ),
        (
            hook(json!({"url": "https://example.com", "headers": ["a"]})),
            r#"step "notify": config.headers must be an object of strings"#,
            Some("notify"),
            "config.headers",
        ),
        (
            hook(json!({"url": "https://example.com", "headers": {"Bad Name": "x"}})),
            r#"step "notify": config.headers has an invalid header name "Bad Name"; use letters, digits and !#$%&'*+-.^_`|~"#,
            Some("notify"),
            "config.headers.Bad Name",
        ),
        (
            hook(json!({"url": "https://example.com", "headers": {"X-Count": 3}})),
            r#"step "notify": config.headers.X-Count must be a string"#,
            Some("notify"),
            "config.headers.X-Count",
        ),
        (
            hook(json!({"url": "https://example.com", "headers": {"X-A": "a\r\nInjected: 1"}})),
            r#"step "notify": config.headers.X-A must not contain control characters"#,
            Some("notify"),
            "config.headers.X-A",
        ),
        (
            hook(json!({"url": "https://example.com", "headers": {"X-Key": "a", "x-key": "b"}})),
            r#"step "notify": config.headers has both "X-Key" and "x-key"; header names are case-insensitive"#,
            Some("notify"),
            "config.headers.x-key",
        ),
        (
            hook(json!({"url": "https://example.com", "timeout_ms": 0})),
            r#"step "notify": config.timeout_ms must be an integer from 1 to 60000"#,
            Some("notify"),
            "config.timeout_ms",
        ),
        (
            hook(json!({"url": "https://example.com", "timeout_ms": 60001})),
            r#"step "notify": config.timeout_ms must be an integer from 1 to 60000"#,
            Some("notify"),
            "config.timeout_ms",
        ),
        (
            hook(json!({"url": "https://example.com", "timeout_ms": "5000"})),
            r#"step "notify": config.timeout_ms must be an integer from 1 to 60000"#,
            Some("notify"),
            "config.timeout_ms",
        ),
        (
            hook(json!({"url": "https://example.com", "timeout_ms": 1.5})),
            r#"step "notify": config.timeout_ms must be an integer from 1 to 60000"#,
            Some("notify"),
            "config.timeout_ms",
        ),
        (
            hook(json!({"url": "https://example.com", "retries": 11})),
            r#"step "notify": config.retries must be an integer from 0 to 10"#,
            Some("notify"),
            "config.retries",
        ),
        (
            hook(json!({"url": "https://example.com", "retries": -1})),
            r#"step "notify": config.retries must be an integer from 0 to 10"#,
            Some("notify"),
            "config.retries",
        ),
        // --- templates: syntax, with location and byte offset
        (
            hook(
                json!({"url": "https://example.com", "headers": {"Authorization": "Bearer {{secret.TOKEN}}"}}),
            ),
            r#"step "notify": config.headers.Authorization has an invalid template at byte 9: unknown root `secret`: expected one of input, steps, secrets, run, workflow"#,
            Some("notify"),
            "config.headers.Authorization",
        ),
        (
            hook(json!({"url": "https://example.com", "body": {"items": [1, "x {{input.a"]}})),
            r#"step "notify": config.body.items.1 has an invalid template at byte 2: unterminated `{{`: no `}}` after it (a literal `{{` cannot be written)"#,
            Some("notify"),
            "config.body.items.1",
        ),
        (
            hook(json!({"url": "{{}}"})),
            r#"step "notify": config.url has an invalid template at byte 0: empty tag: expected e.g. `{{input.field}}`"#,
            Some("notify"),
            "config.url",
        ),
        // --- secrets only in webhook steps
        (
            one(
                "shape",
                "transform",
                json!({"output": {"token": "x {{secrets.API_KEY}}"}}),
            ),
            r#"step "shape": config.output.token uses {{secrets.API_KEY}} (byte 2); secrets may only be used in webhook steps"#,
            Some("shape"),
            "config.output.token",
        ),
        (
            one(
                "check",
                "condition",
                json!({"field": "{{secrets.FLAG}}", "operator": "exists"}),
            ),
            r#"step "check": config.field uses {{secrets.FLAG}} (byte 0); secrets may only be used in webhook steps"#,
            Some("check"),
            "config.field",
        ),
        (
            one(
                "check",
                "condition",
                json!({"field": "{{input.a}}", "operator": "eq", "value": "{{secrets.B}}"}),
            ),
            r#"step "check": config.value uses {{secrets.B}} (byte 0); secrets may only be used in webhook steps"#,
            Some("check"),
            "config.value",
        ),
        // --- step output references
        (
            json!([
                {"id": "a", "type": "webhook", "config": {"url": "https://example.com", "body": "{{steps.b.output}}"}},
                {"id": "b", "type": "delay", "config": {"seconds": 5}}
            ]),
            r#"step "a": config.body refers to {{steps.b.output}}, but step "b" comes after step "a"; a step may only use the output of earlier steps"#,
            Some("a"),
            "config.body",
        ),
        (
            one("a", "transform", json!({"output": {"x": "{{steps.a.output.y}}"}})),
            r#"step "a": config.output.x refers to {{steps.a.output.y}}, but that is this step itself; a step may only use the output of earlier steps"#,
            Some("a"),
            "config.output.x",
        ),
        (
            one("a", "transform", json!({"output": "{{steps.ghost.output}}"})),
            r#"step "a": config.output refers to {{steps.ghost.output}}, but there is no step "ghost"; a step may only use the output of earlier steps"#,
            Some("a"),
            "config.output",
        ),
        // --- condition
        (
            one("c", "condition", json!({"operator": "exists"})),
            r#"step "c": config.field is required"#,
            Some("c"),
            "config.field",
        ),
        (
            one("c", "condition", json!({"field": 3, "operator": "exists"})),
            r#"step "c": config.field must be a string (a template such as "{{input.status}}")"#,
            Some("c"),
            "config.field",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "input.status", "operator": "exists"}),
            ),
            r#"step "c": config.field "input.status" has no template tag; write e.g. "{{input.status}}""#,
            Some("c"),
            "config.field",
        ),
        (
            one("c", "condition", json!({"field": "{{input.a}}"})),
            r#"step "c": config.operator is required"#,
            Some("c"),
            "config.operator",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "equals", "value": 1}),
            ),
            r#"step "c": config.operator must be one of eq, ne, gt, gte, lt, lte, contains, exists, not_exists, matches"#,
            Some("c"),
            "config.operator",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "eq"}),
            ),
            r#"step "c": config.value is required for operator eq"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "exists", "value": true}),
            ),
            r#"step "c": config.value must be omitted for operator exists"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "gt", "value": [1]}),
            ),
            r#"step "c": config.value must be a number or a string for operator gt"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "matches", "value": 5}),
            ),
            r#"step "c": config.value must be a string (a regular expression) for operator matches"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "matches", "value": "(abc"}),
            ),
            r#"step "c": config.value is not a valid regular expression: unclosed group"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "matches", "value": "a".repeat(1001)}),
            ),
            r#"step "c": config.value is 1001 bytes; a regular expression may be at most 1000"#,
            Some("c"),
            "config.value",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "matches", "value": "a{1000}{1000}"}),
            ),
            r#"step "c": config.value is not a valid regular expression: Compiled regex exceeds size limit of 1048576 bytes."#,
            Some("c"),
            "config.value",
        ),
        (
            json!([
                {"id": "first", "type": "delay", "config": {"seconds": 1}},
                {"id": "c", "type": "condition", "config": {"field": "{{input.a}}", "operator": "exists", "then": "first"}}
            ]),
            r#"step "c": config.then names step "first", which does not come after step "c"; branches may only jump forward"#,
            Some("c"),
            "config.then",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "exists", "then": "c"}),
            ),
            r#"step "c": config.then names step "c", which does not come after step "c"; branches may only jump forward"#,
            Some("c"),
            "config.then",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "exists", "else": "nowhere"}),
            ),
            r#"step "c": config.else names step "nowhere", which does not exist"#,
            Some("c"),
            "config.else",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "exists", "else": false}),
            ),
            r#"step "c": config.else must be a step id or "end""#,
            Some("c"),
            "config.else",
        ),
        (
            one(
                "c",
                "condition",
                json!({"field": "{{input.a}}", "operator": "exists", "then": 2}),
            ),
            r#"step "c": config.then must be a step id"#,
            Some("c"),
            "config.then",
        ),
        // --- delay
        (
            one("wait", "delay", json!({})),
            r#"step "wait": config.seconds or config.duration is required"#,
            Some("wait"),
            "config.seconds",
        ),
        (
            one("wait", "delay", json!({"seconds": 5, "duration": "5s"})),
            r#"step "wait": config takes either seconds or duration, not both"#,
            Some("wait"),
            "config",
        ),
        (
            one("wait", "delay", json!({"seconds": 0})),
            r#"step "wait": config.seconds must be an integer from 1 to 604800"#,
            Some("wait"),
            "config.seconds",
        ),
        (
            one("wait", "delay", json!({"seconds": 604801})),
            r#"step "wait": config.seconds must be an integer from 1 to 604800"#,
            Some("wait"),
            "config.seconds",
        ),
        (
            one("wait", "delay", json!({"seconds": "60"})),
            r#"step "wait": config.seconds must be an integer from 1 to 604800"#,
            Some("wait"),
            "config.seconds",
        ),
        (
            one("wait", "delay", json!({"duration": "8d"})),
            r#"step "wait": config.duration "8d" must be from 1 second to 7 days (604800 seconds)"#,
            Some("wait"),
            "config.duration",
        ),
        (
            one("wait", "delay", json!({"duration": "5x"})),
            r#"step "wait": config.duration "5x" must be a whole number followed by s, m, h or d (e.g. "90s", "5m", "2h", "1d")"#,
            Some("wait"),
            "config.duration",
        ),
        (
            one("wait", "delay", json!({"duration": 90})),
            r#"step "wait": config.duration must be a string such as "90s", "5m", "2h" or "1d""#,
            Some("wait"),
            "config.duration",
        ),
        // --- transform
        (
            one("t", "transform", json!({})),
            r#"step "t": config.output is required"#,
            Some("t"),
            "config.output",
        ),
    ]
}

#[test]
fn invalid_steps_matrix() {
    let cases = step_cases();
    assert!(cases.len() >= 30);
    for (steps, message, step, field) in cases {
        let err = step_err(steps.clone());
        assert_eq!(err.message, message, "for {steps}");
        assert_eq!(err.to_string(), message);
        assert_eq!(err.step.as_deref(), step, "step for {steps}");
        assert_eq!(err.field.as_deref(), Some(field), "field for {steps}");
        // validate_steps alone reports the same.
        assert_eq!(validate_steps(Some(&steps)).err(), Some(err));
    }
}

#[test]
fn invalid_trigger_matrix() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!("manual"), "trigger must be an object", "trigger"),
        (json!({"config": {}}), "trigger.type is required", "trigger.type"),
        (
            json!({"type": 1}),
            "trigger.type must be a string",
            "trigger.type",
        ),
        (
            json!({"type": "cron"}),
            r#"trigger.type "cron" is not supported; supported types: manual, webhook, schedule"#,
            "trigger.type",
        ),
        (
            json!({"type": "manual", "confg": {}}),
            r#"trigger has unknown key "confg"; a trigger has type and config"#,
            "trigger.confg",
        ),
        (
            json!({"type": "manual", "config": []}),
            "trigger.config must be an object",
            "trigger.config",
        ),
        (
            json!({"type": "manual", "config": {"cron": "* * * * *"}}),
            r#"trigger.config has unknown key "cron"; manual triggers take no config"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "webhook", "config": {"secret": "X"}}),
            r#"trigger.config has unknown key "secret"; webhook trigger config keys are signed"#,
            "trigger.config.secret",
        ),
        (
            json!({"type": "webhook", "config": {"signing_secret": "HOOK_KEY"}}),
            "trigger.config.signing_secret is not accepted: the server generates each workflow's \
             signing key; set trigger.config.signed to true and read webhook_signing_key from the \
             create, update or rotate response",
            "trigger.config.signing_secret",
        ),
        (
            json!({"type": "webhook", "config": {"signed": "yes"}}),
            "trigger.config.signed must be true or false",
            "trigger.config.signed",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "* * * * *", "tz": "UTC"}}),
            r#"trigger.config has unknown key "tz"; schedule trigger config keys are cron, timezone"#,
            "trigger.config.tz",
        ),
        (
            json!({"type": "schedule", "config": {}}),
            "trigger.config.cron is required",
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule"}),
            "trigger.config.cron is required",
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": 5}}),
            "trigger.config.cron must be a string",
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "*/5 * *"}}),
            r#"trigger.config.cron "*/5 * *" is not a valid 5-field cron expression: it has 3 fields; expected 5 (minute hour day-of-month month day-of-week)"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "0 */5 * * * *"}}),
            r#"trigger.config.cron "0 */5 * * * *" is not a valid 5-field cron expression: it has 6 fields; expected 5 (minute hour day-of-month month day-of-week)"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "   "}}),
            r#"trigger.config.cron "" is not a valid 5-field cron expression: it is empty"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "0 24 * * *"}}),
            r#"trigger.config.cron "0 24 * * *" is not a valid 5-field cron expression: hour field "24": Component error: Number out of bounds."#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "0 0 * * 1#9"}}),
            r##"trigger.config.cron "0 0 * * 1#9" is not a valid 5-field cron expression: day-of-week field "1#9": Component error: Nth specifier out of bounds."##,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "@reboot"}}),
            r#"trigger.config.cron "@reboot" is not a valid 5-field cron expression: unknown nickname; use one of @yearly, @annually, @monthly, @weekly, @daily, @hourly"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "0 0 30 2 *"}}),
            r#"trigger.config.cron "0 0 30 2 *" never fires"#,
            "trigger.config.cron",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}}),
            r#"trigger.config.timezone "Mars/Olympus" is not a known IANA time zone name (e.g. "Europe/Berlin", "UTC")"#,
            "trigger.config.timezone",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "europe/berlin"}}),
            r#"trigger.config.timezone "europe/berlin" is not a known IANA time zone name (e.g. "Europe/Berlin", "UTC")"#,
            "trigger.config.timezone",
        ),
        (
            json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": 1}}),
            "trigger.config.timezone must be a string",
            "trigger.config.timezone",
        ),
    ];
    for (trigger, message, field) in cases {
        let err = trigger_err(trigger.clone());
        assert_eq!(err.message, message, "for {trigger}");
        assert_eq!(err.step, None);
        assert_eq!(err.field.as_deref(), Some(field), "field for {trigger}");
        assert_eq!(validate_trigger(Some(&trigger)).err(), Some(err));
    }
}

#[test]
fn first_problem_in_document_order() {
    // The trigger comes before the steps.
    let err = validate(Some(&json!({"type": "nope"})), Some(&json!([{"id": "bad id"}]))).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("trigger.type"));
    // An earlier step's problem wins over a later step's.
    let err = step_err(json!([
        {"id": "a", "type": "webhook", "config": {"url": "https://example.com", "retries": 99}},
        {"id": "b", "type": "email_lookup"}
    ]));
    assert_eq!(err.step.as_deref(), Some("a"));
    // Within a config: unknown keys, then templates, then fields, then references.
    let err = step_err(hook(json!({"method": "FETCH", "nope": 1})));
    assert_eq!(err.field.as_deref(), Some("config.nope"));
    let err = step_err(hook(json!({"method": "FETCH", "url": "{{bad}}"})));
    assert_eq!(err.field.as_deref(), Some("config.url"));
    assert!(
        err.message.contains("invalid template at byte 2"),
        "{}",
        err.message
    );
    let err = step_err(one(
        "t",
        "transform",
        json!({"output": ["{{steps.z.output}}", "{{secrets.S}}"]}),
    ));
    assert_eq!(err.field.as_deref(), Some("config.output.0"));
}

#[test]
fn details_object() {
    let err = step_err(hook(json!({"url": "https://example.com", "method": "FETCH"})));
    assert_eq!(err.details(), json!({"step": "notify", "field": "config.method"}));
    let err = trigger_err(json!({"type": "cron"}));
    assert_eq!(err.details(), json!({"step": null, "field": "trigger.type"}));
}

#[test]
fn webhook_defaults_and_full_config() {
    let def = validate(None, Some(&hook(json!({"url": "https://hooks.example.com/x"})))).expect("valid");
    assert_eq!(def.trigger, Trigger::Manual);
    let step = &def.steps[0];
    assert_eq!((step.id.as_str(), step.step_type), ("notify", StepType::Webhook));
    assert_eq!(
        step.config,
        StepConfig::Webhook(WebhookConfig {
            url: "https://hooks.example.com/x".into(),
            method: Method::Post,
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: 10_000,
            retries: 3,
        })
    );

    let config = json!({
        "url": "https://api.example.com/v1/{{input.path}}?run={{run.id}}",
        "method": "put",
        "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}", "X-Id": "{{workflow.id}}"},
        "body": {"a": ["{{input}}", 1, null]},
        "timeout_ms": 60000,
        "retries": 0
    });
    let def = validate(None, Some(&hook(config.clone()))).expect("valid");
    let StepConfig::Webhook(w) = &def.steps[0].config else {
        panic!("webhook config expected")
    };
    assert_eq!(w.method, Method::Put);
    assert_eq!(w.headers["Authorization"], "Bearer {{secrets.API_TOKEN}}");
    assert_eq!(w.body, Some(json!({"a": ["{{input}}", 1, null]})));
    assert_eq!((w.timeout_ms, w.retries), (60_000, 0));
    // Stored as sent.
    assert_eq!(def.steps[0].raw_config, config);
    assert_eq!(
        def.steps[0]
            .template
            .secret_names()
            .into_iter()
            .collect::<Vec<_>>(),
        ["API_TOKEN"]
    );
    // The normalised form.
    assert_eq!(
        serde_json::to_value(&def.steps[0].config).expect("serialise"),
        json!({
            "url": "https://api.example.com/v1/{{input.path}}?run={{run.id}}",
            "method": "PUT",
            "headers": {"Authorization": "Bearer {{secrets.API_TOKEN}}", "X-Id": "{{workflow.id}}"},
            "body": {"a": ["{{input}}", 1, null]},
            "timeout_ms": 60000,
            "retries": 10 - 10
        })
    );
    // Optional fields sent as null count as omitted.
    let def = validate(
        None,
        Some(&hook(
            json!({"url": "{{secrets.URL}}", "method": null, "timeout_ms": null, "headers": null}),
        )),
    )
    .expect("valid");
    let StepConfig::Webhook(w) = &def.steps[0].config else {
        panic!("webhook config expected")
    };
    assert_eq!(
        (w.method, w.timeout_ms, w.headers.len()),
        (Method::Post, 10_000, 0)
    );
}

#[test]
fn condition_configs() {
    let steps = json!([
        {"id": "check", "type": "condition", "config": {"field": "{{ input.status }}", "operator": "eq", "value": "paid"}},
        {"id": "a", "type": "condition", "config": {
            "field": "{{input.email}}", "operator": "matches", "value": "^[^@]+@example\\.com$",
            "then": "c", "else": "b"}},
        {"id": "b", "type": "condition", "config": {"field": "{{steps.check.output.result}}", "operator": "not_exists", "value": null}},
        {"id": "c", "type": "condition", "config": {"field": "n={{input.n}}", "operator": "gte", "value": 3, "else": "end"}},
        {"id": "d", "type": "condition", "config": {"field": "{{input.x}}", "operator": "matches", "value": "{{input.pattern}}("}},
        {"id": "e", "type": "condition", "config": {"field": "{{input.x}}", "operator": "eq", "value": null}}
    ]);
    let def = validate(None, Some(&steps)).expect("valid");
    let configs: Vec<&ConditionConfig> = def
        .steps
        .iter()
        .map(|s| match &s.config {
            StepConfig::Condition(c) => c,
            other => panic!("condition expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        *configs[0],
        ConditionConfig {
            field: "{{ input.status }}".into(),
            operator: Operator::Eq,
            value: Some(json!("paid")),
            then: None,
            else_: Branch::End,
        }
    );
    assert_eq!(configs[1].then.as_deref(), Some("c"));
    assert_eq!(configs[1].else_, Branch::Step("b".into()));
    assert_eq!(
        (configs[2].operator, &configs[2].value),
        (Operator::NotExists, &None)
    );
    assert_eq!(configs[3].else_, Branch::End);
    // A pattern with tags is compiled per run, not at save time.
    assert_eq!(configs[4].value, Some(json!("{{input.pattern}}(")));
    // `null` is a value to compare with.
    assert_eq!(configs[5].value, Some(Value::Null));
    assert_eq!(
        serde_json::to_value(configs[1]).expect("serialise"),
        json!({"field": "{{input.email}}", "operator": "matches", "value": "^[^@]+@example\\.com$", "then": "c", "else": "b"})
    );
}

#[test]
fn delay_and_transform_configs() {
    let steps = json!([
        {"id": "s", "type": "delay", "config": {"seconds": 604800}},
        {"id": "d", "type": "delay", "config": {"duration": "90s"}},
        {"id": "m", "type": "delay", "config": {"duration": "5m", "seconds": null}},
        {"id": "t", "type": "transform", "config": {"output": {"who": "{{input.name}}", "prev": "{{steps.s.output}}", "n": 1}}},
        {"id": "n", "type": "transform", "config": {"output": null}}
    ]);
    let def = validate(None, Some(&steps)).expect("valid");
    let got: Vec<StepConfig> = def.steps.iter().map(|s| s.config.clone()).collect();
    assert_eq!(
        got,
        vec![
            StepConfig::Delay(DelayConfig { seconds: 604_800 }),
            StepConfig::Delay(DelayConfig { seconds: 90 }),
            StepConfig::Delay(DelayConfig { seconds: 300 }),
            StepConfig::Transform(TransformConfig {
                output: json!({"who": "{{input.name}}", "prev": "{{steps.s.output}}", "n": 1})
            }),
            StepConfig::Transform(TransformConfig { output: Value::Null }),
        ]
    );
    assert_eq!(def.steps[2].config.step_type(), StepType::Delay);
}

#[test]
fn triggers_round_trip_to_canonical_json() {
    let cases = [
        (None, Trigger::Manual, json!({"type": "manual", "config": {}})),
        (
            Some(Value::Null),
            Trigger::Manual,
            json!({"type": "manual", "config": {}}),
        ),
        (
            Some(json!({"type": "manual"})),
            Trigger::Manual,
            json!({"type": "manual", "config": {}}),
        ),
        (
            Some(json!({"type": "webhook", "config": {}})),
            Trigger::Webhook { signed: false },
            json!({"type": "webhook", "config": {}}),
        ),
        (
            Some(json!({"type": "webhook", "config": {"signed": false}})),
            Trigger::Webhook { signed: false },
            json!({"type": "webhook", "config": {}}),
        ),
        (
            Some(json!({"type": "webhook", "config": {"signed": true}})),
            Trigger::Webhook { signed: true },
            json!({"type": "webhook", "config": {"signed": true}}),
        ),
        (
            Some(json!({"type": "schedule", "config": {"cron": " */5 * * * * "}})),
            Trigger::Schedule {
                cron: "*/5 * * * *".into(),
                timezone: "UTC".into(),
            },
            json!({"type": "schedule", "config": {"cron": "*/5 * * * *", "timezone": "UTC"}}),
        ),
        (
            Some(
                json!({"type": "schedule", "config": {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}}),
            ),
            Trigger::Schedule {
                cron: "0 9 * * MON-FRI".into(),
                timezone: "Europe/Berlin".into(),
            },
            json!({"type": "schedule", "config": {"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}}),
        ),
        (
            Some(json!({"type": "schedule", "config": {"cron": "@daily", "timezone": "America/New_York"}})),
            Trigger::Schedule {
                cron: "@daily".into(),
                timezone: "America/New_York".into(),
            },
            json!({"type": "schedule", "config": {"cron": "@daily", "timezone": "America/New_York"}}),
        ),
    ];
    for (input, trigger, canonical) in cases {
        let got = validate_trigger(input.as_ref()).expect("valid");
        assert_eq!(got, trigger, "{input:?}");
        assert_eq!(got.to_json(), canonical);
        assert_eq!(serde_json::to_value(&got).expect("serialise"), canonical);
        assert_eq!(got.kind(), canonical["type"]);
        // Canonical JSON validates to the same trigger.
        assert_eq!(validate_trigger(Some(&canonical)), Ok(got));
    }
}

#[test]
fn definition_serialises_in_the_api_shape() {
    let steps = json!([
        {"id": "wait", "type": "delay", "config": {"duration": "2h"}},
        {"id": "call", "type": "webhook", "config": {"url": "{{secrets.URL}}", "body": "{{steps.wait.output}}"}}
    ]);
    let trigger = json!({"type": "webhook", "config": {}});
    let def = validate(Some(&trigger), Some(&steps)).expect("valid");
    let expected = json!({"trigger": trigger, "steps": steps});
    assert_eq!(serde_json::to_value(&def).expect("serialise"), expected);
    assert_eq!(def.to_json(), expected);
    assert_eq!(def.step("call").map(|s| s.step_type), Some(StepType::Webhook));
    // Re-validating the stored form gives the same definition.
    assert_eq!(
        validate(Some(&expected["trigger"]), Some(&expected["steps"])),
        Ok(def)
    );
}

#[test]
fn empty_and_absent_steps_are_allowed() {
    assert_eq!(validate_steps(None), Ok(vec![]));
    assert_eq!(validate_steps(Some(&json!([]))), Ok(vec![]));
    let fifty: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("s{i}"), "type": "delay", "config": {"seconds": 1}}))
        .collect();
    assert_eq!(
        validate_steps(Some(&Value::Array(fifty))).map(|s| s.len()),
        Ok(50)
    );
}
