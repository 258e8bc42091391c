//! Properties that need the redactor's pattern list, which the public API
//! deliberately does not expose.

use std::borrow::Cow;

use proptest::prelude::*;

use super::Redactor;
use crate::MARKER;

/// Whether `text` holds a pattern, ignoring ASCII case as the search does
/// (case-folding ASCII keeps byte offsets, so lowering both is exact).
fn contains_a_pattern(redactor: &Redactor, text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    redactor
        .patterns
        .iter()
        .any(|p| text.contains(p.text.to_ascii_lowercase().as_str()))
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
    // raw (= every JSON, Debug and URL form), 4 base64 forms where standard
    // = URL-safe and padded = unpadded for 6 bytes ("YWJjMTIz"), and hex
    // (in either case: matching ignores ASCII case).
    assert_eq!(redactor.pattern_count(), 3);
    let before = redactor.pattern_count();
    redactor.add("abc123");
    assert_eq!(redactor.pattern_count(), before);
    assert_eq!(redactor.value_count(), 1);
}

#[test]
fn forms_differing_only_in_ascii_case_are_one_pattern() {
    let mut redactor = Redactor::new();
    redactor.add("Token-42");
    redactor.add("tOKEN-42");
    // Base64 and hex of the two differ; their raw forms are one pattern.
    let raw = |p: &&super::Pattern| p.text.eq_ignore_ascii_case("token-42");
    assert_eq!(redactor.patterns.iter().filter(raw).count(), 1);
    assert_eq!(redactor.redact_str("a TOKEN-42 b"), format!("a {MARKER} b"));
}

#[test]
fn a_url_value_adds_its_parts_as_patterns_but_counts_once() {
    let mut redactor = Redactor::new();
    redactor.add("https://user:hunter2-pass@hooks.example/services/T012345678/x?k=v");
    assert_eq!(redactor.value_count(), 1);
    let texts: Vec<&str> = redactor.patterns.iter().map(|p| p.text.as_str()).collect();
    for part in [
        "hunter2-pass",
        "user:hunter2-pass",
        "/services/T012345678/x",
        "services/T012345678/x",
        "T012345678",
        "services",
    ] {
        assert!(texts.contains(&part), "{part:?} in {texts:?}");
    }
    // The host is the destination, short segments and parameters are only
    // masked within their path or query.
    for kept in ["hooks.example", "x", "k=v", "v", "user"] {
        assert!(!texts.contains(&kept), "{kept:?}");
    }
}
