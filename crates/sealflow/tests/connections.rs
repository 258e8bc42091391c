//! Connection limits with real half-open TCP sockets on loopback: the header-read timeout, the
//! body and idle timeouts, and the connection cap. Counts are small and every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes: then `None`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok().map(|()| got)
}

/// The JSON body of a raw HTTP/1.1 response.
fn body_of(response: &[u8]) -> Value {
    let text = String::from_utf8_lossy(response);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.connections.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut sockets = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        // Some send part of a head, some nothing at all.
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        sockets.push(s);
    }
    let started = Instant::now();
    for s in &mut sockets {
        let closed = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a half-open connection stayed open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server still answers.
    let (status, _) = split(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_in_the_json_shape() {
    let app = TestApp::spawn_with(|c| c.body_timeout = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/workflows/secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        app.admin_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_error_shape(&body_of(&response), "request_timeout");
    assert!(app.secret_names(&app.admin_key).await.is_empty());
}

#[tokio::test]
async fn a_connection_where_nothing_moves_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.connections.idle_timeout = Duration::from_millis(400);
        c.body_timeout = Duration::from_secs(30);
    })
    .await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /api/workflows/secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the stalled connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connections_over_the_cap_get_a_json_503_and_slots_free_up_when_others_close() {
    let app = TestApp::spawn_with(|c| {
        c.connections.max_connections = 4;
        c.connections.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    // Give the accept loop time to take all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&app)).await.unwrap();
    let response = read_until_closed(&mut extra, Duration::from_secs(5))
        .await
        .expect("refused at once");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 1"), "{text}");
    assert_error_shape(&body_of(&response), "service_unavailable");

    // Closing the held connections frees their slots.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let client = reqwest::Client::new();
        if let Ok(res) = client.get(app.url("/healthz")).send().await {
            if res.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "slots did not free up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keep_alive_connections_still_serve_several_requests() {
    let app = TestApp::spawn().await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
}

/// Sends `request` on a fresh connection and returns the whole answer (the server closes).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    // The server may answer (and close) before it has read everything: ignore write errors.
    let _ = s.write_all(request).await;
    let response = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("the server answers and closes");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn requests_hyper_refuses_before_routing_get_json_errors() {
    let app = TestApp::spawn().await;
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()
    );
    // Twice the head cap (hyper checks it between reads).
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(840_000)
    );
    let cases: [(&str, Vec<u8>, &str, &str); 5] = [
        ("garbage", b"GARBAGE\r\n\r\n".to_vec(), "400", "invalid_request"),
        (
            "TLS to a plain port",
            b"\x16\x03\x01\x00\x05hello".to_vec(),
            "400",
            "invalid_request",
        ),
        ("100 KB path", long_path.into_bytes(), "414", "uri_too_long"),
        (
            "150 headers",
            many_headers.into_bytes(),
            "431",
            "headers_too_large",
        ),
        (
            "840 KB header",
            huge_header.into_bytes(),
            "431",
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let text = raw_exchange(&app, &request).await;
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {text}"
        );
        let body = body_of(text.as_bytes());
        assert!(!assert_error_shape(&body, code).is_empty(), "{what}: {text}");
    }
    // The server still answers normally afterwards, and an ordinary error keeps its own body.
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = reqwest::get(app.url("/no/such/route")).await.unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_error_shape(&body, "not_found");
}
