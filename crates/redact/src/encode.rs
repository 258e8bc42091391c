//! The encoded forms of one secret value that become search patterns.
//!
//! Every builder runs its writer twice: once to count the output length, once
//! to fill a `Zeroizing` buffer of exactly that capacity, so no reallocation
//! frees an unwiped partial copy of the secret.

use base64::engine::general_purpose::{GeneralPurpose, STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::Config as _;
use base64::Engine as _;
use percent_encoding::percent_encode_byte;
use zeroize::Zeroizing;

use crate::MIN_EMBEDDED_BASE64_LEN;

/// One pattern derived from a secret value.
pub(crate) struct Form {
    /// The text to search for.
    pub(crate) text: Zeroizing<String>,
    /// Whether a match should also cover the base64 character before it, and
    /// the one after it (with any `=` padding): set for forms found inside a
    /// larger base64 blob, whose edge characters mix bits of the secret with
    /// bits of its neighbours.
    pub(crate) widen: Widen,
}

/// Which sides of a match to extend by one base64 character.
#[derive(Clone, Copy, Default)]
pub(crate) struct Widen {
    pub(crate) before: bool,
    pub(crate) after: bool,
}

impl Widen {
    /// Both sides' needs, for a text that is several forms at once.
    pub(crate) fn union(self, other: Self) -> Self {
        Self {
            before: self.before || other.before,
            after: self.after || other.after,
        }
    }
}

/// Every form of `value` worth searching for, possibly with duplicates (the
/// caller keeps each text once).
pub(crate) fn forms(value: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut plain = |text| {
        out.push(Form {
            text,
            widen: Widen::default(),
        })
    };
    plain(build(|emit| emit(value)));
    json_forms(value, &mut plain);
    url_forms(value, &mut plain);
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Some(text) = base64(engine, value.as_bytes()) {
            plain(text);
        }
    }
    if value.len() >= MIN_EMBEDDED_BASE64_LEN {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for offset in 0..3 {
                if let Some(form) = embedded_base64(engine, value.as_bytes(), offset) {
                    out.push(form);
                }
            }
        }
    }
    out
}

/// Receives each piece of an encoded form, in order.
type Emit<'a> = &'a mut dyn FnMut(&str);

/// Runs `write` to measure, then again to fill an exactly sized buffer.
fn build(write: impl Fn(Emit<'_>)) -> Zeroizing<String> {
    let mut len = 0usize;
    write(&mut |piece| len = len.saturating_add(piece.len()));
    let mut out = Zeroizing::new(String::with_capacity(len));
    write(&mut |piece| out.push_str(piece));
    out
}

const LOWER_HEX: [&str; 16] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
];
const UPPER_HEX: [&str; 16] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F",
];

/// How one JSON encoder escapes strings; the ones a remote service is likely
/// to echo with are listed in [`JSON_STYLES`].
struct JsonStyle {
    /// Non-ASCII characters as `\uXXXX` (UTF-16 surrogate pairs above U+FFFF).
    ascii_only: bool,
    /// `\u00E9` rather than `\u00e9`.
    upper_hex: bool,
    /// `/` as `\/`.
    escape_slash: bool,
    /// Characters written as `\uXXXX` even where a short escape exists.
    as_unicode: &'static str,
}

const SERDE_JSON: JsonStyle = JsonStyle {
    ascii_only: false,
    upper_hex: false,
    escape_slash: false,
    as_unicode: "",
};

const JSON_STYLES: [JsonStyle; 6] = [
    // serde_json, JavaScript's JSON.stringify, Ruby's to_json.
    SERDE_JSON,
    // Python's json.dumps (ensure_ascii is its default).
    JsonStyle {
        ascii_only: true,
        upper_hex: false,
        escape_slash: false,
        as_unicode: "",
    },
    // PHP's json_encode defaults.
    JsonStyle {
        ascii_only: true,
        upper_hex: false,
        escape_slash: true,
        as_unicode: "",
    },
    // Go's encoding/json, HTML-safe by default.
    JsonStyle {
        ascii_only: false,
        upper_hex: false,
        escape_slash: false,
        as_unicode: "<>&\u{2028}\u{2029}",
    },
    // Java's Jackson with ESCAPE_NON_ASCII.
    JsonStyle {
        ascii_only: true,
        upper_hex: true,
        escape_slash: false,
        as_unicode: "",
    },
    // .NET's System.Text.Json default encoder.
    JsonStyle {
        ascii_only: true,
        upper_hex: true,
        escape_slash: false,
        as_unicode: "\"'+<>&`\u{7f}",
    },
];

