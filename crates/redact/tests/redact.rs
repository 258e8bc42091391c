//! Behaviour of `Redactor` through its public API: each encoding, in text and
//! in JSON, and the edge cases the brief lists.

mod common;

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{assert_no_trace, encodings, json, json_ascii};
use sealflow_redact::{Redactor, MARKER, MIN_EMBEDDED_BASE64_LEN, MIN_FREE_TEXT_LEN};
use serde_json::{json, Value};

/// Quotes, backslash, space, slash, plus, tilde, `@` and a non-ASCII letter:
/// every encoding differs from the raw value.
const SECRET: &str = "p@ss w0rd/\"q\\é+~";

fn with_values(values: &[&str]) -> Redactor {
    let mut redactor = Redactor::new();
    for value in values {
        redactor.add(value);
    }
    redactor
}

#[test]
fn every_encoding_is_masked_in_free_text() {
    let redactor = with_values(&[SECRET]);
    for (label, encoded) in encodings(SECRET) {
        let out = redactor
            .redact_str(&format!("before: {encoded} :after"))
            .into_owned();
        assert_eq!(out, format!("before: {MARKER} :after"), "{label}");
        assert_no_trace(&out, SECRET);
    }
}

#[test]
fn every_encoding_is_masked_in_json_strings_and_keys() {
    let redactor = with_values(&[SECRET]);
    for (label, encoded) in encodings(SECRET) {
        let mut doc = json!({
            "list": [1, "plain", {"deep": [format!("echo={encoded};")]}],
            "nested": {"inner": encoded.clone(), "flag": true},
            format!("key-{encoded}"): {"kept": "value"},
        });
        assert!(redactor.redact_json(&mut doc), "{label}");
        assert_eq!(doc["list"][2]["deep"][0], format!("echo={MARKER};"), "{label}");
        assert_eq!(doc["nested"]["inner"], MARKER, "{label}");
        assert_eq!(doc[format!("key-{MARKER}")]["kept"], "value", "{label}");
        assert_eq!(doc["list"][1], "plain", "{label}");
        assert_no_trace(&doc.to_string(), SECRET);
    }
}

#[test]
fn json_without_secrets_is_unchanged() {
    let redactor = with_values(&[SECRET]);
    let mut doc = json!({"a": ["b", 1, null, {"c": "d"}]});
    let before = doc.clone();
    assert!(!redactor.redact_json(&mut doc));
    assert_eq!(doc, before);
}

#[test]
fn colliding_masked_keys_keep_every_entry() {
    let redactor = with_values(&["token-one", "token-two"]);
    let mut doc = json!({"token-one": 1, "token-two": 2, MARKER: 3});
    assert!(redactor.redact_json(&mut doc));
    let map = doc.as_object().expect("still an object");
    assert_eq!(map.len(), 3);
    assert_eq!(doc[MARKER], 3, "an unmasked key is never displaced");
    let mut moved: Vec<i64> = [format!("{MARKER}#2"), format!("{MARKER}#3")]
        .iter()
        .map(|k| doc[k].as_i64().expect("kept"))
        .collect();
    moved.sort_unstable();
    assert_eq!(moved, [1, 2]);
}

#[test]
fn values_shorter_than_the_minimum_are_not_masked() {
    assert_eq!(MIN_FREE_TEXT_LEN, 4);
    let redactor = with_values(&["", "1", "yes", "é1"]);
    assert!(redactor.is_empty());
    assert_eq!(redactor.value_count(), 0);
    let text = "1 yes é1 eWVz";
    assert!(matches!(redactor.redact_str(text), Cow::Borrowed(t) if t == text));
    let mut doc = json!({"yes": "1"});
    assert!(!redactor.redact_json(&mut doc));

    let four = redactor_with_four_bytes();
    assert_eq!(four.redact_str("a abcd b"), format!("a {MARKER} b"));
}

fn redactor_with_four_bytes() -> Redactor {
    with_values(&["abcd"])
}

#[test]
fn a_secret_containing_another_is_masked_whole() {
    for values in [["hunter22", "my-hunter22-key"], ["my-hunter22-key", "hunter22"]] {
        let redactor = with_values(&values);
        let out = redactor.redact_str("a my-hunter22-key b hunter22 c");
        assert_eq!(out, format!("a {MARKER} b {MARKER} c"), "{values:?}");
    }
}

#[test]
fn encoded_form_containing_the_raw_form_is_masked_whole() {
    // Percent-encoding leaves the raw "abcd" inside "abcd%20efgh".
    let redactor = with_values(&["abcd efgh", "abcd"]);
    assert_eq!(redactor.redact_str("x=abcd%20efgh&y"), format!("x={MARKER}&y"));
}

