//! Size limits of tag paths, and how much of a template an error message repeats.

use sealflow_template::{
    Context, ParseErrorKind, TemplateString, MAX_ECHO_CHARS, MAX_PATH_SEGMENTS, MAX_SEGMENT_BYTES,
};
use serde_json::json;

fn tag(path: &str) -> String {
    format!("{{{{{path}}}}}")
}

#[test]
fn paths_deeper_than_the_cap_are_refused_at_parse_time() {
    let ok = format!("input{}", ".a".repeat(MAX_PATH_SEGMENTS));
    TemplateString::parse(&tag(&ok)).expect("at the cap parses");
    let deep = format!("input{}", ".a".repeat(100_000));
    let err = TemplateString::parse(&tag(&deep)).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::PathTooDeep);
    assert!(err.to_string().len() < 300, "{err}");
    let steps = format!("steps.s.output{}", ".a".repeat(MAX_PATH_SEGMENTS + 1));
    let err = TemplateString::parse(&tag(&steps)).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::PathTooDeep);
}

#[test]
fn segments_longer_than_the_cap_are_refused_at_parse_time() {
    let ok = format!("input.{}", "k".repeat(MAX_SEGMENT_BYTES));
    TemplateString::parse(&tag(&ok)).expect("at the cap parses");
    let long = format!("input.{}", "k".repeat(MAX_SEGMENT_BYTES + 1));
    let err = TemplateString::parse(&tag(&long)).unwrap_err();
    assert_eq!(err.kind(), &ParseErrorKind::SegmentTooLong);
}

#[test]
fn error_messages_repeat_at_most_a_short_prefix_of_what_was_written() {
    let long = "x".repeat(100_000);
    for source in [
        tag(&long),                                  // unknown root
        tag(&format!("input.{long}!")),              // invalid segment (too long first)
        tag(&format!("input.a{}", "!".repeat(500))), // invalid segment
        tag(&format!("secrets.{}", "-".repeat(5000))),
        tag(&format!("run.{}", "y".repeat(5000))),
        tag(&format!("steps.{}", "z".repeat(5000))),
        tag(&format!("steps.s.{}", "z".repeat(5000))),
        tag(&format!("input.{}", "9".repeat(200))), // invalid index
    ] {
        let err = TemplateString::parse(&source).unwrap_err();
        let message = err.to_string();
        assert!(
            message.chars().count() < MAX_ECHO_CHARS + 200,
            "{} chars: {}…",
            message.len(),
            &message[..200]
        );
    }
}

#[test]
fn a_missing_path_is_named_but_cut_to_the_echo_cap() {
    let segment = "k".repeat(MAX_SEGMENT_BYTES);
    let path = format!("input{}", format!(".{segment}").repeat(MAX_PATH_SEGMENTS));
    let template = TemplateString::parse(&tag(&path)).unwrap();
    let err = template
        .render(&Context {
            input: json!({}),
            ..Context::default()
        })
        .unwrap_err();
    let message = err.error.to_string();
    assert!(message.starts_with("input.kkk"), "{message}");
    assert!(message.ends_with("… not found"), "{message}");
    assert!(
        message.chars().count() <= MAX_ECHO_CHARS + "… not found".len(),
        "{message}"
    );
    // A short one is named whole.
    let short = TemplateString::parse("{{input.user.email}}").unwrap();
    let err = short.render(&Context::default()).unwrap_err();
    assert_eq!(err.error.to_string(), "input.user.email not found");
}
