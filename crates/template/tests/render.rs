//! Rendering tests: type preservation, text rendering, missing values in
//! strict and lenient mode, and the per-tag hooks.

use std::borrow::Cow;

use sealflow_template::{to_text, Context, NotFound, Resolve, Tag, Template, TemplateString};
use serde_json::{json, Value};

fn ctx() -> Context {
    let mut ctx = Context {
        input: json!({
            "user": {"email": "a@b.c", "age": 42, "admin": true, "nick": null},
            "items": [{"name": "first"}, {"name": "second"}],
            "codes": {"200": "ok"}
        }),
        run_id: Some("run-1".into()),
        workflow_id: Some("wf-9".into()),
        ..Context::default()
    };
    ctx.steps
        .insert("fetch".into(), json!({"status": 200, "body": {"id": "x1"}}));
    ctx.secrets.insert("TOKEN".into(), "s3cret".into());
    ctx
}

fn render(config: Value) -> Value {
    Template::parse(&config).unwrap().render(&ctx()).unwrap()
}

#[test]
fn whole_tag_keeps_json_type() {
    assert_eq!(render(json!("{{input.user.age}}")), json!(42));
    assert_eq!(render(json!("{{ input.user.admin }}")), json!(true));
    assert_eq!(render(json!("{{input.user.nick}}")), Value::Null);
    assert_eq!(render(json!("{{input.user}}")), ctx().input["user"]);
    assert_eq!(render(json!("{{input.items}}")), ctx().input["items"]);
    assert_eq!(render(json!("{{input}}")), ctx().input);
    assert_eq!(render(json!("{{steps.fetch.output}}")), ctx().steps["fetch"]);
    assert_eq!(render(json!("{{steps.fetch.output.status}}")), json!(200));
}

#[test]
fn every_root_resolves() {
    assert_eq!(
        render(json!({
            "email": "{{input.user.email}}",
            "second": "{{input.items.1.name}}",
            "code": "{{input.codes.200}}",
            "id": "{{steps.fetch.output.body.id}}",
            "secret": "{{secrets.TOKEN}}",
            "run": "{{run.id}}",
            "wf": "{{workflow.id}}",
            "literal": "plain",
            "n": 1.5,
            "b": false,
            "z": null
        })),
        json!({
            "email": "a@b.c",
            "second": "second",
            "code": "ok",
            "id": "x1",
            "secret": "s3cret",
            "run": "run-1",
            "wf": "wf-9",
            "literal": "plain",
            "n": 1.5,
            "b": false,
            "z": null
        })
    );
}

