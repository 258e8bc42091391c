//! JSON for the responses hyper writes by itself.
//!
//! When a request head cannot be parsed (a malformed request line or header, a request target
//! longer than hyper's 65,534-byte limit, a head over the buffer cap or with too many headers),
//! hyper answers on its own with an empty-bodied 400, 414 or 431 and closes the connection; the
//! router never sees the request. Every error the server produces should have the API's JSON
//! shape, so the connection wrapper in `super` swaps such a head for the JSON response built here.
//!
//! A head is hyper's own when it has one of those statuses, `content-length: 0`, and no
//! `x-request-id`: every response that went through the router carries that header (see
//! `crate::http`), so an application response is never rewritten.

use crate::http::ApiError;

/// Most request headers hyper parses in one head; one more is a 431.
pub const MAX_HEADERS: usize = 100;
/// Bytes of request head (request line plus headers) past which it is a 431: hyper's default,
/// set explicitly so the documented cap is the one in force. hyper checks it between reads, so a
/// head up to one read (at most this size again) over it can get through; twice it never does.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's fixed limit on the request target (path and query); longer is a 414.
pub const MAX_TARGET_BYTES: usize = u16::MAX as usize - 1;

/// The JSON response to send instead of `head`, if `head` is a whole response head that hyper
/// wrote for a request it could not parse; `None` for everything else (the common case costs a
/// prefix comparison).
pub fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let error = match status {
        b"400" => ApiError::BadRequest(
            "malformed HTTP request: the request line or a header could not be parsed".to_owned(),
        ),
        b"414" => ApiError::UriTooLong(format!(
            "the request target (path and query) is longer than {MAX_TARGET_BYTES} bytes"
        )),
        b"431" => ApiError::HeadersTooLarge(format!(
            "the request head is too large: at most {MAX_HEADERS} headers and about {} KiB",
            MAX_HEAD_BYTES / 1024
        )),
        _ => return None,
    };
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !text.contains("\r\ncontent-length: 0\r\n") || text.contains("\r\nx-request-id:") {
        return None;
    }
    let parts = error.into_parts();
    Some(raw_json_response(parts.status, parts.code, &parts.message, ""))
}

/// A complete HTTP/1.1 response with the API's error body that closes the connection.
/// `extra_headers` is zero or more `name: value\r\n` lines.
pub fn raw_json_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
    extra_headers: &str,
) -> Vec<u8> {
    let body = serde_json::json!({"error": message, "message": message, "code": code}).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{extra_headers}connection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_heads_are_replaced() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(replacement(hyper).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{json}");
        assert!(json.contains("\"code\":\"uri_too_long\""), "{json}");

        // A router response: it carries a request id.
        let ours = b"HTTP/1.1 400 Bad Request\r\nx-request-id: req_1\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ours).is_none());
        // A body follows, or another status.
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        // Only part of a head.
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
