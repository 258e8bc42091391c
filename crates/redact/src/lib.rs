//! Masks the secrets a workflow run resolved in everything sealflow records.
//!
//! A webhook step sends secrets to a remote service, and whatever comes back
//! (response bodies, error texts, log lines) may echo them: raw, or in the
//! encoding they travelled in. [`Redactor`] is given every value of every
//! secret the run resolved ([`Redactor::add`]) and replaces each occurrence,
//! in any of the encodings below, with [`MARKER`] ([`Redactor::redact_str`],
//! [`Redactor::redact_json`]).
//!
//! # What is masked
//!
//! For each value of at least [`MIN_FREE_TEXT_LEN`] bytes, these forms become
//! patterns (forms identical to one another are kept once):
//!
//! - the raw value;
//! - JSON string escapes, without the quotes: `serde_json`'s (also JavaScript's
//!   `JSON.stringify`), the ASCII-only `\uXXXX` form (Python's `json.dumps`),
//!   PHP's (`\/` too), Go's (`<`, `>`, `&` as `\u003c`…), .NET's (uppercase
//!   hex, quotes and `+` as `\u0022`…), and the value escaped twice (a JSON
//!   document echoed inside a JSON string);
//! - percent-encodings, uppercase and lowercase hex: RFC 3986 (everything but
//!   `A-Za-z0-9-._~`, as a path segment or query component), the same with
//!   spaces as `+` (`quote_plus`, Go's `QueryEscape`), `application/x-www-form-urlencoded`,
//!   `encodeURIComponent`, and the WHATWG URL parser's lighter sets; when the
//!   value has few distinct punctuation characters, every combination of
//!   which of them are escaped (clients differ on exactly that);
//! - base64 of the value, standard and URL-safe alphabets, with and without
//!   padding;
//! - for values of at least [`MIN_EMBEDDED_BASE64_LEN`] bytes, the value
//!   *inside a larger base64 blob*: the characters determined by the value
//!   alone, for each of the three possible alignments, plus the one base64
//!   character on each side that carries some of its bits. This is what masks
//!   the password inside an HTTP Basic `Authorization` header echoed back.
//!
//! Every occurrence is masked, overlapping and adjacent ones included: the
//! union of all matches becomes one [`MARKER`] per contiguous run, so an
//! encoded form containing the raw form is masked whole, and no part of a
//! secret survives between two markers.
//!
//! # Limits
//!
//! - Values shorter than [`MIN_FREE_TEXT_LEN`] bytes are not masked at all:
//!   masking `"1"` or `"yes"` everywhere would destroy the records.
//! - A value shorter than [`MIN_EMBEDDED_BASE64_LEN`] bytes is found in base64
//!   only when it is encoded alone (its standalone encodings); inside a
//!   larger blob its few characters would match unrelated data too often. For
//!   HTTP Basic with a short password, add `user:password` itself as a value
//!   ([`Redactor::add_basic_auth`] does both), so the header's base64 matches
//!   as a standalone encoding.
//! - Base64 broken into lines (MIME), hex, compression, encryption, hashing,
//!   and layered encodings other than those listed (say, base64 of the
//!   percent-encoded value) are not detected; neither is a value that the
//!   remote service transformed (truncated, case-changed, split).
//! - Percent-encodings with mixed-case hex digits are not matched.
//!
//! # Memory
//!
//! Patterns are held in [`zeroize::Zeroizing`] strings, wiped when the
//! redactor is dropped, and built into buffers sized exactly so that no
//! reallocation leaves an unwiped copy behind. The Aho-Corasick automaton
//! built from them cannot be wiped: its transition tables encode the patterns
//! and are freed without zeroing, so a memory dump taken after the redactor
//! is dropped may still reveal them. Short-lived copies on the stack (single
//! characters while encoding) are not wiped either. This is best-effort
//! hygiene, not protection against an attacker who can read process memory.

mod encode;
mod json;
mod redactor;

pub use redactor::Redactor;

/// What every masked occurrence is replaced with.
pub const MARKER: &str = "[REDACTED]";

/// Values shorter than this (in bytes) are not masked in free text (too many
/// false positives: "1", "yes"…).
pub const MIN_FREE_TEXT_LEN: usize = 4;

/// Values at least this long (in bytes) are also found inside larger base64
/// blobs; shorter ones would leave too few characters to match reliably.
pub const MIN_EMBEDDED_BASE64_LEN: usize = 8;
