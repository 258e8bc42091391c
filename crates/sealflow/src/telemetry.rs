//! Structured logging with `tracing`: text by default, JSON with `SEALFLOW_LOG_FORMAT=json`,
//! filtered by `SEALFLOW_LOG` (e.g. `info,sealflow=debug`), written to stderr so stdout stays
//! free for command output.
//!
//! No line may carry a secret a run resolved, at any level, whoever emits it. Two measures:
//!
//! - **Every line is masked** before it is written: the writer runs each formatted line through
//!   the redactors of the runs in flight ([`LiveRedactors`], which the engine's workers fill as
//!   they resolve secrets and empty when a run stops executing). This covers our own lines and
//!   any dependency's, in both formats, whatever field or message the value sits in.
//! - **The outbound HTTP stack's debug and trace lines are never written**, whatever
//!   `SEALFLOW_LOG` says (`reqwest`, `hyper`, `hyper_util`, `h2`, `rustls`…): they name
//!   connection destinations (a host templated from a secret, its address) and can be emitted
//!   after the run that opened the connection has finished (a pooled connection is logged when
//!   it is reused by another run or evicted), when the masking writer no longer knows the value.
//!   Their info, warn and error lines are kept, and masked like every other.
//!
//! Residual copies: `tracing-subscriber` formats a line into its own buffer before the writer
//! masks it; that buffer is reused, not wiped.

use std::io::{self, IsTerminal, Write};

use sealflow_redact::LiveRedactors;
use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::{self, MakeWriter};
use tracing_subscriber::prelude::*;
use zeroize::Zeroize;

/// Crates of the outbound HTTP stack whose debug and trace lines are dropped (see the module
/// docs). A target matches a crate when it is the crate's name or starts with `name::`.
const HTTP_CLIENT_CRATES: [&str; 8] = [
    "reqwest",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "h2",
    "rustls",
    "tokio_rustls",
    "webpki",
];

/// Installs the global subscriber; returns the set the engine must publish its runs' redactors
/// in (put it in `EngineConfig::live_secrets`).
pub fn init() -> LiveRedactors {
    let live = LiveRedactors::new();
    let filter = EnvFilter::try_from_env("SEALFLOW_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let json = std::env::var("SEALFLOW_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let layer = fmt::layer()
        .with_writer(MaskingWriter {
            live: live.clone(),
            out: io::stderr,
        })
        .with_ansi(io::stderr().is_terminal())
        .with_target(false);
    let quiet_http_client = filter_fn(|meta| !is_http_client_detail(meta.target(), meta.level()));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests embedding the server) is harmless; ignore it.
    let _ = if json {
        registry
            .with(layer.json().with_filter(quiet_http_client))
            .try_init()
    } else {
        registry.with(layer.with_filter(quiet_http_client)).try_init()
    };
    live
}

/// Whether a line of `target` at `level` is a debug or trace line of the outbound HTTP stack.
fn is_http_client_detail(target: &str, level: &Level) -> bool {
    *level > Level::INFO
        && HTTP_CLIENT_CRATES.iter().any(|name| {
            target
                .strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Hands out one [`MaskedLine`] per event, writing to what `out` makes (stderr).
struct MaskingWriter<M> {
    live: LiveRedactors,
    out: M,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingWriter<M> {
    type Writer = MaskedLine<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedLine {
            live: &self.live,
            buf: Vec::new(),
            out: self.out.make_writer(),
        }
    }
}

/// Collects one formatted event; masks it and writes it out when dropped (the formatter writes
/// an event whole, then drops its writer).
struct MaskedLine<'a, W: Write> {
    live: &'a LiveRedactors,
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Write for MaskedLine<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for MaskedLine<'_, W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let masked = self.live.redact(&text);
        let _ = self.out.write_all(masked.as_bytes());
        drop(masked);
        drop(text);
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sealflow_redact::Redactor;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_masked_with_the_redactors_of_the_runs_in_flight() {
        let live = LiveRedactors::new();
        let captured = Captured::default();
        let sink = captured.clone();
        let writer = MaskingWriter {
            live: live.clone(),
            out: move || sink.clone(),
        };
        let subscriber =
            tracing_subscriber::registry().with(fmt::layer().with_writer(writer).with_ansi(false).json());
        let secret = "Run-Secret-Value-123";
        tracing::subscriber::with_default(subscriber, || {
            let slot = live.slot();
            let mut redactor = Redactor::new();
            redactor.add(secret);
            slot.update(&redactor);
            tracing::info!(host = %secret.to_lowercase(), "connecting");
            tracing::debug!(quoted = ?format!("a \"{secret}\""), "debug form");
            drop(slot);
            tracing::info!(after = secret, "the run ended");
        });
        let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        for line in &lines[..2] {
            assert!(line.contains("[REDACTED]"), "{line}");
            assert!(
                !line.to_ascii_lowercase().contains(&secret.to_ascii_lowercase()),
                "{line}"
            );
        }
        // Once the run stopped executing, its values are no longer known to the writer.
        assert!(lines[2].contains(secret), "{}", lines[2]);
    }

    #[test]
    fn only_the_http_stacks_debug_and_trace_lines_are_dropped() {
        for target in [
            "hyper_util::client::legacy::pool",
            "reqwest::connect",
            "rustls",
            "h2::codec",
        ] {
            assert!(is_http_client_detail(target, &Level::DEBUG), "{target}");
            assert!(is_http_client_detail(target, &Level::TRACE), "{target}");
            assert!(!is_http_client_detail(target, &Level::INFO), "{target}");
            assert!(!is_http_client_detail(target, &Level::WARN), "{target}");
        }
        for target in [
            "sealflow::engine",
            "sealflow_egress",
            "hyperlocal",
            "h2o",
            "sqlx::query",
        ] {
            assert!(!is_http_client_detail(target, &Level::TRACE), "{target}");
        }
    }
}
