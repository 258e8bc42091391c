//! Property tests: no secret survives whatever surrounds it, nothing panics,
//! and text without secrets comes back untouched.

mod common;

use std::borrow::Cow;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use sealflow_redact::{Redactor, MARKER, MIN_EMBEDDED_BASE64_LEN};

fn with_value(secret: &str) -> Redactor {
    let mut redactor = Redactor::new();
    redactor.add(secret);
    redactor
}

proptest! {
    /// The literal statement: the secret is gone from the output. Secrets with
    /// brackets or inside "REDACTED" are left to the next property, since the
    /// marker itself could then spell them.
    #[test]
    fn secret_does_not_survive(secret in "[^\\[\\]]{4,16}", prefix in "\\PC{0,24}", suffix in "\\PC{0,24}") {
        prop_assume!(!MARKER.contains(secret.as_str()));
        let out = with_value(&secret).redact_str(&format!("{prefix}{secret}{suffix}")).into_owned();
        prop_assert!(!out.contains(secret.as_str()), "{out:?}");
        prop_assert!(out.contains(MARKER));
    }

    /// Any characters at all: no text between markers holds the secret.
    #[test]
    fn secret_does_not_survive_between_markers(secret in any::<String>(), prefix in any::<String>(), suffix in any::<String>()) {
        prop_assume!(secret.len() >= 4);
        let out = with_value(&secret).redact_str(&format!("{prefix}{secret}{suffix}")).into_owned();
        for piece in out.split(MARKER) {
            prop_assert!(!piece.contains(secret.as_str()), "{out:?}");
        }
    }

    /// Every required encoding of any value is masked whole.
    #[test]
    fn every_encoding_of_any_value_is_masked(secret in "\\PC{4,12}") {
        let redactor = with_value(&secret);
        for (label, encoded) in common::encodings(&secret) {
            let out = redactor.redact_str(&format!("<{encoded}>")).into_owned();
            prop_assert_eq!(out, format!("<{MARKER}>"), "{}", label);
        }
    }

    /// Never panics, whatever was added (short, empty, odd) and searched; and
    /// whatever comes back borrowed is the input itself.
    #[test]
    fn never_panics(secrets in prop::collection::vec(any::<String>(), 0..4), text in any::<String>()) {
        let mut redactor = Redactor::new();
        for secret in &secrets {
            redactor.add(secret);
        }
        match redactor.redact_str(&text) {
            Cow::Borrowed(out) => prop_assert_eq!(out, text.as_str()),
            Cow::Owned(out) => {
                prop_assert!(out.contains(MARKER));
                for secret in secrets.iter().filter(|s| s.len() >= 4) {
                    prop_assert!(out.split(MARKER).all(|piece| !piece.contains(secret.as_str())));
                }
            }
        }
        let mut doc = serde_json::json!({ text.clone(): [text.clone(), {"k": text}] });
        let _changed = redactor.redact_json(&mut doc);
    }

    /// Printable-ASCII secrets cannot appear, in any form, in text made only
    /// of non-ASCII characters: it comes back borrowed.
    #[test]
    fn text_without_secret_is_borrowed(secret in "[ -~]{4,16}", text in "[^\\x00-\\x7F]{0,40}") {
        let redactor = with_value(&secret);
        prop_assert!(matches!(redactor.redact_str(&text), Cow::Borrowed(out) if out == text));
    }

    /// A value anywhere inside a larger base64 blob: every character carrying
    /// any of its bits is masked.
    #[test]
    fn value_inside_a_base64_blob_is_masked(
        prefix in prop::collection::vec(any::<u8>(), 0..12),
        secret in "[ -~]{8,20}",
        suffix in prop::collection::vec(any::<u8>(), 0..12),
        url_safe in any::<bool>(),
    ) {
        prop_assert!(secret.len() >= MIN_EMBEDDED_BASE64_LEN);
        let blob = [prefix.as_slice(), secret.as_bytes(), suffix.as_slice()].concat();
        let encoded = if url_safe { URL_SAFE_NO_PAD.encode(&blob) } else { STANDARD.encode(&blob) };
        let out = with_value(&secret).redact_str(&encoded).into_owned();
        let (head, _) = out.split_once(MARKER).expect("masked");
        let (_, tail) = out.rsplit_once(MARKER).expect("masked");
        // Characters [8p / 6, ceil(8(p + n) / 6)) carry the secret's bits.
        let first_secret_char = 8 * prefix.len() / 6;
        let after_secret_chars = (8 * (prefix.len() + secret.len())).div_ceil(6);
        prop_assert!(head.len() <= first_secret_char, "{out:?}");
        prop_assert!(tail.len() <= encoded.len() - after_secret_chars, "{out:?}");
    }
}