#[test]
fn overlapping_and_adjacent_occurrences_leave_nothing_visible() {
    let redactor = with_values(&["abab"]);
    assert_eq!(redactor.redact_str("x ababab y"), format!("x {MARKER} y"));
    assert_eq!(redactor.redact_str("abababab"), MARKER);

    let redactor = redactor_with_four_bytes();
    assert_eq!(
        redactor.redact_str("abcdabcd"),
        MARKER,
        "adjacent occurrences share one marker"
    );

    let two = with_values(&["1234abcd", "abcd5678"]);
    assert_eq!(two.redact_str("<1234abcd5678>"), format!("<{MARKER}>"));
}

#[test]
fn secrets_at_the_start_and_end_are_masked() {
    let redactor = with_values(&["s3cr3t-value"]);
    assert_eq!(redactor.redact_str("s3cr3t-value"), MARKER);
    assert_eq!(redactor.redact_str("s3cr3t-value tail"), format!("{MARKER} tail"));
    assert_eq!(redactor.redact_str("head s3cr3t-value"), format!("head {MARKER}"));
    assert_eq!(
        redactor.redact_str("s3cr3t-value mid s3cr3t-value"),
        format!("{MARKER} mid {MARKER}")
    );
}

#[test]
fn unicode_values_are_masked_in_every_form() {
    let secret = "пароль-🔑-秘密";
    let redactor = with_values(&[secret]);
    // .NET and Jackson write the same escapes in uppercase hex.
    let upper_ascii = json_ascii(secret)
        .replace("\\ud83d\\udd11", "\\uD83D\\uDD11")
        .to_uppercase()
        .replace("\\U", "\\u");
    let mut forms: Vec<String> = encodings(secret).into_iter().map(|(_, e)| e).collect();
    forms.push(upper_ascii);
    for encoded in forms {
        let out = redactor.redact_str(&format!("«{encoded}»")).into_owned();
        assert_eq!(out, format!("«{MARKER}»"), "{encoded}");
        assert_no_trace(&out, secret);
    }
}

