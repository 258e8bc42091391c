//! Outbound HTTP for sealflow webhook steps, guarded against SSRF.
//!
//! Every request goes through three checks that share one policy
//! ([`forbidden_reason`] plus the operator's [`AllowList`]):
//!
//! 1. [`check_url`] refuses non-`http(s)` schemes and forbidden IP-literal
//!    hosts before anything is sent (IP literals never reach a resolver);
//! 2. [`GuardedResolver`] resolves hostnames and hands `reqwest` only the
//!    permitted addresses, so the address connected to is the one checked;
//! 3. the redirect policy re-runs [`check_url`] on every hop.
//!
//! [`EgressClient::send`] ties these together; [`read_body_capped`] reads a
//! response without buffering more than a fixed number of bytes.

mod allow;
mod body;
mod check;
mod client;
mod error;
mod ip;
mod resolver;

pub use allow::AllowList;
pub use body::{read_body_capped, DEFAULT_MAX_BODY_BYTES};
pub use check::{check_ip, check_url, parse_and_check};
pub use client::{
    EgressClient, EgressOptions, OutboundRequest, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
};
pub use error::EgressError;
pub use ip::{forbidden_reason, is_forbidden, Embedding, Forbidden, ForbiddenKind};
pub use resolver::{filter_addrs, GuardedResolver};

/// Re-exported so callers can name the response type without depending on
/// `reqwest` directly.
pub use reqwest::{Response, StatusCode, Url};
