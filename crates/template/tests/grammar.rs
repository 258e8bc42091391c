//! Grammar tests: every root, whitespace, indexes, and each malformed case
//! with the byte offset it is reported at.

use sealflow_template::{ParseErrorKind, Part, Segment, Tag, Template, TemplateString};
use serde_json::json;

fn tag(source: &str) -> Tag {
    let parsed = TemplateString::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    parsed
        .whole_tag()
        .unwrap_or_else(|| panic!("{source} is not a whole tag"))
        .clone()
}

/// Parses `source`, expecting an error; returns (offset, kind, message).
fn error(source: &str) -> (usize, ParseErrorKind, String) {
    match TemplateString::parse(source) {
        Ok(parsed) => panic!("{source} parsed: {parsed:?}"),
        Err(e) => (e.offset(), e.kind().clone(), e.to_string()),
    }
}

fn keys(path: &sealflow_template::Path) -> Vec<String> {
    path.segments().iter().map(ToString::to_string).collect()
}

#[test]
fn input_root_with_and_without_path() {
    assert!(matches!(tag("{{input}}"), Tag::Input { path } if path.is_empty()));
    let Tag::Input { path } = tag("{{input.user.email}}") else {
        panic!("not an input tag");
    };
    assert_eq!(keys(&path), ["user", "email"]);
    assert_eq!(tag("{{input.user.email}}").to_string(), "input.user.email");
}

#[test]
fn steps_root() {
    let Tag::StepOutput { step_id, path } = tag("{{steps.fetch-1.output.body.id}}") else {
        panic!("not a step tag");
    };
    assert_eq!(step_id, "fetch-1");
    assert_eq!(keys(&path), ["body", "id"]);
    let whole = tag("{{steps.a_b.output}}");
    assert_eq!(whole.step_id(), Some("a_b"));
    assert_eq!(whole.to_string(), "steps.a_b.output");
    // A 64-byte id is the longest accepted.
    let long = "x".repeat(64);
    assert_eq!(
        tag(&format!("{{{{steps.{long}.output}}}}")).step_id(),
        Some(long.as_str())
    );
}

#[test]
fn secrets_run_and_workflow_roots() {
    assert_eq!(
        tag("{{secrets.API_KEY}}"),
        Tag::Secret {
            name: "API_KEY".into()
        }
    );
    assert_eq!(tag("{{secrets._x9}}").secret_name(), Some("_x9"));
    assert_eq!(tag("{{run.id}}"), Tag::RunId);
    assert_eq!(tag("{{workflow.id}}"), Tag::WorkflowId);
    let long = format!("A{}", "b".repeat(127));
    assert_eq!(
        tag(&format!("{{{{secrets.{long}}}}}")).secret_name(),
        Some(long.as_str())
    );
}

#[test]
fn whitespace_inside_braces() {
    assert_eq!(tag("{{ input.user.email }}"), tag("{{input.user.email}}"));
    assert_eq!(tag("{{\tsecrets.K\n}}"), tag("{{secrets.K}}"));
    // Whitespace outside the braces makes it text around a tag.
    assert!(TemplateString::parse(" {{input}}").unwrap().whole_tag().is_none());
}

#[test]
fn array_indexes() {
    let Tag::Input { path } = tag("{{input.items.0.name}}") else {
        panic!("not an input tag");
    };
    assert_eq!(
        path.segments(),
        [
            Segment::Key("items".into()),
            Segment::Index(0),
            Segment::Key("name".into())
        ]
    );
    let Tag::Input { path } = tag("{{input.10}}") else {
        panic!("not an input tag");
    };
    assert_eq!(path.segments(), [Segment::Index(10)]);
    // Mixed digits and letters is a key.
    let Tag::Input { path } = tag("{{input.0a}}") else {
        panic!("not an input tag");
    };
    assert_eq!(path.segments(), [Segment::Key("0a".into())]);
}

#[test]
fn text_and_tags_are_split_in_order() {
    let parsed = TemplateString::parse("Bearer {{secrets.T}} for {{ run.id }}!").unwrap();
    let parts: Vec<Part<'_>> = parsed.parts().collect();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[0], Part::Text("Bearer "));
    assert!(matches!(
        parts[1],
        Part::Tag {
            offset: 7,
            tag: Tag::Secret { .. }
        }
    ));
    assert_eq!(parts[2], Part::Text(" for "));
    assert!(matches!(
        parts[3],
        Part::Tag {
            offset: 25,
            tag: Tag::RunId
        }
    ));
    assert_eq!(parts[4], Part::Text("!"));
    assert!(parsed.whole_tag().is_none());
    assert_eq!(parsed.as_str(), "Bearer {{secrets.T}} for {{ run.id }}!");
}

