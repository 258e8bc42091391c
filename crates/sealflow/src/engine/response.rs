//! Reading a webhook response into what the step records: masked before it is parsed or cut.
//!
//! The cap is on what is kept ([`MAX_RESPONSE_BYTES`]); up to the longest masked form more is
//! read, so that a secret starting before the cut is masked whole instead of kept in part.

use sealflow_egress::{read_body_capped, Response};
use sealflow_redact::Redactor;
use serde_json::Value;

/// Response bytes kept per step.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Most bytes read past the cap so that a secret starting before it is masked whole (patterns
/// of the largest secrets are longer; the cut then hides what it cannot see whole).
const MAX_LOOKAHEAD: usize = 1024 * 1024;

/// Reads the response body and masks it before anything is parsed or cut; returns the body to
/// record and whether it was cut to [`MAX_RESPONSE_BYTES`].
///
/// Up to the cap plus the longest pattern is read, so every secret that starts before the cut
/// is masked whole; a cut, or a reader stopped early, that ends inside a possible secret is
/// masked too (see [`Redactor::redact_capped`]). A body that fits is JSON when it parses, with
/// its secret-bearing numbers masked before parsing ([`Redactor::redact_document`]), else text.
pub(super) async fn read_masked_body(resp: Response, redactor: &Redactor) -> (Value, bool) {
    let lookahead = redactor.max_pattern_len().min(MAX_LOOKAHEAD);
    let (bytes, more) = match read_body_capped(resp, MAX_RESPONSE_BYTES + lookahead).await {
        Ok(read) => read,
        Err(e) => return (Value::Null, e.is_retryable()),
    };
    let complete = !more;
    let text = String::from_utf8_lossy(if complete {
        &bytes
    } else {
        without_partial_char(&bytes)
    });
    if complete && bytes.len() <= MAX_RESPONSE_BYTES {
        if text.is_empty() {
            return (Value::Null, false);
        }
        let body = redactor
            .redact_document(&text)
            .unwrap_or_else(|| Value::String(redactor.redact_str(&text).into_owned()));
        return (body, false);
    }
    let kept = redactor.redact_capped(&text, complete, MAX_RESPONSE_BYTES);
    (Value::String(kept), true)
}

/// `bytes` without a UTF-8 sequence cut short at its end: lossy decoding would turn it into
/// U+FFFD and hide the secret prefix before it from the cut's check.
fn without_partial_char(bytes: &[u8]) -> &[u8] {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needed > back {
            &bytes[..bytes.len() - back]
        } else {
            bytes
        };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utf8_sequence_cut_at_the_end_is_dropped() {
        let text = "ab\u{e9}\u{20ac}\u{1f511}".as_bytes();
        assert_eq!(without_partial_char(text), text);
        for cut in 1..4 {
            let end = text.len() - cut;
            assert_eq!(without_partial_char(&text[..end]), &text[..text.len() - 4]);
        }
        assert_eq!(without_partial_char(b"plain"), b"plain");
        assert_eq!(without_partial_char(&[b'a', 0xC3]), b"a");
    }
}
