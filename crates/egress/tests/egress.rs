//! End-to-end tests of `EgressClient` against hand-rolled HTTP/1.1 servers on
//! loopback addresses only (127.0.0.0/8, ::1).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use sealflow_egress::{
    read_body_capped, AllowList, EgressClient, EgressError, EgressOptions, OutboundRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test server answers.
#[derive(Clone)]
enum Reply {
    /// These raw bytes, then close.
    Raw(Vec<u8>),
    /// Accept, read the request, never answer.
    Hang,
    /// Send these bytes (a head promising more body), then stall.
    PartialThenHang(Vec<u8>),
}

/// A loopback server counting accepted connections and recording request heads.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(ip: &str, reply: Reply) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (h, r) = (Arc::clone(&hits), Arc::clone(&heads));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(stream, reply.clone(), Arc::clone(&r)));
            }
        });
        Self { addr, hits, heads }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn last_head(&self) -> String {
        self.heads.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

async fn handle(mut stream: TcpStream, reply: Reply, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&buf).into_owned());
    match reply {
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang | Reply::PartialThenHang(_) => {
            if let Reply::PartialThenHang(bytes) = reply {
                let _ = stream.write_all(&bytes).await;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        }
    }
}

fn ok(body: &[u8]) -> Reply {
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    Reply::Raw(raw)
}

fn redirect(location: &str) -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_bytes(),
    )
}

fn client(allow: &str) -> EgressClient {
    EgressClient::new(EgressOptions {
        allow_list: AllowList::parse(allow).unwrap(),
        ..EgressOptions::default()
    })
    .unwrap()
}

async fn get(
    client: &EgressClient,
    url: &str,
    follow: bool,
) -> Result<sealflow_egress::Response, EgressError> {
    client.send(OutboundRequest::new(Method::GET, url), follow).await
}

fn expect_refused(result: Result<sealflow_egress::Response, EgressError>) -> EgressError {
    match result {
        Err(e @ EgressError::Refused { .. }) => e,
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(resp) => panic!("expected a refusal, got HTTP {}", resp.status()),
    }
}

