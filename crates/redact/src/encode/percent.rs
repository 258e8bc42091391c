//! Percent-encoded forms of a value: the encoders a request or its echo is
//! likely to have gone through, and, for values with little punctuation,
//! every choice of which punctuation is escaped.
//!
//! Only uppercase hex digits are written: matching ignores ASCII case, which
//! also covers lowercase (`%2f`) and mixed-case (`%2F%3a`) encoders.

use percent_encoding::percent_encode_byte;
use zeroize::Zeroizing;

use super::{build, Emit};

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
const URL_STYLES: [(ByteSet, Space); 13] = [
    // RFC 3986 unreserved only: path segment / query component.
    (byte_set(b"-._~"), Space::Percent),
    // Python's quote_plus, Go's QueryEscape.
    (byte_set(b"-._~"), Space::Plus),
    // application/x-www-form-urlencoded (WHATWG, Java's URLEncoder, URLSearchParams,
    // Ruby's CGI.escape).
    (byte_set(b"*-._"), Space::Plus),
    // PHP's urlencode.
    (byte_set(b"-._"), Space::Plus),
    // Everything but letters and digits (Rust's `percent_encoding::NON_ALPHANUMERIC`).
    (0, Space::Percent),
    (0, Space::Plus),
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

pub(super) fn url_forms(value: &str, out: &mut impl FnMut(Zeroizing<String>)) {
    let mut emit_all =
        |keep: ByteSet, space: Space| out(build(|emit| percent_encode(value, keep, space, emit)));
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
fn percent_encode(value: &str, keep: ByteSet, space: Space, emit: Emit<'_>) {
    let mut buf = [0u8; 4];
    for c in value.chars() {
        let kept = c.is_ascii_alphanumeric() || (c.is_ascii() && keep & (1 << u32::from(c)) != 0);
        match (c, space) {
            (' ', Space::Raw) => emit(" "),
            (' ', Space::Plus) => emit("+"),
            _ if kept => emit(c.encode_utf8(&mut buf)),
            _ => {
                for &byte in c.encode_utf8(&mut buf).as_bytes() {
                    emit(percent_encode_byte(byte));
                }
            }
        }
    }
}