fn json_forms(value: &str, out: &mut impl FnMut(Zeroizing<String>)) {
    for style in &JSON_STYLES {
        out(build(|emit| json_escape(value, style, emit)));
    }
    // A JSON document echoed inside a JSON string (httpbin's "data" field).
    let once = build(|emit| json_escape(value, &SERDE_JSON, emit));
    out(build(|emit| json_escape(&once, &SERDE_JSON, emit)));
}

/// Writes the inside of a JSON string literal holding `value`.
fn json_escape(value: &str, style: &JsonStyle, emit: Emit<'_>) {
    let hex = if style.upper_hex { &UPPER_HEX } else { &LOWER_HEX };
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
            unicode_escape(c, hex, emit);
        } else if let Some(short) = short {
            emit(short);
        } else if c < ' ' || (style.ascii_only && !c.is_ascii()) {
            unicode_escape(c, hex, emit);
        } else {
            emit(c.encode_utf8(&mut buf));
        }
    }
}

fn unicode_escape(c: char, hex: &[&str; 16], emit: Emit<'_>) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units).iter() {
        emit("\\u");
        for shift in [12, 8, 4, 0] {
            emit(hex[usize::from((unit >> shift) & 0xF)]);
        }
    }
}

/// How a percent-encoder writes a space.
#[derive(Clone, Copy)]
enum Space {
    /// Left as is (lenient clients, servers echoing a decoded-then-re-encoded URL).
    Raw,
    /// `%20`.
    Percent,
    /// `+`, as form-urlencoding and `quote_plus` do.
    Plus,
}

/// A set of ASCII bytes, bit `b` for byte `b`.
type ByteSet = u128;

const fn byte_set(bytes: &[u8]) -> ByteSet {
    let mut set = 0;
    let mut i = 0;
    while i < bytes.len() {
        // The mask keeps the shift in range for any byte; callers pass ASCII.
        set |= 1 << (bytes[i] & 0x7f);
        i += 1;
    }
    set
}

