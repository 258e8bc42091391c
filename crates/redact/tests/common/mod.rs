//! Test helpers: the encodings a secret may be echoed in, computed with
//! independent implementations (serde_json, percent-encoding, form_urlencoded,
//! base64) rather than the crate's own encoders.

#![allow(dead_code)] // Each test binary uses its own subset.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The inside of serde_json's string literal.
pub fn json(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).expect("strings serialize");
    quoted[1..quoted.len() - 1].to_owned()
}

/// serde_json's escaping with every non-ASCII character as `\uxxxx`.
pub fn json_ascii(secret: &str) -> String {
    let mut out = String::new();
    for c in json(secret).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

pub fn percent_upper(secret: &str) -> String {
    utf8_percent_encode(secret, COMPONENT).to_string()
}

/// Lowercases the two hex digits after each `%` of an encoded string.
pub fn lower_hex(encoded: &str) -> String {
    let mut out = String::new();
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            hex_left = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

pub fn form(secret: &str) -> String {
    form_urlencoded::byte_serialize(secret.as_bytes()).collect()
}

/// Percent-encoding with mixed-case hex: the first digit of each escape
/// upper, the second lower.
pub fn percent_mixed(secret: &str) -> String {
    let mut out = String::new();
    let mut digit = 0;
    for c in percent_upper(secret).chars() {
        digit = match (c, digit) {
            ('%', _) => 1,
            (_, 1) => 2,
            _ => 0,
        };
        out.push(if digit == 2 { c.to_ascii_lowercase() } else { c });
    }
    out
}

/// Lower-case hex of the bytes (the `hex` crate is not a dependency here).
pub fn hex_lower(secret: &str) -> String {
    secret.bytes().map(|b| format!("{b:02x}")).collect()
}

/// What `format!("{secret:?}")` shows between its quotes.
pub fn debug(secret: &str) -> String {
    let quoted = format!("{secret:?}");
    quoted[1..quoted.len() - 1].to_owned()
}

/// Base64 broken into lines of `width` characters joined by `eol`.
pub fn wrapped(bytes: &[u8], width: usize, eol: &str) -> String {
    let flat = STANDARD.encode(bytes);
    let lines: Vec<&str> = flat
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    lines.join(eol)
}

/// Every form the brief requires, labelled, duplicates included.
pub fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    let bytes = secret.as_bytes();
    vec![
        ("raw", secret.to_owned()),
        ("json", json(secret)),
        ("json-ascii", json_ascii(secret)),
        ("percent", percent_upper(secret)),
        ("percent-lower", lower_hex(&percent_upper(secret))),
        ("percent-mixed", percent_mixed(secret)),
        (
            "percent-all",
            percent_encoding::utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        ),
        ("form", form(secret)),
        ("debug", debug(secret)),
        ("hex", hex_lower(secret)),
        ("HEX", hex_lower(secret).to_uppercase()),
        ("upper", secret.to_uppercase()),
        ("lower-ascii", secret.to_ascii_lowercase()),
        ("base64", STANDARD.encode(bytes)),
        ("base64-nopad", STANDARD_NO_PAD.encode(bytes)),
        ("base64url", URL_SAFE.encode(bytes)),
        ("base64url-nopad", URL_SAFE_NO_PAD.encode(bytes)),
    ]
}

/// Fails if any run of 4 characters of any encoding of `secret` is in `out`.
pub fn assert_no_trace(out: &str, secret: &str) {
    for (label, encoded) in encodings(secret) {
        let chars: Vec<char> = encoded.chars().collect();
        for window in chars.windows(4) {
            let piece: String = window.iter().collect();
            assert!(
                !out.contains(&piece),
                "{label} piece {piece:?} of the secret survives in {out:?}"
            );
        }
    }
}
