//! Properties that need the redactor's pattern list, which the public API
//! deliberately does not expose.

use std::borrow::Cow;

use proptest::prelude::*;

use super::Redactor;
use crate::MARKER;

fn contains_a_pattern(redactor: &Redactor, text: &str) -> bool {
    redactor.patterns.iter().any(|p| text.contains(p.text.as_str()))
}

proptest! {
    /// Text containing no pattern comes back borrowed and untouched; text
    /// containing one never does.
    #[test]
    fn borrowed_exactly_when_no_pattern_occurs(secret in "\\PC{4,12}", text in "\\PC{0,40}") {
        let mut redactor = Redactor::new();
        redactor.add(&secret);
        let out = redactor.redact_str(&text);
        if contains_a_pattern(&redactor, &text) {
            prop_assert!(matches!(out, Cow::Owned(_)));
            prop_assert!(out.contains(MARKER));
        } else {
            prop_assert!(matches!(out, Cow::Borrowed(t) if t == text));
        }
    }

    /// Whatever a pattern's neighbours, no pattern survives whole.
    #[test]
    fn no_pattern_survives(secret in "[a-z0-9 +/%\"\\\\é]{4,10}", prefix in "\\PC{0,8}", suffix in "\\PC{0,8}", pick in any::<prop::sample::Index>()) {
        let mut redactor = Redactor::new();
        redactor.add(&secret);
        let pattern = redactor.patterns[pick.index(redactor.patterns.len())].text.to_string();
        let out = redactor.redact_str(&format!("{prefix}{pattern}{suffix}")).into_owned();
        for piece in out.split(MARKER) {
            prop_assert!(!piece.contains(pattern.as_str()), "{pattern:?} survives in {out:?}");
        }
    }
}

#[test]
fn duplicate_forms_are_kept_once() {
    let mut redactor = Redactor::new();
    redactor.add("abc123");
    // raw (= every JSON and URL form), 4 base64 forms where standard =
    // URL-safe and padded = unpadded for 6 bytes: "YWJjMTIz".
    assert_eq!(redactor.pattern_count(), 2);
    let before = redactor.pattern_count();
    redactor.add("abc123");
    assert_eq!(redactor.pattern_count(), before);
    assert_eq!(redactor.value_count(), 1);
}
