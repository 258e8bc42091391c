//! The guarded outbound HTTP client used by webhook steps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use reqwest::redirect::{Attempt, Policy};
use reqwest::Response;

use crate::allow::AllowList;
use crate::check::{check_url, parse_and_check};
use crate::error::{chain, EgressError};
use crate::resolver::GuardedResolver;

/// `sealflow/<crate version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("sealflow/", env!("CARGO_PKG_VERSION"));

/// Default connect and overall request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default maximum number of redirects followed.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// Settings for [`EgressClient::new`].
#[derive(Debug, Clone)]
pub struct EgressOptions {
    /// Time allowed to establish a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for the whole request, including reading the body
    /// (default 10 s).
    pub timeout: Duration,
    /// `User-Agent` header (default `sealflow/<version>`).
    pub user_agent: String,
    /// Exceptions to the SSRF guard (default empty).
    pub allow_list: AllowList,
    /// Redirects followed by the following client (default 5).
    pub max_redirects: usize,
}

impl Default for EgressOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            allow_list: AllowList::default(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }
}

/// One outbound request. Its `Debug` output shows only the method, the URL's
/// host, header names and the body length, since values may be secrets.
#[derive(Clone)]
pub struct OutboundRequest {
    /// HTTP method.
    pub method: Method,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body, if any.
    pub body: Option<Bytes>,
    /// Overrides the client's overall timeout for this request.
    pub timeout: Option<Duration>,
}

impl OutboundRequest {
    /// A request with no headers, no body and the client's timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }
}

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("host", &host)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Outbound HTTP client with the SSRF guard applied to every connection.
///
/// It holds two `reqwest` clients (rustls, no proxies, no `Referer`) sharing
/// one [`GuardedResolver`]: one follows up to `max_redirects` redirects,
/// re-checking each hop's URL; the other follows none, so a 3xx comes back
/// as the response (use it for requests carrying secrets).
#[derive(Debug, Clone)]
pub struct EgressClient {
    follow: reqwest::Client,
    no_follow: reqwest::Client,
    allow: Arc<AllowList>,
}

impl EgressClient {
    /// Builds the client from `options`.
    pub fn new(options: EgressOptions) -> Result<Self, EgressError> {
        let allow = Arc::new(options.allow_list.clone());
        let hop_allow = Arc::clone(&allow);
        let max = options.max_redirects;
        let follow_policy = Policy::custom(move |attempt: Attempt<'_>| {
            // `previous` starts with the original URL, as in reqwest's own limit.
            if attempt.previous().len() > max {
                let host = attempt.previous()[0].host_str().unwrap_or_default().to_owned();
                return attempt.error(EgressError::TooManyRedirects { host, max });
            }
            match check_url(attempt.url(), &hop_allow) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        Ok(Self {
            follow: build(&options, &allow, follow_policy)?,
            no_follow: build(&options, &allow, Policy::none())?,
            allow,
        })
    }

    /// The allow-list in force.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Checks the URL, then sends `req`, following redirects only if
    /// `follow_redirects`. Any HTTP status (including 3xx when not following)
    /// is returned as a response; read it with [`crate::read_body_capped`].
    pub async fn send(&self, req: OutboundRequest, follow_redirects: bool) -> Result<Response, EgressError> {
        let url = parse_and_check(&req.url, &self.allow)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = if follow_redirects {
            &self.follow
        } else {
            &self.no_follow
        };
        let mut builder = client.request(req.method, url).headers(req.headers);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        if let Some(timeout) = req.timeout {
            builder = builder.timeout(timeout);
        }
        builder
            .send()
            .await
            .map_err(|e| EgressError::from_reqwest(e, &host))
    }
}

fn build(
    options: &EgressOptions,
    allow: &Arc<AllowList>,
    redirect: Policy,
) -> Result<reqwest::Client, EgressError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        // A proxy would resolve the target itself, bypassing the resolver.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(allow))))
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .user_agent(options.user_agent.as_str())
        .redirect(redirect)
        // The Referer would leak the previous URL (and its query) to the next hop.
        .referer(false)
        .build()
        .map_err(|e| EgressError::Build {
            detail: chain(&e.without_url()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o = EgressOptions::default();
        assert_eq!(o.timeout, Duration::from_secs(10));
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        assert_eq!(o.max_redirects, 5);
        assert_eq!(o.user_agent, format!("sealflow/{}", env!("CARGO_PKG_VERSION")));
        assert!(o.allow_list.is_empty());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut req = OutboundRequest::new(Method::POST, "https://hooks.example/x?token=q-secret");
        req.headers
            .insert("authorization", "Bearer h-secret".parse().unwrap());
        req.body = Some(Bytes::from_static(b"b-secret"));
        let dbg = format!("{req:?}");
        assert!(
            dbg.contains("hooks.example") && dbg.contains("authorization"),
            "{dbg}"
        );
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}
