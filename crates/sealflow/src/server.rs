//! The HTTP accept loop: hyper-util's connection builder driven by our own loop, because
//! `axum::serve` reads headers without a deadline and accepts connections without a cap, so a
//! few thousand half-sent requests held the server's sockets and memory for minutes.
//!
//! What bounds a connection here:
//! - **Header read timeout** (hyper's `header_read_timeout`): a request's head must arrive within
//!   it, counted from when the server starts waiting for one (the connection's start, or the end
//!   of the previous response), so it also closes keep-alive connections left idle that long. A
//!   connection that sends no byte at all is held to it by our own timer (hyper's only starts
//!   once the HTTP version has been read).
//! - **Idle timeout**: a connection on which nothing is read or written for this long is closed,
//!   whatever state it is in (a body that stopped arriving, an HTTP/2 connection with no streams).
//!   It must exceed the longest `?wait=` (30 s), which is a request in flight with no bytes moving.
//! - **Connection cap**: at most this many connections are served at once; one more is answered
//!   with a JSON 503 and closed at once, so a flood costs an accept and a write, not a task.
//!
//! Shutdown: when `shutdown` resolves the listener closes, every connection is told to finish
//! (in-flight requests complete, idle ones close), and `serve` returns when they are all gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_http::add_extension::AddExtension;

/// Limits on each connection and on how many are open (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The answer to a connection over the cap, in the API's error shape. Written without waiting: a
/// fresh socket's send buffer always has room for it.
static OVER_CAPACITY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let m = "too many connections; try again";
    let body = serde_json::json!({"error": m, "message": m, "code": "service_unavailable"}).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Serves `app` on `listener` until `shutdown` resolves, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Per-connection failures (reset before accept) and fd exhaustion: keep
                    // serving; back off briefly so EMFILE does not spin the loop.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection refused: at the cap"
            );
            let _ = stream.try_write(&OVER_CAPACITY);
            continue;
        };
        // As axum::serve did: at trace, one line per accepted connection.
        tracing::trace!(%peer, "connection accepted");
        let _ = stream.set_nodelay(true);
        let (io, activity) = Tracked::new(stream);
        // The peer address feeds the per-address sign-in limit (axum's `ConnectInfo`).
        let service = TowerToHyperService::new(AddExtension::new(app.clone(), ConnectInfo(peer)));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let idle_timeout = limits.idle_timeout;
        let header_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!("closing a connection idle for {idle_timeout:?}");
                }
                // Until the first byte, hyper-util is still detecting the protocol version, where
                // hyper's header timeout does not run yet: hold that phase to the same limit.
                () = activity.silent_for(header_timeout) => {
                    tracing::debug!("closing a connection that sent nothing for {header_timeout:?}");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// When bytes last moved on a connection, in milliseconds since it was accepted, and whether
/// any byte has arrived.
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
    heard: Arc<AtomicBool>,
}

impl Activity {
    /// Resolves if no byte has arrived within `limit` of the connection's start; otherwise never.
    async fn silent_for(&self, limit: Duration) {
        tokio::time::sleep_until((self.start + limit).into()).await;
        if self.heard.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once nothing has been read or written for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A TCP stream that records when bytes last moved, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last_ms: Arc<AtomicU64>,
    heard: Arc<AtomicBool>,
}

impl Tracked {
    fn new(inner: TcpStream) -> (Self, Activity) {
        let start = Instant::now();
        let last_ms = Arc::new(AtomicU64::new(0));
        let heard = Arc::new(AtomicBool::new(false));
        let activity = Activity {
            start,
            last_ms: last_ms.clone(),
            heard: heard.clone(),
        };
        (
            Self {
                inner,
                start,
                last_ms,
                heard,
            },
            activity,
        )
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.heard.store(true, Ordering::Relaxed);
            this.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