#[tokio::test]
async fn loopback_literal_refused_before_connecting() {
    let server = Server::start("127.0.0.1", ok(b"hi")).await;
    let c = client("");
    let err = expect_refused(
        get(
            &c,
            &format!("http://127.0.0.1:{}/?token=hunter2", server.port()),
            true,
        )
        .await,
    );
    assert_eq!(
        err.to_string(),
        "egress to \"127.0.0.1\" refused: 127.0.0.1 is a loopback address"
    );
    assert!(!err.is_retryable());
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn localhost_refused_by_resolver() {
    let server = Server::start("127.0.0.1", ok(b"hi")).await;
    let c = client("");
    for follow in [true, false] {
        let err = expect_refused(get(&c, &format!("http://localhost:{}/", server.port()), follow).await);
        let msg = err.to_string();
        assert!(
            msg.starts_with("egress to \"localhost\" refused: ") && msg.contains("is a loopback address"),
            "{msg}"
        );
    }
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn other_loopback_spellings_refused() {
    let v4 = Server::start("127.0.0.1", ok(b"hi")).await;
    // ::1 may be unavailable in some sandboxes; the v4 server still counts.
    let v6 = match TcpListener::bind(("::1", 0)).await {
        Ok(l) => {
            drop(l);
            Some(Server::start("::1", ok(b"hi")).await)
        }
        Err(_) => None,
    };
    let p = v4.port();
    let p6 = v6.as_ref().map_or(p, Server::port);
    let c = client("");
    for url in [
        format!("http://[::1]:{p6}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        format!("https://127.0.0.1:{p}/"),
    ] {
        let err = expect_refused(get(&c, &url, true).await);
        assert!(
            err.to_string().contains("loopback") || err.to_string().contains("unspecified"),
            "{url}: {err}"
        );
    }
    assert_eq!(v4.hits(), 0);
    assert_eq!(v6.map_or(0, |s| s.hits()), 0);
}

#[tokio::test]
async fn allow_listed_cidr_succeeds() {
    let server = Server::start("127.0.0.1", ok(b"hello")).await;
    let c = client("127.0.0.1/32");
    let resp = get(&c, &format!("http://127.0.0.1:{}/hook", server.port()), true)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (body, truncated) = read_body_capped(resp, 1024).await.unwrap();
    assert_eq!(&body[..], b"hello");
    assert!(!truncated);
    assert_eq!(server.hits(), 1);
    let head = server.last_head().to_ascii_lowercase();
    assert!(
        head.contains(&format!("user-agent: sealflow/{}", env!("CARGO_PKG_VERSION"))),
        "{head}"
    );
}

#[tokio::test]
async fn redirect_hop_to_other_loopback_refused() {
    let target = Server::start("127.0.0.2", ok(b"second")).await;
    let origin = Server::start(
        "127.0.0.1",
        redirect(&format!("http://127.0.0.2:{}/", target.port())),
    )
    .await;
    let c = client("127.0.0.1/32");
    let err = expect_refused(get(&c, &format!("http://127.0.0.1:{}/", origin.port()), true).await);
    assert_eq!(
        err.to_string(),
        "egress to \"127.0.0.2\" refused: 127.0.0.2 is a loopback address"
    );
    assert_eq!(origin.hits(), 1);
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn redirect_hop_to_other_scheme_not_followed() {
    // A scheme with an authority reaches our redirect policy and is refused,
    // even though the allow-list covers the address.
    let gopher = Server::start("127.0.0.1", ok(b"no")).await;
    let origin = Server::start(
        "127.0.0.1",
        redirect(&format!("gopher://127.0.0.1:{}/", gopher.port())),
    )
    .await;
    let c = client("127.0.0.1/32");
    let err = expect_refused(get(&c, &format!("http://127.0.0.1:{}/", origin.port()), true).await);
    assert!(
        err.to_string().contains("scheme \"gopher\" is not allowed"),
        "{err}"
    );
    assert_eq!(gopher.hits(), 0);

    // `file:///…` is not even a valid HTTP URI, so the redirect layer hands the
    // 3xx back unfollowed.
    let origin = Server::start("127.0.0.1", redirect("file:///etc/passwd")).await;
    let resp = get(&c, &format!("http://127.0.0.1:{}/", origin.port()), true)
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
}

#[tokio::test]
async fn allowed_redirect_is_followed_without_referer() {
    let target = Server::start("127.0.0.2", ok(b"second")).await;
    let origin = Server::start(
        "127.0.0.1",
        redirect(&format!("http://127.0.0.2:{}/next", target.port())),
    )
    .await;
    let c = client("127.0.0.0/8");
    let resp = get(
        &c,
        &format!("http://127.0.0.1:{}/?token=hunter2", origin.port()),
        true,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().host_str(), Some("127.0.0.2"));
    assert_eq!(target.hits(), 1);
    let head = target.last_head().to_ascii_lowercase();
    assert!(!head.contains("referer") && !head.contains("hunter2"), "{head}");
}

#[tokio::test]
async fn too_many_redirects() {
    // The server redirects to itself; its port is only known after binding,
    // so it redirects via a relative URL.
    let origin = Server::start("127.0.0.1", redirect("/again")).await;
    let c = EgressClient::new(EgressOptions {
        allow_list: AllowList::parse("127.0.0.1/32").unwrap(),
        max_redirects: 2,
        ..EgressOptions::default()
    })
    .unwrap();
    let err = get(&c, &format!("http://127.0.0.1:{}/", origin.port()), true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EgressError::TooManyRedirects { max: 2, .. }),
        "{err:?}"
    );
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn localhost_allowed_by_name() {
    let server = Server::start("127.0.0.1", ok(b"named")).await;
    let c = client("localhost");
    let resp = get(&c, &format!("http://localhost:{}/", server.port()), false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&read_body_capped(resp, 1024).await.unwrap().0[..], b"named");
    // The name entry does not exempt the IP literal.
    expect_refused(get(&c, &format!("http://127.0.0.1:{}/", server.port()), false).await);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn no_follow_returns_the_redirect() {
    let target = Server::start("127.0.0.2", ok(b"second")).await;
    let location = format!("http://127.0.0.2:{}/", target.port());
    let origin = Server::start("127.0.0.1", redirect(&location)).await;
    let c = client("127.0.0.0/8");
    let resp = get(&c, &format!("http://127.0.0.1:{}/", origin.port()), false)
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], location.as_str());
    assert_eq!(origin.hits(), 1);
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn capped_read_truncates() {
    let big = vec![b'x'; 200 * 1024];
    let server = Server::start("127.0.0.1", ok(&big)).await;
    let c = client("127.0.0.1/32");
    let url = format!("http://127.0.0.1:{}/", server.port());

    let resp = get(&c, &url, true).await.unwrap();
    let (body, truncated) = read_body_capped(resp, sealflow_egress::DEFAULT_MAX_BODY_BYTES)
        .await
        .unwrap();
    assert_eq!(body.len(), 64 * 1024);
    assert!(truncated);

    let resp = get(&c, &url, true).await.unwrap();
    let (body, truncated) = read_body_capped(resp, 200 * 1024).await.unwrap();
    assert_eq!(body.len(), 200 * 1024);
    assert!(!truncated, "exactly the cap is not truncated");
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = Server::start("127.0.0.1", Reply::Hang).await;
    let c = EgressClient::new(EgressOptions {
        allow_list: AllowList::parse("127.0.0.1/32").unwrap(),
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..EgressOptions::default()
    })
    .unwrap();
    let start = Instant::now();
    let err = get(
        &c,
        &format!("http://127.0.0.1:{}/?token=hunter2", server.port()),
        true,
    )
    .await
    .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, EgressError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.to_string(), "request to \"127.0.0.1\" timed out");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn stalled_body_read_times_out() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial".to_vec();
    let server = Server::start("127.0.0.1", Reply::PartialThenHang(head)).await;
    let c = EgressClient::new(EgressOptions {
        allow_list: AllowList::parse("127.0.0.1/32").unwrap(),
        timeout: Duration::from_millis(300),
        ..EgressOptions::default()
    })
    .unwrap();
    let start = Instant::now();
    let resp = get(&c, &format!("http://127.0.0.1:{}/", server.port()), true)
        .await
        .unwrap();
    let err = read_body_capped(resp, 64 * 1024).await.unwrap_err();
    assert!(matches!(err, EgressError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn per_request_timeout_override() {
    let server = Server::start("127.0.0.1", Reply::Hang).await;
    let c = client("127.0.0.1/32");
    let mut req = OutboundRequest::new(Method::POST, format!("http://127.0.0.1:{}/", server.port()));
    req.timeout = Some(Duration::from_millis(200));
    req.body = Some("payload".into());
    let start = Instant::now();
    let err = c.send(req, false).await.unwrap_err();
    assert!(matches!(err, EgressError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn closed_port_is_a_retryable_connect_error() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = client("127.0.0.1/32");
    let err = get(&c, &format!("http://127.0.0.1:{port}/?token=hunter2"), true)
        .await
        .unwrap_err();
    assert!(matches!(err, EgressError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.starts_with("could not connect to \"127.0.0.1\""), "{msg}");
    assert!(!msg.contains("hunter2") && !msg.contains("http://"), "{msg}");
}

#[tokio::test]
async fn invalid_url_is_not_sent() {
    let c = client("");
    let err = get(&c, "not a url", true).await.unwrap_err();
    assert!(matches!(err, EgressError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.is_retryable());
}
