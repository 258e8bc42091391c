//! The parts of a secret that is a URL, each masked on its own.
//!
//! A whole-URL secret (`"url": "{{secrets.SLACK_WEBHOOK_URL}}"`) is rarely
//! echoed whole: a remote shows its path, its query or one parameter, and the
//! HTTP client turns its userinfo into an `Authorization: Basic` header. So
//! each part that carries the secret becomes a value of its own (with all its
//! encodings): the userinfo (the password, and `user:password`, whose base64
//! is the Basic header), the path (with and without its leading `/`),
//! path segments, the query and each parameter, and the fragment; each as
//! written in the URL and percent-decoded. The scheme, host and port are the
//! destination, not the credential, and stay readable; a secret placed *in*
//! a host (`https://{{secrets.X}}.example.com`) is masked as a value, and
//! matching ignores the case a URL parser gives the host.
//!
//! The user name, path segments, query parameters and the fragment are
//! masked alone only when at least [`MIN_URL_PART_LEN`] bytes long, otherwise
//! as part of the userinfo, path or query they are in: alone, words such as
//! `admin`, `api`, `hooks` or `true` would be masked everywhere.
//!
//! The parsed `url::Url` keeps a copy of the value that is freed without
//! being wiped, like the HTTP client's own copy of the request.

use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use crate::{MIN_FREE_TEXT_LEN, MIN_URL_PART_LEN};

/// The parts of `value` worth masking on their own; empty unless `value` is
/// an absolute URL with a host.
pub(crate) fn url_parts(value: &str) -> Vec<Zeroizing<String>> {
    let mut out = Parts(Vec::new());
    if !value.contains("://") {
        return out.0;
    }
    let Ok(url) = url::Url::parse(value) else {
        return out.0;
    };
    if !url.has_host() {
        return out.0;
    }
    if url.as_str() != value {
        out.push(url.as_str(), MIN_FREE_TEXT_LEN);
    }
    let (user, password) = (url.username(), url.password());
    // A user name is often a plain account name, unless it is the token.
    out.both(user, MIN_URL_PART_LEN);
    if let Some(password) = password {
        out.both(password, MIN_FREE_TEXT_LEN);
    }
    if !user.is_empty() || password.is_some() {
        // What an HTTP client base64-encodes into `Authorization: Basic`.
        for decode in [false, true] {
            let mut pair = Zeroizing::new(String::new());
            pair.push_str(&text(user, decode));
            pair.push(':');
            pair.push_str(&text(password.unwrap_or_default(), decode));
            out.push(&pair, MIN_FREE_TEXT_LEN);
        }
    }
    let path = url.path();
    if path != "/" {
        out.both(path, MIN_FREE_TEXT_LEN);
        out.both(path.trim_start_matches('/'), MIN_FREE_TEXT_LEN);
        for segment in path.split('/') {
            out.both(segment, MIN_URL_PART_LEN);
        }
    }
    if let Some(query) = url.query() {
        out.both(query, MIN_FREE_TEXT_LEN);
        for pair in query.split('&') {
            out.both(pair, MIN_URL_PART_LEN);
            if let Some((_, param)) = pair.split_once('=') {
                out.both(param, MIN_URL_PART_LEN);
                // Form decoding (`+` as a space), as query parsers do.
                out.push(&text(&param.replace('+', " "), true), MIN_URL_PART_LEN);
            }
        }
    }
    if let Some(fragment) = url.fragment() {
        out.both(fragment, MIN_URL_PART_LEN);
    }
    out.0
}

struct Parts(Vec<Zeroizing<String>>);

impl Parts {
    fn push(&mut self, part: &str, min: usize) {
        if part.len() >= min && !self.0.iter().any(|p| p.as_str() == part) {
            self.0.push(Zeroizing::new(part.to_owned()));
        }
    }

    /// The part as written in the URL, and percent-decoded.
    fn both(&mut self, part: &str, min: usize) {
        self.push(part, min);
        self.push(&text(part, true), min);
    }
}

/// `part`, percent-decoded when `decode` (kept as written if that is not UTF-8).
fn text(part: &str, decode: bool) -> Zeroizing<String> {
    let decoded = decode
        .then(|| percent_decode_str(part).decode_utf8().ok())
        .flatten();
    Zeroizing::new(decoded.map_or_else(|| part.to_owned(), |d| d.into_owned()))
}
