//! Property tests: validation never panics on arbitrary JSON (random and
//! shaped like real definitions), what it accepts re-validates to the same
//! definition, and schedules only move forward.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use sealflow_workflow::{validate, validate_trigger, Trigger};
use serde_json::{Map, Value};

/// Strings that exercise the validator's branches.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("webhook".to_owned()),
        Just("condition".to_owned()),
        Just("delay".to_owned()),
        Just("transform".to_owned()),
        Just("schedule".to_owned()),
        Just("manual".to_owned()),
        Just("end".to_owned()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("eq".to_owned()),
        Just("matches".to_owned()),
        Just("exists".to_owned()),
        Just("5m".to_owned()),
        Just("8d".to_owned()),
        Just("POST".to_owned()),
        Just("https://example.com/x".to_owned()),
        Just("ftp://{{input.x}}".to_owned()),
        Just("{{secrets.KEY}}".to_owned()),
        Just("{{steps.a.output.x}}".to_owned()),
        Just("{{steps.b.output}}".to_owned()),
        Just("{{input.x}}".to_owned()),
        Just("{{ bad".to_owned()),
        Just("*/5 * * * *".to_owned()),
        Just("Europe/Berlin".to_owned()),
        Just("(a".to_owned()),
        ".{0,12}",
    ]
}

/// Keys of steps, configs and triggers, plus noise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "type", "config", "url", "method", "headers", "body", "timeout_ms", "retries",
            "field", "operator", "value", "then", "else", "seconds", "duration", "output", "cron",
            "timezone", "signed",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,6}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..700_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A step-shaped object: the right keys, with random configs.
fn step() -> impl Strategy<Value = Value> {
    let config = prop::collection::vec((key(), json()), 0..5)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()));
    (word(), word(), config)
        .prop_map(|(id, ty, config)| serde_json::json!({"id": id, "type": ty, "config": config}))
}

fn trigger() -> impl Strategy<Value = Value> {
    let config = prop::collection::vec((key(), json()), 0..3)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()));
    (word(), config).prop_map(|(ty, config)| serde_json::json!({"type": ty, "config": config}))
}

/// Cron expressions: mostly five plausible fields, sometimes noise.
fn cron() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "*", "*/5", "*/15", "0", "1-5", "MON-FRI", "L", "5W", "1#2", "5L", "30", "2", "0,30", "59", "7",
        "29", "?",
    ]);
    prop_oneof![
        3 => prop::collection::vec(field, 5).prop_map(|f| f.join(" ")),
        1 => "[0-9*/,#LW?@ a-zA-Z-]{0,24}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(trigger in json(), steps in json()) {
        let _ = validate(Some(&trigger), Some(&steps));
    }

    #[test]
    fn shaped_definitions_never_panic_and_round_trip(
        trigger in trigger(),
        steps in prop::collection::vec(step(), 0..5),
    ) {
        let steps = Value::Array(steps);
        match validate(Some(&trigger), Some(&steps)) {
            Ok(def) => {
                let stored = def.to_json();
                prop_assert_eq!(validate(Some(&stored["trigger"]), Some(&stored["steps"])), Ok(def));
            }
            Err(e) => {
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.field.is_some());
                if let Some(id) = &e.step {
                    let prefix = format!("step \"{id}\": ");
                    prop_assert!(e.message.starts_with(&prefix), "{}", e.message);
                }
            }
        }
    }

    #[test]
    fn cron_strings_never_panic_and_schedules_move_forward(
        cron in cron(),
        tz in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
        secs in -9_000_000_000i64..100_000_000_000i64,
    ) {
        let value = serde_json::json!({"type": "schedule", "config": {"cron": cron, "timezone": tz}});
        if let Ok(t) = validate_trigger(Some(&value)) {
            let after = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
            if let Some(next) = t.next_after(after) {
                prop_assert!(next > after, "{} -> {}", after, next);
            }
        }
        // Hand-built (unvalidated) schedules are safe too.
        let raw = Trigger::Schedule { cron, timezone: tz.to_owned() };
        let _ = raw.next_after(DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default());
    }
}
