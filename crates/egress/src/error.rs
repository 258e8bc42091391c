//! The crate's single error type, and the mapping from `reqwest` errors.
//!
//! Messages carry at most the target host: never the full URL (its query may
//! hold a secret), request headers or bodies.

use std::error::Error as StdError;

/// Everything that can go wrong sending a webhook request.
///
/// Use [`EgressError::is_retryable`] to decide whether a step may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The SSRF policy refused the destination. Never retry.
    #[error("egress to {host:?} refused: {reason}")]
    Refused {
        /// The URL's host (or `scheme:` when the URL has no host).
        host: String,
        /// Why, e.g. `127.0.0.1 is a loopback address`.
        reason: String,
    },
    /// The URL could not be parsed or has no host.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong, without the URL itself.
        reason: String,
    },
    /// The TCP or TLS connection could not be established (includes DNS
    /// lookup failures). Retryable.
    #[error("could not connect to {host:?}: {detail}")]
    Connect {
        /// The host being connected to.
        host: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The connect or overall timeout elapsed. Retryable.
    #[error("request to {host:?} timed out")]
    Timeout {
        /// The host being talked to.
        host: String,
    },
    /// A redirect chain was longer than allowed.
    #[error("too many redirects (more than {max}) starting from {host:?}")]
    TooManyRedirects {
        /// The host of the original request.
        host: String,
        /// The configured maximum.
        max: usize,
    },
    /// Any other transport error (protocol error, connection reset while
    /// reading, …).
    #[error("transport error talking to {host:?}: {detail}")]
    Transport {
        /// The host being talked to.
        host: String,
        /// The underlying error chain.
        detail: String,
    },
    /// The egress allow-list setting has a bad entry.
    #[error("invalid egress allow-list entry {entry:?}: {reason}")]
    InvalidAllowList {
        /// The offending entry, trimmed.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {detail}")]
    Build {
        /// The underlying error chain.
        detail: String,
    },
}

impl EgressError {
    /// Whether retrying the same request might succeed (connect errors and
    /// timeouts). Policy refusals and invalid URLs are never retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Timeout { .. })
    }

    /// Whether the SSRF policy refused the request.
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// Converts a `reqwest` error, recovering our own errors raised inside the
    /// resolver or redirect policy. `host` is used when the error has no URL.
    pub(crate) fn from_reqwest(err: reqwest::Error, host: &str) -> Self {
        let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(ours) = e.downcast_ref::<EgressError>() {
                return ours.clone();
            }
            source = e.source();
        }
        let host = err.url().and_then(|u| u.host_str()).unwrap_or(host).to_owned();
        let err = err.without_url();
        if err.is_timeout() {
            Self::Timeout { host }
        } else if err.is_connect() {
            Self::Connect {
                host,
                detail: chain(&err),
            }
        } else if err.is_builder() {
            Self::InvalidUrl { reason: chain(&err) }
        } else {
            Self::Transport {
                host,
                detail: chain(&err),
            }
        }
    }
}

/// Joins an error and its sources with `": "`. Callers strip URLs first.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let msg = e.to_string();
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability() {
        let host = String::from("h");
        assert!(EgressError::Timeout { host: host.clone() }.is_retryable());
        assert!(EgressError::Connect {
            host: host.clone(),
            detail: String::new()
        }
        .is_retryable());
        let refused = EgressError::Refused {
            host,
            reason: "x".into(),
        };
        assert!(!refused.is_retryable());
        assert!(refused.is_refused());
        assert!(!EgressError::InvalidUrl { reason: "x".into() }.is_retryable());
    }
}
