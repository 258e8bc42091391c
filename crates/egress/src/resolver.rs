//! A `reqwest` DNS resolver that only hands out addresses the policy allows.
//!
//! Filtering inside the resolver closes the DNS-rebinding gap: the addresses
//! `reqwest` connects to are exactly the ones checked here, with no second
//! lookup in between.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::allow::AllowList;
use crate::check::check_ip;
use crate::error::EgressError;

/// Resolves with the system resolver, then drops forbidden addresses unless a
/// CIDR entry allows them or the host itself is allow-listed by name.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    /// A resolver applying `allow`.
    pub fn new(allow: Arc<AllowList>) -> Self {
        Self { allow }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| EgressError::Connect {
                    host: host.clone(),
                    detail: format!("DNS lookup failed: {e}"),
                })?
                .collect();
            let addrs = filter_addrs(&host, resolved, &allow)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Keeps the addresses `host` may be connected to.
///
/// Every address is kept when `host` is allow-listed by name; otherwise
/// forbidden addresses not covered by a CIDR entry are dropped. Fails with
/// [`EgressError::Refused`] (naming the first dropped address and why) when
/// nothing is left, or [`EgressError::Connect`] when there was nothing to
/// begin with.
pub fn filter_addrs(
    host: &str,
    addrs: Vec<SocketAddr>,
    allow: &AllowList,
) -> Result<Vec<SocketAddr>, EgressError> {
    if addrs.is_empty() {
        return Err(EgressError::Connect {
            host: host.to_owned(),
            detail: "DNS lookup returned no addresses".into(),
        });
    }
    if allow.allows_host(host) {
        return Ok(addrs);
    }
    let mut first_refusal = None;
    let mut dropped = 0usize;
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| match check_ip(addr.ip(), allow) {
            Ok(()) => true,
            Err(reason) => {
                dropped += 1;
                first_refusal.get_or_insert_with(|| format!("{} is {reason}", addr.ip()));
                false
            }
        })
        .collect();
    if dropped > 0 {
        tracing::debug!(
            host,
            dropped,
            kept = kept.len(),
            "egress resolver dropped forbidden addresses"
        );
    }
    match first_refusal {
        Some(mut reason) if kept.is_empty() => {
            if dropped > 1 {
                reason.push_str(&format!(" (and {} more refused addresses)", dropped - 1));
            }
            Err(EgressError::Refused {
                host: host.to_owned(),
                reason,
            })
        }
        _ => Ok(kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn drops_forbidden_keeps_public() {
        let got = filter_addrs(
            "mixed.test",
            addrs(&["10.0.0.1", "93.184.216.34", "::1"]),
            &AllowList::empty(),
        )
        .unwrap();
        assert_eq!(got, addrs(&["93.184.216.34"]));
    }

    #[test]
    fn all_forbidden_is_refused_with_reason() {
        let err = filter_addrs("localhost", addrs(&["127.0.0.1"]), &AllowList::empty()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "egress to \"localhost\" refused: 127.0.0.1 is a loopback address"
        );
        let err = filter_addrs("localhost", addrs(&["::1", "127.0.0.1"]), &AllowList::empty()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "egress to \"localhost\" refused: ::1 is a loopback address (and 1 more refused addresses)"
        );
    }

    #[test]
    fn allow_list_by_cidr_and_name() {
        let allow = AllowList::parse("127.0.0.1/32, *.corp.example").unwrap();
        let got = filter_addrs("localhost", addrs(&["::1", "127.0.0.1"]), &allow).unwrap();
        assert_eq!(got, addrs(&["127.0.0.1"]));
        let got = filter_addrs("db.corp.example", addrs(&["10.1.1.1", "fd00::1"]), &allow).unwrap();
        assert_eq!(got.len(), 2);
        assert!(filter_addrs("corp.example", addrs(&["10.1.1.1"]), &allow).is_err());
    }

    #[test]
    fn empty_lookup_is_a_connect_error() {
        let err = filter_addrs("nothing.test", Vec::new(), &AllowList::empty()).unwrap_err();
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn resolves_localhost_through_the_trait() {
        let resolver = GuardedResolver::new(Arc::new(AllowList::empty()));
        let err = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        let err = err.downcast_ref::<EgressError>().expect("our error type");
        assert!(err.is_refused(), "{err}");

        let allowed = GuardedResolver::new(Arc::new(AllowList::parse("localhost").unwrap()));
        let addrs: Vec<_> = allowed
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }
}
