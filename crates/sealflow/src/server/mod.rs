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
//! - **Head caps**: at most [`parse_errors::MAX_HEADERS`] headers and
//!   [`parse_errors::MAX_HEAD_BYTES`] bytes of request head (431), and hyper's fixed
//!   [`parse_errors::MAX_TARGET_BYTES`] for the request target (414). hyper answers those, and
//!   malformed heads (400), itself; [`Tracked`] swaps its empty-bodied answers for JSON ones.
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

pub mod parse_errors;

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
    parse_errors::raw_json_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "too many connections; try again",
        "retry-after: 1\r\n",
    )
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
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(parse_errors::MAX_HEADERS)
        .max_buf_size(parse_errors::MAX_HEAD_BYTES);
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

/// A TCP stream that records when bytes last moved, for the idle timeout, and that sends the
/// JSON form of hyper's own error answers (see [`parse_errors`]).
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last_ms: Arc<AtomicU64>,
    heard: Arc<AtomicBool>,
    /// A replacement response not yet fully written, and how much of it has been.
    replacing: Option<(Vec<u8>, usize)>,
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
                replacing: None,
            },
            activity,
        )
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Takes over a write of `head` if it is one of hyper's own error answers: the JSON
    /// replacement is queued and hyper is told its bytes were written.
    fn take_over(&mut self, head: &[u8]) -> bool {
        if self.replacing.is_some() {
            return false;
        }
        match parse_errors::replacement(head) {
            Some(json) => {
                self.replacing = Some((json, 0));
                true
            }
            None => false,
        }
    }

    /// Writes out a queued replacement; ready once it is all written (or there is none).
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((json, written)) = self.replacing.as_mut() {
            if *written == json.len() {
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &json[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *written += n;
                    self.touch();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Whether a write may be a response head that hyper made (cheap: most writes are not).
fn may_be_hyper_error(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/1.1 4") && bytes.len() < 512
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
        if may_be_hyper_error(data) && this.take_over(data) {
            return Poll::Ready(Ok(data.len()));
        }
        std::task::ready!(this.poll_replacement(cx))?;
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
        // hyper writes a whole head as one slice.
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        if may_be_hyper_error(first)
            && bufs.iter().filter(|b| !b.is_empty()).count() == 1
            && this.take_over(first)
        {
            return Poll::Ready(Ok(first.len()));
        }
        std::task::ready!(this.poll_replacement(cx))?;
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
        let this = self.get_mut();
        std::task::ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
