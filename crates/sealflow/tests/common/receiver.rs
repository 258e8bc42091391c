//! A real local HTTP receiver for webhook steps: records every request and answers by path.
//!
//! - `/ok…`: 200 with `{"received": true}`.
//! - `/echo…`: 200 echoing the request back: `{"authorization", "authorization_b64", "body", "path"}`.
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
        return axum::Json(
            json!({"authorization": auth, "authorization_b64": b64, "body": body, "path": path}),
        )
        .into_response();
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
