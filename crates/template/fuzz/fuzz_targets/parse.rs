//! Fuzz target: parsing arbitrary UTF-8 must never panic, and whatever
//! parses must render (lenient, empty context) without panicking.
//!
//! Run with `cargo +nightly fuzz run parse` from `crates/template`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealflow_template::{Context, Template, TemplateString};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let ctx = Context::default();

    match TemplateString::parse(source) {
        Ok(parsed) => {
            let rendered = parsed.render_lenient(&ctx);
            // Text without tags must render to itself.
            if parsed.is_literal() {
                assert_eq!(rendered, serde_json::Value::String(source.to_owned()));
            }
        }
        Err(e) => assert!(e.offset() <= source.len()),
    }

    // The same input as a JSON document exercises the tree walk.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(source) {
        if let Ok(template) = Template::parse(&value) {
            let _ = template.render_lenient(&ctx);
            assert_eq!(template.to_value(), value);
        }
    }
});
