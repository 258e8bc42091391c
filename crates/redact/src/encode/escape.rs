//! Escaped forms of a value: JSON string escapes of the encoders a remote
//! service is likely to echo with, and Rust's `Debug` escaping (log lines).
//!
//! Matching ignores ASCII case, so encoders that differ from one another only
//! in the case of their hex digits (Jackson's `\u00E9` against Python's
//! `\u00e9`) need no separate style.

use std::fmt::{self, Write as _};

use zeroize::Zeroizing;

use super::{build, Emit, LOWER_HEX};

/// How one JSON encoder escapes strings; the ones a remote service is likely
/// to echo with are listed in [`JSON_STYLES`].
struct JsonStyle {
    /// Non-ASCII characters as `\uXXXX` (UTF-16 surrogate pairs above U+FFFF).
    ascii_only: bool,
    /// `/` as `\/`.
    escape_slash: bool,
    /// Characters written as `\uXXXX` even where a short escape exists.
    as_unicode: &'static str,
}

const SERDE_JSON: JsonStyle = JsonStyle {
    ascii_only: false,
    escape_slash: false,
    as_unicode: "",
};

const JSON_STYLES: [JsonStyle; 5] = [
    // serde_json, JavaScript's JSON.stringify, Ruby's to_json.
    SERDE_JSON,
    // Python's json.dumps (ensure_ascii is its default), Java's Jackson with
    // ESCAPE_NON_ASCII (uppercase hex).
    JsonStyle {
        ascii_only: true,
        escape_slash: false,
        as_unicode: "",
    },
    // PHP's json_encode defaults.
    JsonStyle {
        ascii_only: true,
        escape_slash: true,
        as_unicode: "",
    },
    // Go's encoding/json, HTML-safe by default.
    JsonStyle {
        ascii_only: false,
        escape_slash: false,
        as_unicode: "<>&\u{2028}\u{2029}",
    },
    // .NET's System.Text.Json default encoder (uppercase hex).
    JsonStyle {
        ascii_only: true,
        escape_slash: false,
        as_unicode: "\"'+<>&`\u{7f}",
    },
];

pub(super) fn json_forms(value: &str, out: &mut impl FnMut(Zeroizing<String>)) {
    for style in &JSON_STYLES {
        out(build(|emit| json_escape(value, style, emit)));
    }
    // A JSON document echoed inside a JSON string (httpbin's "data" field).
    let once = build(|emit| json_escape(value, &SERDE_JSON, emit));
    out(build(|emit| json_escape(&once, &SERDE_JSON, emit)));
}

/// Writes the inside of a JSON string literal holding `value`.
fn json_escape(value: &str, style: &JsonStyle, emit: Emit<'_>) {
    let mut buf = [0u8; 4];
    for c in value.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '/' if style.escape_slash => Some("\\/"),
            _ => None,
        };
        if style.as_unicode.contains(c) {
            unicode_escape(c, emit);
        } else if let Some(short) = short {
            emit(short);
        } else if c < ' ' || (style.ascii_only && !c.is_ascii()) {
            unicode_escape(c, emit);
        } else {
            emit(c.encode_utf8(&mut buf));
        }
    }
}

fn unicode_escape(c: char, emit: Emit<'_>) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units).iter() {
        emit("\\u");
        for shift in [12, 8, 4, 0] {
            emit(LOWER_HEX[usize::from((unit >> shift) & 0xF)]);
        }
    }
}

/// The inside of `format!("{value:?}")`: how a log line or an error's `Debug`
/// shows the value (`\"`, `\\`, `\n`, `\u{1b}`…).
pub(super) fn debug_form(value: &str) -> Zeroizing<String> {
    // `Debug` for `str` writes a quote first and last: the writer skips the
    // first, `pop` drops the last in place (no reallocation, nothing unwiped).
    let mut out = build(|emit| {
        let _ = write!(EmitWriter { emit, skip: 1 }, "{value:?}");
    });
    out.pop();
    out
}

/// Forwards formatter output to an [`Emit`], skipping its first `skip` bytes.
struct EmitWriter<'a> {
    emit: Emit<'a>,
    skip: usize,
}

impl fmt::Write for EmitWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let from = self.skip.min(s.len());
        self.skip -= from;
        match s.get(from..) {
            Some(rest) if !rest.is_empty() => (self.emit)(rest),
            _ => {}
        }
        Ok(())
    }
}