#[test]
fn lone_closing_braces_and_single_braces_are_text() {
    for source in ["}}", "a } b { c", "{a}", "x }} y", "{ {input} }", "}}{"] {
        let parsed = TemplateString::parse(source).unwrap();
        assert!(parsed.is_literal(), "{source}");
        assert_eq!(parsed.parts().collect::<Vec<_>>(), [Part::Text(source)]);
    }
    // After a tag, extra closing braces are text.
    let parsed = TemplateString::parse("{{input}}}").unwrap();
    assert!(parsed.whole_tag().is_none());
    assert_eq!(parsed.parts().nth(1), Some(Part::Text("}")));
}

#[test]
fn empty_string_is_literal() {
    let parsed = TemplateString::parse("").unwrap();
    assert!(parsed.is_literal());
    assert_eq!(parsed.parts().count(), 0);
}

#[test]
fn unterminated() {
    let (offset, kind, message) = error("abc {{input.x");
    assert_eq!((offset, kind), (4, ParseErrorKind::Unterminated));
    assert!(message.contains("unterminated"), "{message}");
    assert_eq!(error("{{input}} {{").0, 10);
    assert_eq!(error("{{").1, ParseErrorKind::Unterminated);
    assert_eq!(error("{{input}").1, ParseErrorKind::Unterminated);
}

#[test]
fn empty_tag() {
    assert_eq!(error("ab{{}}").0, 2);
    assert_eq!(error("ab{{}}").1, ParseErrorKind::EmptyTag);
    assert_eq!(error("{{   }}").1, ParseErrorKind::EmptyTag);
}

#[test]
fn unknown_root_lists_known_roots() {
    let (offset, kind, message) = error("x{{ foo.bar }}");
    assert_eq!(offset, 4);
    assert_eq!(kind, ParseErrorKind::UnknownRoot { root: "foo".into() });
    for root in sealflow_template::ROOTS {
        assert!(message.contains(root), "{message} lacks {root}");
    }
    // Roots are case-sensitive; a literal `{{{{` is not an escape.
    assert!(matches!(error("{{Input}}").1, ParseErrorKind::UnknownRoot { .. }));
    assert!(matches!(
        error("{{{{input}}}}").1,
        ParseErrorKind::UnknownRoot { .. }
    ));
    assert!(matches!(
        error("{{{input}}}").1,
        ParseErrorKind::UnknownRoot { .. }
    ));
}

#[test]
fn bad_path_segments() {
    // Offsets point at the empty segment.
    assert_eq!(
        error("{{.input}}"),
        (2, ParseErrorKind::EmptySegment, error("{{.input}}").2)
    );
    assert_eq!(error("{{input.}}").0, 8);
    assert_eq!(error("{{input..a}}").0, 8);
    assert_eq!(error("{{input..a}}").1, ParseErrorKind::EmptySegment);
    let (offset, kind, _) = error("{{input.user name}}");
    assert_eq!(offset, 8);
    assert_eq!(
        kind,
        ParseErrorKind::InvalidSegment {
            segment: "user name".into()
        }
    );
    assert_eq!(error("{{ input . x }}").0, 3);
    assert_eq!(error("{{input.é}}").0, 8);
    assert_eq!(error("{{steps.a.output.x$}}").0, 17);
}

#[test]
fn bad_array_indexes() {
    let (offset, kind, _) = error("{{input.items.01}}");
    assert_eq!(offset, 14);
    assert_eq!(kind, ParseErrorKind::InvalidIndex { segment: "01".into() });
    let huge = "9".repeat(40);
    assert!(matches!(
        error(&format!("{{{{input.{huge}}}}}")),
        (8, ParseErrorKind::InvalidIndex { .. }, _)
    ));
}

#[test]
fn steps_errors() {
    assert_eq!(
        error("{{steps}}"),
        (7, ParseErrorKind::MissingStepId, error("{{steps}}").2)
    );
    let (offset, kind, message) = error("{{steps.fetch}}");
    assert_eq!(offset, 13);
    assert_eq!(
        kind,
        ParseErrorKind::ExpectedOutput {
            step_id: "fetch".into(),
            found: None
        }
    );
    assert!(message.contains("steps.fetch.output"), "{message}");
    let (offset, kind, _) = error("{{steps.fetch.body.x}}");
    assert_eq!(offset, 14);
    assert_eq!(
        kind,
        ParseErrorKind::ExpectedOutput {
            step_id: "fetch".into(),
            found: Some("body".into())
        }
    );
    let long = "x".repeat(65);
    assert!(matches!(
        error(&format!("{{{{steps.{long}.output}}}}")),
        (8, ParseErrorKind::InvalidStepId { .. }, _)
    ));
}

