//! The encoded forms of one secret value that become search patterns.
//!
//! Patterns are matched ignoring ASCII case (see [`crate::Redactor`]), so a
//! form is written in one case only: the value's upper- and lower-case forms,
//! hex in either case, and percent-encodings with any mix of hex-digit cases
//! all match it. Non-ASCII case changes are forms of their own.
//!
//! Every builder runs its writer twice: once to count the output length, once
//! to fill a `Zeroizing` buffer of exactly that capacity, so no reallocation
//! frees an unwiped partial copy of the secret.

use base64::engine::general_purpose::{GeneralPurpose, STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::Config as _;
use base64::Engine as _;
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
    escape::json_forms(value, &mut plain);
    plain(escape::debug_form(value));
    percent::url_forms(value, &mut plain);
    plain(build(|emit| hex(value, emit)));
    if !value.is_ascii() {
        plain(build(|emit| change_case(value, char::to_uppercase, emit)));
        plain(build(|emit| change_case(value, char::to_lowercase, emit)));
    }
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

mod escape;
mod percent;

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

/// The value's bytes in hex (either case matches).
fn hex(value: &str, emit: Emit<'_>) {
    for byte in value.bytes() {
        emit(LOWER_HEX[usize::from(byte >> 4)]);
        emit(LOWER_HEX[usize::from(byte & 0xF)]);
    }
}

/// The value with every character's case changed by `change` (Unicode rules,
/// character by character; ASCII changes are covered by matching anyway).
fn change_case<I: Iterator<Item = char>>(value: &str, change: impl Fn(char) -> I, emit: Emit<'_>) {
    let mut buf = [0u8; 4];
    for c in value.chars() {
        for changed in change(c) {
            emit(changed.encode_utf8(&mut buf));
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