/// Printable ASCII punctuation: the bytes encoders disagree about. Letters
/// and digits are never escaped; controls, DEL and non-ASCII bytes always are.
const PUNCT: ByteSet = byte_set(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/// The percent-encoders a request or its echo is likely to have gone through:
/// the punctuation each leaves as is, and what it does with spaces.
const URL_STYLES: [(ByteSet, Space); 10] = [
    // RFC 3986 unreserved only: path segment / query component.
    (byte_set(b"-._~"), Space::Percent),
    // Python's quote_plus, Go's QueryEscape.
    (byte_set(b"-._~"), Space::Plus),
    // application/x-www-form-urlencoded (WHATWG, Java's URLEncoder, URLSearchParams).
    (byte_set(b"*-._"), Space::Plus),
    // JavaScript's encodeURIComponent.
    (byte_set(b"-_.!~*'()"), Space::Percent),
    // JavaScript's encodeURI.
    (byte_set(b"-_.!~*'();/?:@&=+$,#"), Space::Percent),
    // Python's quote (safe="/").
    (byte_set(b"-._~/"), Space::Percent),
    // WHATWG URL parser: query of a special URL.
    (PUNCT & !byte_set(b"\"#<>'"), Space::Percent),
    // WHATWG URL parser: path.
    (PUNCT & !byte_set(b"\"#<>?^`{}"), Space::Percent),
    // WHATWG URL parser: userinfo.
    (PUNCT & !byte_set(b"\"#<>?^`{}/:;=@[\\]|"), Space::Percent),
    // WHATWG URL parser: component (what the `url` crate uses for set_* calls).
    (PUNCT & !byte_set(b"\"#<>?^`{}/:;=@[\\]|$%&+,"), Space::Percent),
];

/// Most escaped/unescaped combinations of a value's distinct punctuation
/// (times the three space styles) enumerated exhaustively; beyond this only
/// [`URL_STYLES`] are used.
const MAX_URL_COMBINATIONS: usize = 64;

fn url_forms(value: &str, out: &mut impl FnMut(Zeroizing<String>)) {
    let mut emit_all = |keep: ByteSet, space: Space| {
        out(build(|emit| percent_encode(value, keep, space, false, emit)));
        out(build(|emit| percent_encode(value, keep, space, true, emit)));
    };
    for (keep, space) in URL_STYLES {
        emit_all(keep, space);
    }
    // Clients differ precisely on which punctuation they escape, so when the
    // value has little of it, cover every choice rather than a list of clients.
    let mut present: Vec<u8> = value
        .bytes()
        .filter(|&b| b < 0x80 && PUNCT & (1 << b) != 0)
        .collect();
    present.sort_unstable();
    present.dedup();
    let spaces: &[Space] = if value.contains(' ') {
        &[Space::Raw, Space::Percent, Space::Plus]
    } else {
        &[Space::Percent]
    };
    let combinations = 1usize
        .checked_shl(u32::try_from(present.len()).unwrap_or(u32::MAX))
        .unwrap_or(usize::MAX);
    if combinations.saturating_mul(spaces.len()) > MAX_URL_COMBINATIONS {
        return;
    }
    for choice in 0..combinations {
        let keep = present
            .iter()
            .enumerate()
            .filter(|&(i, _)| choice & (1 << i) != 0)
            .fold(0, |set, (_, &b)| set | 1 << b);
        for &space in spaces {
            emit_all(keep, space);
        }
    }
}

/// Percent-encodes `value`, leaving letters, digits and the ASCII bytes in
/// `keep` as they are.
fn percent_encode(value: &str, keep: ByteSet, space: Space, lower: bool, emit: Emit<'_>) {
    let mut buf = [0u8; 4];
    for c in value.chars() {
        let kept = c.is_ascii_alphanumeric() || (c.is_ascii() && keep & (1 << u32::from(c)) != 0);
        match (c, space) {
            (' ', Space::Raw) => emit(" "),
            (' ', Space::Plus) => emit("+"),
            _ if kept => emit(c.encode_utf8(&mut buf)),
            _ => {
                for &byte in c.encode_utf8(&mut buf).as_bytes() {
                    if lower {
                        emit("%");
                        emit(LOWER_HEX[usize::from(byte >> 4)]);
                        emit(LOWER_HEX[usize::from(byte & 0xF)]);
                    } else {
                        emit(percent_encode_byte(byte));
                    }
                }
            }
        }
    }
}

/// `bytes` in base64, written straight into an exactly sized wiped buffer.
fn base64(engine: &GeneralPurpose, bytes: &[u8]) -> Option<Zeroizing<String>> {
    let padded = engine.config().encode_padding();
    let len = base64::encoded_len(bytes.len(), padded)?;
    let mut out = Zeroizing::new(String::with_capacity(len));
    engine.encode_string(bytes, &mut out);
    Some(out)
}

/// The base64 characters that depend only on `value` when it starts `offset`
/// bytes (mod 3) into a larger blob: what is left of it wherever it sits.
/// The characters on either side that hold some of its bits too are left to
/// widening.
fn embedded_base64(engine: &GeneralPurpose, value: &[u8], offset: usize) -> Option<Form> {
    let mut shifted = Zeroizing::new(Vec::with_capacity(value.len().checked_add(offset)?));
    shifted.resize(offset, 0);
    shifted.extend_from_slice(value);
    let encoded = base64(engine, &shifted)?;
    // Character i covers bits [6i, 6i + 6); the value covers [8 * offset, 8 * total).
    let first = (8 * offset).div_ceil(6);
    let bits = shifted.len().checked_mul(8)?;
    let core = encoded.get(first..bits / 6).filter(|core| !core.is_empty())?;
    let widen = Widen {
        before: (8 * offset) % 6 != 0,
        after: bits % 6 != 0,
    };
    Some(Form {
        text: build(|emit| emit(core)),
        widen,
    })
}
