//! A real local HTTP receiver for webhook steps: records every request and answers by path.
//!
//! - `/ok…`: 200 with `{"received": true}`.
//! - `/echo…`: 200 echoing the request back: `{"authorization", "authorization_b64", "body", "path",
//!   "query", "url", "headers"}`.
//!
//! Echoes of one value `V` (the request body's `"v"` string field, else the whole body), the ways an
//! attacker's host could send a secret back:
//! - `/number…`: `{"n": V, "list": [1, V], "deep": {"x": V}}` with `V` written as a bare JSON number.
//! - `/text…`: `V` alone as `text/plain` (a numeric one parses as a JSON number).
//! - `/encodings…`: JSON with `V` in hex (both cases), upper and lower case, percent-encoded with
//!   upper, lower and mixed-case hex, and base64 wrapped as MIME (76 columns, CRLF) and PEM (64, LF).
//! - `/mime…`: `V` inside a MIME-wrapped base64 blob, as `text/plain`.
//! - `/big/K…`: a `text/plain` body over the 64 KiB cap whose first 65,536 − K bytes are filler, so
//!   `V` straddles the cut with K bytes before it; `/big/K/b64…` does the same with base64 of `V`.
//! - `/flaky/N…`: 503 for the first N requests to that path, then 200.
//! - `/fail…`: always 500.
//! - `/redirect…`: 302 to `/ok` on the `redirect_to` base.
//! - `/slow/MS…`: waits MS milliseconds, then 200.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }
    pub fn delivery_id(&self) -> String {
        self.header("idempotency-key").unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct Inner {
    seen: Arc<Mutex<Vec<Received>>>,
    redirect_to: Arc<Mutex<Option<String>>>,
}

pub struct Receiver {
    pub base: String,
    inner: Inner,
}

impl Receiver {
    /// Binds on `ip` (e.g. "127.0.0.1") and a free port.
    pub async fn start_on(ip: &str) -> Self {
        let inner = Inner::default();
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind receiver");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, inner }
    }

    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    pub fn redirect_to(&self, base: &str) {
        *self.inner.redirect_to.lock().unwrap() = Some(base.to_owned());
    }

    pub fn seen(&self) -> Vec<Received> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }
}

async fn handle(State(inner): State<Inner>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let received = Received {
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        headers,
        body: body.to_vec(),
    };
    let seen_same_path = {
        let mut seen = inner.seen.lock().unwrap();
        seen.push(received.clone());
        seen.iter().filter(|r| r.path == path).count()
    };
    if path.starts_with("/echo") {
        use base64::Engine as _;
        let auth = received.header("authorization").unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&auth);
        let body = String::from_utf8_lossy(&received.body).into_owned();
        let all: serde_json::Map<String, serde_json::Value> = received
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
            .collect();
        return axum::Json(json!({
            "authorization": auth, "authorization_b64": b64, "body": body, "path": path,
            "query": received.query, "url": uri.to_string(), "headers": all,
        }))
        .into_response();
    }
    if let Some(response) = echo_value(&path, &received.body) {
        return response;
    }
    if let Some(rest) = path.strip_prefix("/flaky/") {
        let failures: usize = rest.split('/').next().unwrap_or("0").parse().unwrap_or(0);
        if seen_same_path <= failures {
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
        return axum::Json(json!({"received": true, "attempt": seen_same_path})).into_response();
    }
    if path.starts_with("/fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken").into_response();
    }
    if path.starts_with("/redirect") {
        let target = inner.redirect_to.lock().unwrap().clone().unwrap_or_default();
        return (StatusCode::FOUND, [("location", format!("{target}/ok"))]).into_response();
    }
    if let Some(rest) = path.strip_prefix("/slow/") {
        let ms: u64 = rest.split('/').next().unwrap_or("0").parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    axum::Json(json!({"received": true})).into_response()
}

/// The value a `/number`, `/text`, `/encodings`, `/mime` or `/big` request asks to have echoed.
fn requested_value(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("v").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// Base64 of `bytes` broken into lines of `width` characters joined by `eol`.
pub fn wrapped_base64(bytes: &[u8], width: usize, eol: &str) -> String {
    use base64::Engine as _;
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = flat
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join(eol)
}

/// Filler, the value, filler: wrapped so that line breaks fall inside the value's characters.
pub fn wrapped_blobs(value: &str, width: usize, eol: &str) -> Vec<String> {
    (0..3)
        .map(|shift| {
            let blob = format!("{}{value}{}", "x".repeat(50 + shift), "y".repeat(30));
            wrapped_base64(blob.as_bytes(), width, eol)
        })
        .collect()
}

fn echo_value(path: &str, body: &[u8]) -> Option<Response> {
    let value = requested_value(body);
    let json_body = |text: String| ([("content-type", "application/json")], text).into_response();
    let text_body = |text: String| ([("content-type", "text/plain")], text).into_response();
    if path.starts_with("/number") {
        return Some(json_body(format!(
            r#"{{"n": {value}, "list": [1, {value}], "deep": {{"x": {value}}}}}"#
        )));
    }
    if path.starts_with("/text") {
        return Some(text_body(value));
    }
    if path.starts_with("/encodings") {
        let upper =
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
        let lower = upper.to_lowercase();
        // Mixed case: the first hex digit of each escape upper, the second lower.
        let mut mixed = String::new();
        let mut digit = 0;
        for c in upper.chars() {
            digit = if c == '%' {
                1
            } else if digit > 0 {
                digit + 1
            } else {
                0
            };
            mixed.push(if digit == 3 { c.to_ascii_lowercase() } else { c });
        }
        return Some(
            axum::Json(json!({
                "hex": hex::encode(&value),
                "HEX": hex::encode_upper(&value),
                "upper": value.to_uppercase(),
                "lower": value.to_lowercase(),
                "percent_upper": upper,
                "percent_lower": lower,
                "percent_mixed": mixed,
                "mime": wrapped_blobs(&value, 76, "\r\n"),
                "pem": wrapped_blobs(&value, 64, "\n"),
            }))
            .into_response(),
        );
    }
    if path.starts_with("/mime") {
        return Some(text_body(wrapped_blobs(&value, 76, "\r\n").join("\r\n\r\n")));
    }
    if let Some(rest) = path.strip_prefix("/big/") {
        let mut parts = rest.split('/');
        let before: usize = parts.next().unwrap_or("0").parse().unwrap_or(0);
        let echoed = match parts.next() {
            Some("b64") => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&value)
            }
            _ => value,
        };
        let cut = 64 * 1024;
        return Some(text_body(format!(
            "{}{echoed}{}",
            ".".repeat(cut - before),
            ".".repeat(512)
        )));
    }
    None
}
