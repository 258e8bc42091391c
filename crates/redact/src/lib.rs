//! Masks the secrets a workflow run resolved in everything sealflow records.
//!
//! A webhook step sends secrets to a remote service, and whatever comes back
//! (response bodies, error texts, log lines) may echo them: raw, or in the
//! encoding they travelled in. [`Redactor`] is given every value of every
//! secret the run resolved ([`Redactor::add`]) and replaces each occurrence,
//! in any of the encodings below, with [`MARKER`] ([`Redactor::redact_str`],
//! [`Redactor::redact_json`], [`Redactor::redact_document`] for a response
//! body, [`Redactor::redact_capped`] for one cut to a size cap).
//! [`LiveRedactors`] holds the redactors of the runs in flight, to mask text
//! that belongs to no run (log lines).
//!
//! # What is masked
//!
//! Matching ignores ASCII case throughout, so every form below is also
//! masked upper-cased, lower-cased (a host, which URL parsers lowercase) or
//! in mixed case, and hex digits (in hex or percent-encoding) may be in
//! either case. For each value of at least [`MIN_FREE_TEXT_LEN`] bytes, these
//! forms become patterns (forms identical to one another are kept once):
//!
//! - the raw value, and for a non-ASCII value its Unicode upper- and
//!   lower-case forms;
//! - JSON string escapes, without the quotes: `serde_json`'s (also JavaScript's
//!   `JSON.stringify`), the ASCII-only `\uXXXX` form (Python's `json.dumps`,
//!   Jackson), PHP's (`\/` too), Go's (`<`, `>`, `&` as `\u003c`…), .NET's
//!   (quotes and `+` as `\u0022`…), and the value escaped twice (a JSON
//!   document echoed inside a JSON string); Rust's `Debug` escaping (log
//!   lines and error texts);
//! - percent-encodings: RFC 3986 (everything but `A-Za-z0-9-._~`, as a path
//!   segment or query component), the same with spaces as `+` (`quote_plus`,
//!   Go's `QueryEscape`), `application/x-www-form-urlencoded`, PHP's `urlencode`,
//!   everything but letters and digits (with `%20` or `+`),
//!   `encodeURIComponent`, and the WHATWG URL parser's lighter sets; when the
//!   value has few distinct punctuation characters, every combination of
//!   which of them are escaped (clients differ on exactly that);
//! - the value's bytes in hex;
//! - base64 of the value, standard and URL-safe alphabets, with and without
//!   padding;
//! - for values of at least [`MIN_EMBEDDED_BASE64_LEN`] bytes, the value
//!   *inside a larger base64 blob*: the characters determined by the value
//!   alone, for each of the three possible alignments, plus the one base64
//!   character on each side that carries some of its bits. This is what masks
//!   the password inside an HTTP Basic `Authorization` header echoed back;
//! - base64 broken into lines (MIME's 76 columns with CRLF, PEM's 64 with LF,
//!   any width, also with the breaks JSON-escaped): text is also searched
//!   with line breaks between base64 characters taken out;
//! - for a value that is an absolute URL (a whole-URL secret), each part that
//!   carries it, as a value of its own: the password and `user:password`
//!   (whose base64 is the Basic header an HTTP client makes of the
//!   userinfo), the path with and without its leading `/`, the query, and
//!   the user name, path segments, query parameters and fragment of at least
//!   [`MIN_URL_PART_LEN`] bytes; each as written and percent-decoded. The
//!   scheme, host and port are the destination and stay readable;
//! - in JSON, numbers whose text holds a pattern (a numeric secret echoed as
//!   a number) become the marker string; in a response body, number tokens
//!   are masked before parsing, so a secret never becomes a float.
//!
//! Every occurrence is masked, overlapping and adjacent ones included: the
//! union of all matches becomes one [`MARKER`] per contiguous run, so an
//! encoded form containing the raw form is masked whole, and no part of a
//! secret survives between two markers. A text cut to a cap
//! ([`Redactor::redact_capped`]) is masked before it is cut, and a cut that
//! ends with the start of any pattern hides that end too.
//!
//! # Limits
//!
//! - Values shorter than [`MIN_FREE_TEXT_LEN`] bytes are not masked at all:
//!   masking `"1"` or `"yes"` everywhere would destroy the records (sealflow
//!   refuses to store or send such values).
//! - A value shorter than [`MIN_EMBEDDED_BASE64_LEN`] bytes is found in base64
//!   only when it is encoded alone (its standalone encodings); inside a
//!   larger blob its few characters would match unrelated data too often. For
//!   HTTP Basic with a short password, add `user:password` itself as a value
//!   ([`Redactor::add_basic_auth`] does both; a URL's userinfo is paired
//!   automatically), so the header's base64 matches as a standalone encoding.
//! - Hex with separators, compression, encryption, hashing, and layered
//!   encodings other than those listed (say, base64 of the percent-encoded
//!   value) are not detected; neither is a value that the remote service
//!   transformed (truncated, split, or a number rewritten as `4.8e7`).
//! - ASCII-case-blind matching masks a little more than needed (`ABCD` for a
//!   secret `abcd`): over-masking is the safe side.
//!
//! # Memory
//!
//! Patterns are held in [`zeroize::Zeroizing`] strings, wiped when the
//! redactor is dropped, and built into buffers sized exactly so that no
//! reallocation leaves an unwiped copy behind. The Aho-Corasick automaton
//! built from them cannot be wiped: its transition tables encode the patterns
//! and are freed without zeroing, so a memory dump taken after the redactor
//! is dropped may still reveal them. Parsing a URL value keeps a copy inside
//! `url::Url`, and short-lived copies on the stack (single characters while
//! encoding) are not wiped either. This is best-effort hygiene, not
//! protection against an attacker who can read process memory.

mod document;
mod encode;
mod json;
mod live;
mod parts;
mod redactor;
mod search;

pub use live::{LiveRedactors, LiveSlot};
pub use redactor::Redactor;

/// What every masked occurrence is replaced with.
pub const MARKER: &str = "[REDACTED]";

/// Values shorter than this (in bytes) are not masked in free text (too many
/// false positives: "1", "yes"…).
pub const MIN_FREE_TEXT_LEN: usize = 4;

/// Values at least this long (in bytes) are also found inside larger base64
/// blobs; shorter ones would leave too few characters to match reliably.
pub const MIN_EMBEDDED_BASE64_LEN: usize = 8;

/// The user name, path segments, query parameters and fragment of a URL
/// secret at least this long (in bytes) are masked on their own too; shorter
/// ones (`admin`, `api`, `true`) only as part of the userinfo, path or query
/// they are in.
pub const MIN_URL_PART_LEN: usize = 8;