#[test]
fn secrets_errors() {
    assert_eq!(error("{{secrets}}").0, 9);
    assert_eq!(error("{{secrets}}").1, ParseErrorKind::MissingSecretName);
    let (offset, kind, _) = error("{{secrets.A.B}}");
    assert_eq!(offset, 12);
    assert_eq!(kind, ParseErrorKind::SecretPath { name: "A".into() });
    for bad in ["1ABC", "a-b"] {
        let (offset, kind, _) = error(&format!("{{{{secrets.{bad}}}}}"));
        assert_eq!(offset, 10);
        assert_eq!(kind, ParseErrorKind::InvalidSecretName { name: bad.into() });
    }
    let long = format!("A{}", "b".repeat(128));
    assert!(matches!(
        error(&format!("{{{{secrets.{long}}}}}")).1,
        ParseErrorKind::InvalidSecretName { .. }
    ));
}

#[test]
fn run_and_workflow_errors() {
    assert_eq!(
        error("{{run}}"),
        (
            5,
            ParseErrorKind::MissingField { root: "run" },
            error("{{run}}").2
        )
    );
    let (offset, kind, message) = error("{{workflow.name}}");
    assert_eq!(offset, 11);
    assert_eq!(
        kind,
        ParseErrorKind::UnknownField {
            root: "workflow",
            field: "name".into()
        }
    );
    assert!(message.contains("workflow.id"), "{message}");
    assert_eq!(
        error("{{run.id.x}}"),
        (9, ParseErrorKind::IdPath { root: "run" }, error("{{run.id.x}}").2)
    );
}

#[test]
fn error_message_names_offset() {
    let message = TemplateString::parse("{{nope}}").unwrap_err().to_string();
    assert_eq!(
        message,
        "template error at byte 2: unknown root `nope`: expected one of input, steps, secrets, run, workflow"
    );
}

#[test]
fn json_errors_name_the_location() {
    let config = json!({
        "url": "https://x/{{input.id}}",
        "headers": {"Authorization": "Bearer {{secret.TOKEN}}", "a/b": "ok"},
        "list": ["fine"]
    });
    let e = Template::parse(&config).unwrap_err();
    assert_eq!(e.location(), "/headers/Authorization");
    assert_eq!(e.offset(), 9);
    assert!(e.to_string().contains("/headers/Authorization byte 9"), "{e}");

    let e = Template::parse(&json!({"a/b": [1, {"c~d": "{{run}}"}]})).unwrap_err();
    assert_eq!(e.location(), "/a~1b/1/c~0d");
    assert_eq!(e.kind(), &ParseErrorKind::MissingField { root: "run" });

    // Bare string: empty location.
    assert_eq!(Template::parse(&json!("{{")).unwrap_err().location(), "");
}

#[test]
fn object_keys_stay_literal() {
    let config = json!({"{{input}}": "v", "k": "{{input.x}}"});
    let template = Template::parse(&config).unwrap();
    let tags: Vec<_> = template.tags().collect();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].location, "/k");
    assert_eq!(template.to_value(), config);
}

#[test]
fn introspection_lists_tags_with_locations() {
    let config = json!({
        "url": "https://api/{{steps.a.output.id}}?k={{secrets.KEY}}",
        "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
        "body": ["{{input}}", 3, null, {"again": "{{secrets.KEY}}"}]
    });
    let template = Template::parse(&config).unwrap();
    let mut found: Vec<(String, usize, String)> = template
        .tags()
        .map(|r| (r.location, r.offset, r.tag.to_string()))
        .collect();
    // Object key order depends on serde_json's `preserve_order` feature,
    // which another crate may turn on; compare as a set.
    found.sort();
    assert_eq!(
        found,
        [
            ("/body/0".to_owned(), 0, "input".to_owned()),
            ("/body/3/again".to_owned(), 0, "secrets.KEY".to_owned()),
            ("/headers/Authorization".to_owned(), 7, "secrets.TOKEN".to_owned()),
            ("/url".to_owned(), 12, "steps.a.output.id".to_owned()),
            ("/url".to_owned(), 36, "secrets.KEY".to_owned()),
        ]
    );
    assert_eq!(
        template.secret_names().into_iter().collect::<Vec<_>>(),
        ["KEY", "TOKEN"]
    );
    let url = TemplateString::parse(config["url"].as_str().unwrap()).unwrap();
    assert_eq!(url.secret_names().into_iter().collect::<Vec<_>>(), ["KEY"]);
}

#[test]
fn parsed_forms_are_cheap_to_clone_and_debug() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<TemplateString>();
    let template = Template::parse(&json!({"a": "{{input}}"})).unwrap();
    let copy = template.clone();
    assert_eq!(copy, template);
    assert_eq!(format!("{template:?}"), r#"Template({"a":"{{input}}"})"#);
    let string: TemplateString = "x {{run.id}}".parse().unwrap();
    assert_eq!(format!("{string:?}"), r#"TemplateString("x {{run.id}}")"#);
    assert_eq!(string.to_string(), "x {{run.id}}");
}
