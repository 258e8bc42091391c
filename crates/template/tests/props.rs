//! Property tests: parsing never panics, text without `{{` renders to
//! itself, and a whole `{{input.k}}` tag returns exactly the value at `k`.

use proptest::prelude::*;
use sealflow_template::{Context, Template, TemplateString};
use serde_json::{json, Map, Value};

/// Strings built from template-ish fragments, so that the generator often
/// produces tags, near-tags and malformed tags rather than random noise.
fn templatish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(".".to_owned()),
        Just(" ".to_owned()),
        Just("input".to_owned()),
        Just("steps".to_owned()),
        Just("output".to_owned()),
        Just("secrets".to_owned()),
        Just("run".to_owned()),
        Just("workflow".to_owned()),
        Just("id".to_owned()),
        "[a-zA-Z0-9_-]{0,4}",
        "[0-9]{1,25}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(fragment, 0..16).prop_map(|parts| parts.concat())
}

/// Small arbitrary JSON values.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z{}.]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics(source in any::<String>()) {
        let _ = TemplateString::parse(&source);
    }

    #[test]
    fn parse_never_panics_on_templatish(source in templatish()) {
        match TemplateString::parse(&source) {
            Ok(parsed) => {
                // Whatever parses renders without panicking and keeps its source.
                let _ = parsed.render_lenient(&Context::default());
                prop_assert_eq!(parsed.as_str(), source.as_str());
            }
            Err(e) => prop_assert!(e.offset() <= source.len()),
        }
    }

    #[test]
    fn text_without_open_braces_is_identity(
        source in prop_oneof![any::<String>(), templatish()]
            .prop_filter("no {{", |s| !s.contains("{{"))
    ) {
        let parsed = TemplateString::parse(&source).unwrap();
        prop_assert!(parsed.is_literal());
        prop_assert_eq!(
            parsed.render(&Context::default()).unwrap(),
            Value::String(source.clone())
        );
        let template = Template::parse(&json!({ "k": source })).unwrap();
        prop_assert_eq!(
            template.render(&Context::default()).unwrap(),
            json!({ "k": source })
        );
    }

    #[test]
    fn whole_input_tag_returns_the_value(value in json_value(), spaces in 0usize..3) {
        let ctx = Context { input: json!({ "k": value.clone() }), ..Context::default() };
        let pad = " ".repeat(spaces);
        let source = format!("{{{{{pad}input.k{pad}}}}}");
        let template = Template::parse(&Value::String(source)).unwrap();
        prop_assert_eq!(template.render(&ctx).unwrap(), value.clone());
        // The same tag nested in a config keeps its place and type.
        let nested = Template::parse(&json!({"a": ["{{input.k}}"]})).unwrap();
        prop_assert_eq!(nested.render(&ctx).unwrap(), json!({"a": [value]}));
    }

    #[test]
    fn tag_display_reparses_to_the_same_tag(source in templatish()) {
        if let Ok(parsed) = TemplateString::parse(&source) {
            for (_, tag) in parsed.tags() {
                let again = TemplateString::parse(&format!("{{{{{tag}}}}}")).unwrap();
                prop_assert_eq!(again.whole_tag(), Some(tag));
            }
        }
    }

    #[test]
    fn template_keeps_its_source(value in json_value()) {
        // Strings without `{{` always parse, so every generated value does.
        if let Ok(template) = Template::parse(&value) {
            prop_assert_eq!(template.to_value(), value);
        }
    }
}