#[test]
fn quotes_and_backslashes_echoed_inside_a_json_document() {
    let secret = r#"a"b\c'd</e>&f"#;
    let redactor = with_values(&[secret]);
    let echo = json!({"echo": secret}).to_string();
    assert_eq!(echo, format!(r#"{{"echo":"{}"}}"#, json(secret)));
    assert_eq!(redactor.redact_str(&echo), format!(r#"{{"echo":"{MARKER}"}}"#));

    // An echo service returning the request body as a JSON string (httpbin's "data").
    let twice = json!({"data": json!({"password": secret}).to_string()}).to_string();
    let out = redactor.redact_str(&twice);
    assert!(out.contains(MARKER));
    assert_no_trace(&out, secret);

    // Go's encoding/json escapes <, > and & as \u003c, \u003e, \u0026.
    let go = r#"a\"b\\c'd\u003c/e\u003e\u0026f"#;
    assert_eq!(redactor.redact_str(go), MARKER);
}

#[test]
fn basic_auth_password_is_masked_inside_the_header() {
    let password = "correct horse battery";
    assert!(password.len() >= MIN_EMBEDDED_BASE64_LEN);
    for user in ["a", "al", "ali", "alice"] {
        let redactor = with_values(&[password]);
        let credentials = STANDARD.encode(format!("{user}:{password}"));
        let out = redactor
            .redact_str(&format!("Authorization: Basic {credentials}"))
            .into_owned();
        // The user part (whole base64 characters before the password's bits) may stay.
        let visible_user_chars = (8 * (user.len() + 1)) / 6;
        assert_eq!(
            out,
            format!(
                "Authorization: Basic {}{MARKER}",
                &credentials[..visible_user_chars]
            ),
            "{user}"
        );
    }
}

#[test]
fn short_basic_auth_password_is_masked_through_the_pair() {
    let mut redactor = Redactor::new();
    redactor.add_basic_auth("bob", "pw12");
    let header = format!("Basic {}", STANDARD.encode("bob:pw12"));
    assert_eq!(redactor.redact_str(&header), format!("Basic {MARKER}"));
    assert_eq!(redactor.redact_str("password=pw12"), format!("password={MARKER}"));
}

#[test]
fn debug_shows_counts_only() {
    let redactor = with_values(&[SECRET, "another-s3cret-token"]);
    let debug = format!("{redactor:?}");
    assert_eq!(
        debug,
        format!("Redactor {{ values: 2, patterns: {} }}", redactor.pattern_count())
    );
    assert_no_trace(&debug, SECRET);
    assert_no_trace(&debug, "another-s3cret-token");
    assert!(format!("{redactor:#?}").contains("values: 2"));
}

#[test]
fn an_empty_redactor_changes_nothing() {
    let redactor = Redactor::new();
    assert!(redactor.is_empty());
    assert!(matches!(
        redactor.redact_str("anything"),
        Cow::Borrowed("anything")
    ));
    let mut doc = json!({"k": "v"});
    assert!(!redactor.redact_json(&mut doc));
}

#[test]
fn deeply_nested_json_does_not_overflow_the_stack() {
    let redactor = with_values(&["deep-secret"]);
    let mut doc = Value::String("deep-secret".into());
    for _ in 0..100_000 {
        doc = Value::Array(vec![doc]);
    }
    assert!(redactor.redact_json(&mut doc));
    let mut inner = &doc;
    while let Value::Array(items) = inner {
        inner = &items[0];
    }
    assert_eq!(inner, MARKER);
    // serde_json drops nested values recursively; unwind iteratively here.
    while let Value::Array(mut items) = doc {
        doc = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn redactor_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Redactor>();
    let redactor = with_values(&["thread-secret"]);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| assert_eq!(redactor.redact_str("x thread-secret"), format!("x {MARKER}")));
        }
    });
}

#[test]
fn hex_case_and_debug_forms_are_masked() {
    let redactor = with_values(&[SECRET]);
    for form in [
        common::hex_lower(SECRET),
        common::hex_lower(SECRET).to_uppercase(),
        SECRET.to_uppercase(),
        common::debug(SECRET),
        common::percent_mixed(SECRET),
    ] {
        assert_eq!(
            redactor.redact_str(&format!("[{form}]")),
            format!("[{MARKER}]"),
            "{form}"
        );
    }
}

#[test]
fn a_response_body_stays_json_with_secret_numbers_and_strings_masked() {
    let redactor = with_values(&["48213907", "s3cr3t-value"]);
    let body = r#"{"pin": 48213907, "n": 7, "echo": "s3cr3t-value", "list": [48213907, true]}"#;
    let value = redactor.redact_document(body).expect("JSON");
    assert_eq!(
        value,
        json!({"pin": MARKER, "n": 7, "echo": MARKER, "list": [MARKER, true]})
    );
    // Not JSON, or a match across the document's structure: masked text.
    assert_eq!(redactor.redact_document("48213907 and more"), None);
    let structural = with_values(&["a\",\"b"]);
    assert_eq!(structural.redact_document(r#"["a","b"]"#), None);
    assert_eq!(structural.redact_str(r#"["a","b"]"#), format!("[\"{MARKER}\"]"));
}

#[test]
fn a_capped_text_is_masked_before_it_is_cut() {
    let redactor = with_values(&["s3cr3t-value"]);
    let text = format!("{}s3cr3t-value tail", ".".repeat(20));
    // Cut inside the secret: it is masked whole first, and a cut that lands
    // in the marker keeps it whole (room for it is kept below the cap).
    let out = redactor.redact_capped(&text, true, 32);
    assert_eq!(out, format!("{}{MARKER}", ".".repeat(20)));
    assert_eq!(redactor.redact_capped(&text, true, 25), ".".repeat(15));
    // A reader that stopped inside the secret: its start is hidden too.
    let stopped = format!("{}s3cr3t-va", ".".repeat(20));
    assert_eq!(
        redactor.redact_capped(&stopped, false, 1000),
        format!("{}{MARKER}", ".".repeat(20))
    );
    // Under the cap nothing is cut.
    assert_eq!(redactor.redact_capped("short", true, 1000), "short");
}

#[test]
fn live_redactors_mask_with_every_run_in_flight_until_dropped() {
    use sealflow_redact::LiveRedactors;
    let live = LiveRedactors::new();
    let (first, second) = (live.slot(), live.slot());
    first.update(&with_values(&["first-secret"]));
    second.update(&with_values(&["second-secret", "first-secret-and-more"]));
    assert_eq!(live.active(), 2);
    let line = "connect first-secret-and-more; then second-secret";
    assert_eq!(live.redact(line), format!("connect {MARKER}; then {MARKER}"));
    drop(second);
    assert_eq!(
        live.redact(line),
        format!("connect {MARKER}-and-more; then second-secret")
    );
    drop(first);
    assert_eq!(live.active(), 0);
    assert!(matches!(live.redact(line), Cow::Borrowed(_)));
}
