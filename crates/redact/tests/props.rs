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

fn filler_only(out: &str) -> bool {
    out.replace(MARKER, "").chars().all(|c| c == '.')
}

proptest! {
    /// A numeric secret written as a bare JSON number, alone or inside a
    /// longer number, never survives parsing: not as the number, not as the
    /// float a long one would become.
    #[test]
    fn numeric_secrets_in_json_numbers_are_masked(
        secret in "[1-9][0-9]{3,29}",
        before in "([1-9][0-9]{0,3})?",
        after in "[0-9]{0,3}",
        fraction in prop::option::of("[0-9]{1,4}"),
    ) {
        let redactor = with_value(&secret);
        let number = format!("{before}{secret}{after}{}", fraction.map(|f| format!(".{f}")).unwrap_or_default());
        let doc = format!(r#"{{"n": {number}, "list": [1, {number}], "s": "kept", "deep": {{"x": -{number}e2}}}}"#);
        let value = redactor.redact_document(&doc).expect("still a JSON document");
        let written = value.to_string();
        prop_assert_eq!(&value["s"], "kept");
        prop_assert_eq!(&value["list"][0], 1);
        prop_assert_eq!(&value["n"], MARKER);
        let window = secret.len().min(8);
        for start in 0..=secret.len() - window {
            prop_assert!(!written.contains(&secret[start..start + window]), "{written}");
        }
    }

    /// Numbers that hold no secret are kept as numbers.
    #[test]
    fn numbers_without_a_secret_stay_numbers(secret in "[1-9][0-9]{5,12}", n in any::<i64>()) {
        prop_assume!(!n.to_string().contains(secret.as_str()));
        let value = with_value(&secret).redact_document(&format!("[{n}]")).expect("JSON");
        prop_assert_eq!(value, serde_json::json!([n]));
    }

    /// However a masked text is cut, nothing after the filler survives: the
    /// start of a secret at the cut is hidden like the secret, and the result
    /// fits the cap.
    #[test]
    fn a_cut_never_keeps_the_start_of_a_secret(
        // Without `.` (the filler) and brackets (the marker's).
        secret in "[a-zA-Z0-9 +/%\"\\\\:@?&=_~é€-]{4,16}",
        pick in any::<prop::sample::Index>(),
        filler in 12usize..40,
        into in any::<prop::sample::Index>(),
        trailing in 0usize..3,
        complete in any::<bool>(),
    ) {
        let redactor = with_value(&secret);
        let forms = common::encodings(&secret);
        let (label, form) = &forms[pick.index(forms.len())];
        let cut_at = into.index(form.len().max(1));
        let cap = filler + cut_at;
        let text = if complete {
            format!("{}{form}{}", ".".repeat(filler), ".".repeat(trailing))
        } else {
            // The reader stopped inside the form: the text ends there.
            let end = (filler + cut_at..).find(|&i| format!("{}{form}", ".".repeat(filler)).is_char_boundary(i)).unwrap();
            format!("{}{form}", ".".repeat(filler))[..end].to_owned()
        };
        let out = redactor.redact_capped(&text, complete, cap.max(MARKER.len()));
        prop_assert!(out.len() <= cap.max(MARKER.len()), "{} bytes over a cap of {cap}", out.len());
        prop_assert!(filler_only(&out), "{label}: {out:?}");
    }

    /// Every part of a URL secret that carries it is masked wherever it shows
    /// up alone: password, `user:password` and its base64 (the Basic header),
    /// path, query, and long segments and parameters.
    #[test]
    fn parts_of_a_url_secret_are_masked_alone(
        user in "[a-z]{1,12}",
        password in "[A-Za-z0-9]{4,20}",
        segment in "[A-Za-z0-9]{8,24}",
        param in "[A-Za-z0-9]{8,24}",
        host in "[a-z]{3,10}\\.example",
    ) {
        let url = format!("https://{user}:{password}@{host}/hooks/{segment}/x?token={param}&v=1");
        let redactor = with_value(&url);
        let pair = format!("{user}:{password}");
        let parts = [
            password.clone(),
            pair.clone(),
            STANDARD.encode(&pair),
            format!("/hooks/{segment}/x"),
            format!("hooks/{segment}/x"),
            format!("token={param}&v=1"),
            segment.clone(),
            param.clone(),
            url.to_uppercase(),
        ];
        for part in parts {
            let out = redactor.redact_str(&format!("<{part}>")).into_owned();
            prop_assert_eq!(out, format!("<{MARKER}>"), "{}", part);
        }
        // The destination stays readable.
        let error = format!("HTTP 500 from {host}");
        prop_assert_eq!(redactor.redact_str(&error), error.as_str());
    }

    /// Case does not matter: any mix of upper and lower case of the value,
    /// of its hex, or of its percent-encoding's hex digits is masked.
    #[test]
    fn any_ascii_case_of_a_form_is_masked(secret in "[ -~]{4,16}", flips in prop::collection::vec(any::<bool>(), 64)) {
        prop_assume!(!MARKER.to_ascii_lowercase().contains(&secret.to_ascii_lowercase()));
        let redactor = with_value(&secret);
        for form in [secret.clone(), common::hex_lower(&secret), common::percent_upper(&secret)] {
            let flipped: String = form
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let out = redactor.redact_str(&format!("({flipped})")).into_owned();
            prop_assert_eq!(out, format!("({MARKER})"), "{}", flipped);
        }
    }

    /// Base64 broken into lines, at any width and with any line ending (also
    /// JSON-escaped), hides the value like unbroken base64: once the breaks
    /// are taken out, no character carrying its bits is left.
    #[test]
    fn a_value_inside_line_broken_base64_is_masked(
        prefix in prop::collection::vec(any::<u8>(), 0..90),
        secret in "[ -~]{8,40}",
        suffix in prop::collection::vec(any::<u8>(), 0..30),
        width in prop::sample::select(vec![4usize, 16, 64, 76]),
        eol in prop::sample::select(vec!["\n", "\r\n", "\\n", "\\r\\n"]),
    ) {
        let blob = [prefix.as_slice(), secret.as_bytes(), suffix.as_slice()].concat();
        let flat = STANDARD.encode(&blob);
        let text = common::wrapped(&blob, width, eol);
        let out = with_value(&secret).redact_str(&text).into_owned();
        let joined = out.replace(eol, "");
        let (head, _) = joined.split_once(MARKER).expect("masked");
        let (_, tail) = joined.rsplit_once(MARKER).expect("masked");
        let first_secret_char = 8 * prefix.len() / 6;
        let after_secret_chars = (8 * (prefix.len() + secret.len())).div_ceil(6);
        prop_assert!(head.len() <= first_secret_char, "{out:?}");
        prop_assert!(tail.len() <= flat.len() - after_secret_chars, "{out:?}");
    }
}