#[test]
fn tag_in_text_renders_as_text() {
    assert_eq!(
        render(json!(
            "to {{input.user.email}}, age {{input.user.age}}, admin {{input.user.admin}}"
        )),
        json!("to a@b.c, age 42, admin true")
    );
    // Null is the text `null`; objects and arrays are compact JSON.
    assert_eq!(render(json!("nick={{input.user.nick}}")), json!("nick=null"));
    assert_eq!(
        render(json!("u={{input.items.0}} l={{input.items}}")),
        json!(r#"u={"name":"first"} l=[{"name":"first"},{"name":"second"}]"#)
    );
    // Whitespace outside the braces makes it text, so the type is lost.
    assert_eq!(render(json!(" {{input.user.age}}")), json!(" 42"));
    assert_eq!(render(json!("{{run.id}}{{workflow.id}}")), json!("run-1wf-9"));
}

#[test]
fn missing_path_names_the_tag() {
    let template = Template::parse(&json!({"to": ["x", "{{input.user.phone}}"]})).unwrap();
    let e = template.render(&ctx()).unwrap_err();
    assert_eq!(e.location, "/to/1");
    assert_eq!(e.offset, 0);
    assert_eq!(e.error.to_string(), "input.user.phone not found");
    assert_eq!(
        e.to_string(),
        "render error at /to/1 byte 0: input.user.phone not found"
    );

    for (source, path) in [
        ("a {{input.items.5.name}}", "input.items.5.name"),
        ("{{input.user.email.x}}", "input.user.email.x"),
        ("{{steps.other.output}}", "steps.other.output"),
        ("{{steps.fetch.output.nope}}", "steps.fetch.output.nope"),
        ("{{secrets.NOPE}}", "secrets.NOPE"),
    ] {
        let e = TemplateString::parse(source).unwrap().render(&ctx()).unwrap_err();
        assert_eq!(e.error.to_string(), format!("{path} not found"));
    }
    let e = TemplateString::parse("{{run.id}}")
        .unwrap()
        .render(&Context::default())
        .unwrap_err();
    assert_eq!(e.error, NotFound { tag: Tag::RunId });
    assert_eq!(e.to_string(), "render error at byte 0: run.id not found");
}

#[test]
fn lenient_mode_renders_missing_as_null() {
    let template = Template::parse(&json!({
        "whole": "{{input.user.phone}}",
        "text": "p={{steps.none.output.x}}",
        "found": "{{input.user.age}}"
    }))
    .unwrap();
    assert_eq!(
        template.render_lenient(&ctx()),
        json!({"whole": null, "text": "p=null", "found": 42})
    );
    let field = TemplateString::parse("{{ steps.fetch.output.status }}").unwrap();
    assert_eq!(field.render_lenient(&ctx()), json!(200));
    assert_eq!(field.render_lenient(&Context::default()), Value::Null);
}

#[test]
fn empty_context() {
    let empty = Context::default();
    assert_eq!(
        TemplateString::parse("{{input}}")
            .unwrap()
            .render(&empty)
            .unwrap(),
        Value::Null
    );
    assert!(TemplateString::parse("{{input.a}}")
        .unwrap()
        .render(&empty)
        .is_err());
    assert_eq!(
        TemplateString::parse("no tags").unwrap().render(&empty).unwrap(),
        json!("no tags")
    );
}

#[test]
fn render_with_lets_the_caller_encode_and_record_secrets() {
    let ctx = ctx();
    let template = Template::parse(&json!({
        "body": {"token": "{{secrets.TOKEN}}", "note": "t={{secrets.TOKEN}} r={{run.id}}"}
    }))
    .unwrap();
    let mut used = Vec::new();
    let rendered = template
        .render_with(|tag| match tag {
            Tag::Secret { name } => {
                let value = ctx.secret(name).ok_or("no secret")?;
                used.push(value.to_owned());
                Ok(Value::String(value.to_uppercase()))
            }
            other => other.resolve(&ctx).ok_or("missing"),
        })
        .unwrap();
    assert_eq!(
        rendered,
        json!({"body": {"token": "S3CRET", "note": "t=S3CRET r=run-1"}})
    );
    assert_eq!(used, ["s3cret", "s3cret"]);

    // The hook's own error comes back with the location of the tag.
    let e = template
        .render_with(|tag| match tag {
            Tag::Secret { .. } => Err("secrets are not allowed here"),
            other => Ok(other.resolve(&ctx).unwrap_or(Value::Null)),
        })
        .unwrap_err();
    assert_eq!(e.error, "secrets are not allowed here");
    assert!(e.location == "/body/note" || e.location == "/body/token");
    assert_eq!(e.offset, if e.location == "/body/note" { 2 } else { 0 });
}

#[test]
fn render_string_with_decides_the_text() {
    let ctx = ctx();
    let url = TemplateString::parse("https://h/{{input.user.email}}?k={{secrets.TOKEN}}").unwrap();
    let rendered = url
        .render_string_with(|tag| -> Result<Cow<'_, str>, String> {
            let value = tag.resolve(&ctx).ok_or_else(|| tag.to_string())?;
            // A stand-in for URL encoding: visible in the output.
            Ok(Cow::Owned(
                to_text(&value).replace('@', "%40").replace('3', "%33"),
            ))
        })
        .unwrap();
    assert_eq!(rendered, "https://h/a%40b.c?k=s%33cret");

    // The hook's error stops rendering.
    let e = url
        .render_string_with(|tag| match tag {
            Tag::Secret { .. } => Err("CR/LF"),
            _ => Ok(Cow::Borrowed("x")),
        })
        .unwrap_err();
    assert_eq!(e, "CR/LF");

    // No tags: the source is borrowed, and the hook is never called.
    let literal = TemplateString::parse("plain").unwrap();
    let out = literal
        .render_string_with(|_| -> Result<Cow<'_, str>, ()> { panic!("called") })
        .unwrap();
    assert!(matches!(out, Cow::Borrowed("plain")));

    // A whole tag returns exactly what the hook gave.
    let whole = TemplateString::parse("{{ run.id }}").unwrap();
    let out = whole
        .render_string_with(|_| -> Result<Cow<'_, str>, ()> { Ok(Cow::Borrowed("R")) })
        .unwrap();
    assert_eq!(out, "R");
}

#[test]
fn render_value_with_applies_type_rules() {
    let whole = TemplateString::parse("{{input.x}}").unwrap();
    let text = TemplateString::parse("x={{input.x}}").unwrap();
    let f = |_: &Tag| Ok::<_, ()>(json!({"a": [1, null]}));
    assert_eq!(whole.render_value_with(f).unwrap(), json!({"a": [1, null]}));
    assert_eq!(text.render_value_with(f).unwrap(), json!(r#"x={"a":[1,null]}"#));
}

#[test]
fn context_debug_hides_secret_values() {
    let shown = format!("{:?}", ctx());
    assert!(shown.contains("TOKEN"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn to_text_rules() {
    assert_eq!(to_text(&json!("raw \"s\"")), "raw \"s\"");
    assert_eq!(to_text(&Value::Null), "null");
    assert_eq!(to_text(&json!(1.5)), "1.5");
    assert_eq!(to_text(&json!({"a": 1})), r#"{"a":1}"#);
}

#[test]
fn resolve_through_dyn_and_references() {
    let ctx = ctx();
    let dynamic: &dyn Resolve = &ctx;
    let string = TemplateString::parse("{{workflow.id}}").unwrap();
    assert_eq!(string.render(dynamic).unwrap(), json!("wf-9"));
    assert_eq!(string.render(&&ctx).unwrap(), json!("wf-9"));
    let template = Template::from(string);
    assert_eq!(template.render(dynamic).unwrap(), json!("wf-9"));
}
