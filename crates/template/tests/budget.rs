//! The render budget: it counts exactly the bytes of compact JSON it lets through, refuses one
//! byte less, and stops an amplifying template (ten copies per level, or a thousand in one
//! string) before it has built more than the budget.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use sealflow_template::{Budget, Context, Limited, Template, TemplateString, TooLarge};
use serde_json::{json, Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A config whose strings are literal text, whole tags, or tags inside text.
fn config() -> impl Strategy<Value = Value> {
    let string = prop_oneof![
        any::<String>().prop_filter("no tag", |s| !s.contains("{{")),
        Just("{{input.k}}".to_owned()),
        Just("{{input}}".to_owned()),
        Just("a \"{{input.k}}\" b\n{{input.k}}".to_owned()),
        Just("{{run.id}}/{{input.k}}".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        string.prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\\\]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn ctx(k: Value) -> Context {
    Context {
        input: json!({ "k": k }),
        run_id: Some("run_1".into()),
        ..Context::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_budget_charges_exactly_the_serialized_size(config in config(), k in json_value()) {
        let template = Template::parse(&config).unwrap();
        let ctx = ctx(k);
        let mut budget = Budget::unlimited();
        let rendered = template.render_budgeted(&ctx, &mut budget).unwrap();
        let size = serde_json::to_vec(&rendered).unwrap().len();
        prop_assert_eq!(budget.used(), size);
        prop_assert_eq!(&rendered, &template.render(&ctx).unwrap());
        prop_assert!(template.render_budgeted(&ctx, &mut Budget::new(size)).is_ok());
        let err = template.render_budgeted(&ctx, &mut Budget::new(size - 1)).unwrap_err();
        prop_assert_eq!(err.error, Limited::TooLarge(TooLarge { limit: size - 1 }));
    }

    #[test]
    fn text_rendering_charges_its_bytes(s in any::<String>(), k in any::<String>()) {
        let source = format!("{}{{{{input.k}}}}", s.replace('{', ""));
        let t = TemplateString::parse(&source).unwrap();
        let c = ctx(Value::String(k.clone()));
        let mut budget = Budget::unlimited();
        let text = t
            .render_string_with_budget(&mut budget, |tag| -> Result<_, ()> {
                Ok(sealflow_template::to_text(&tag.resolve(&c).unwrap()).into_owned().into())
            })
            .unwrap();
        prop_assert_eq!(budget.used(), text.len());
        let mut short = Budget::new(text.len().saturating_sub(1));
        let r = t.render_string_with_budget(&mut short, |_| -> Result<_, ()> { Ok(k.clone().into()) });
        prop_assert!(text.is_empty() || r.is_err());
    }
}

/// Six levels, each holding ten copies of the one before: 10^6 copies of the first output at the
/// end (100 GB from 100 KB). With a 1 MiB budget a level fails as soon as it would pass 1 MiB.
#[test]
fn nested_copies_fail_at_the_budget_instead_of_growing_tenfold_per_level() {
    let started = Instant::now();
    let mut ctx = Context {
        input: json!({ "x": "A".repeat(100_000) }),
        ..Context::default()
    };
    let ten = |source: &str| {
        let map: Map<String, Value> = (0..10).map(|i| (format!("a{i}"), json!(source))).collect();
        Template::parse(&Value::Object(map)).unwrap()
    };
    let mut failed_at = None;
    for level in 1..=6 {
        let previous = if level == 1 {
            "{{input.x}}".to_owned()
        } else {
            format!("{{{{steps.l{}.output}}}}", level - 1)
        };
        let mut budget = Budget::new(1 << 20);
        match ten(&previous).render_budgeted(&ctx, &mut budget) {
            Ok(value) => {
                assert!(budget.used() <= 1 << 20);
                ctx.steps.insert(format!("l{level}"), value);
            }
            Err(e) => {
                assert_eq!(e.error, Limited::TooLarge(TooLarge { limit: 1 << 20 }));
                failed_at = Some(level);
                break;
            }
        }
    }
    assert_eq!(
        failed_at,
        Some(2),
        "10 x 100 KB fits in 1 MiB, 100 x 100 KB does not"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_thousand_copies_inside_one_string_fail_at_the_budget() {
    let ctx = Context {
        input: json!({ "big": "B".repeat(1 << 20), "n": {"deep": vec!["x"; 1000]} }),
        ..Context::default()
    };
    for tag in ["{{input.big}}", "{{input.n}}"] {
        let t = TemplateString::parse(&tag.repeat(1000)).unwrap();
        let err = Template::from(t.clone())
            .render_budgeted(&ctx, &mut Budget::new(1 << 20))
            .unwrap_err();
        assert!(matches!(err.error, Limited::TooLarge(_)), "{tag}");
        let lenient = t
            .render_lenient_budgeted(&ctx, &mut Budget::new(1 << 20))
            .unwrap_err();
        assert_eq!(lenient.error, TooLarge { limit: 1 << 20 });
    }
}
