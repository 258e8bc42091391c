//! URL pre-checks: scheme and IP-literal hosts, which never reach the resolver.
//!
//! `reqwest` connects to IP-literal hosts directly without calling the DNS
//! resolver, so every URL (the initial one and each redirect hop) must pass
//! [`check_url`] first. Hostname URLs pass here and are checked by
//! [`crate::GuardedResolver`] when they are resolved.
//!
//! The `url` crate (which `reqwest` uses too) normalises the WHATWG IPv4
//! spellings of `http`/`https` hosts (`0x7f000001`, `2130706433`, `127.1`,
//! `0177.0.0.1`, percent-encoded digits, a trailing dot) to dotted-quad form,
//! so checking the parsed host covers them.

use std::net::IpAddr;

use reqwest::Url;

use crate::allow::AllowList;
use crate::error::EgressError;
use crate::ip::{forbidden_reason, Forbidden};

/// Decides whether `ip` may be connected to: `Ok` if it is not forbidden or a
/// CIDR entry of `allow` covers it.
pub fn check_ip(ip: IpAddr, allow: &AllowList) -> Result<(), Forbidden> {
    match forbidden_reason(ip) {
        Some(reason) if !allow.allows_ip(ip) => Err(reason),
        _ => Ok(()),
    }
}

/// Refuses URLs whose scheme is not `http`/`https` or whose host is a
/// forbidden IP literal not covered by `allow`. Hostnames are accepted here.
pub fn check_url(url: &Url, allow: &AllowList) -> Result<(), EgressError> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(EgressError::Refused {
            host: url.host_str().map_or_else(|| format!("{scheme}:"), str::to_owned),
            reason: format!("scheme {scheme:?} is not allowed (only http and https)"),
        });
    }
    let ip = match url.host() {
        None => {
            return Err(EgressError::InvalidUrl {
                reason: "URL has no host".into(),
            })
        }
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    check_ip(ip, allow).map_err(|reason| EgressError::Refused {
        host: url.host_str().unwrap_or_default().to_owned(),
        reason: format!("{ip} is {reason}"),
    })
}

/// Parses `raw` and applies [`check_url`]. Parse errors never echo the URL.
pub fn parse_and_check(raw: &str, allow: &AllowList) -> Result<Url, EgressError> {
    let url = Url::parse(raw).map_err(|e| EgressError::InvalidUrl {
        reason: e.to_string(),
    })?;
    check_url(&url, allow)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match parse_and_check(raw, &AllowList::empty()) {
            Err(EgressError::Refused { reason, .. }) => reason,
            other => panic!("{raw}: expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn ip_literal_spellings_are_normalised_and_refused() {
        for raw in [
            "http://127.0.0.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://%31%32%37.0.0.1/",
            "http://127.0.0.1./",
            "https://127.0.0.1:8443/x?token=secret",
        ] {
            let url = Url::parse(raw).unwrap();
            assert_eq!(url.host_str(), Some("127.0.0.1"), "{raw}");
            assert_eq!(refused(raw), "127.0.0.1 is a loopback address", "{raw}");
        }
        assert_eq!(refused("http://0/"), "0.0.0.0 is an unspecified address");
        assert_eq!(
            refused("http://169.254.169.254/latest/meta-data/"),
            "169.254.169.254 is a link-local address"
        );
        assert_eq!(refused("http://[::1]:8080/"), "::1 is a loopback address");
        assert_eq!(refused("http://[::]/"), ":: is an unspecified address");
        assert_eq!(
            refused("http://[::ffff:127.0.0.1]/"),
            "::ffff:127.0.0.1 is a loopback address (IPv4-mapped form of 127.0.0.1)"
        );
        assert!(refused("http://[::ffff:7f00:1]/").starts_with("::ffff:127.0.0.1 is a loopback"));
        assert!(refused("http://[fe80::1]/").contains("link-local"));
        assert!(refused("http://[2002:a9fe:a9fe::]/").contains("6to4"));
    }

    #[test]
    fn refusal_names_host_not_query() {
        let err = parse_and_check("http://10.0.0.1/hook?token=hunter2", &AllowList::empty()).unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "egress to \"10.0.0.1\" refused: 10.0.0.1 is a private address"
        );
        assert!(!msg.contains("hunter2"));
    }

    #[test]
    fn only_http_and_https() {
        for raw in [
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://example.com/",
            "ws://example.com/",
            "data:text/plain,hi",
        ] {
            assert!(refused(raw).contains("is not allowed"), "{raw}");
        }
        let err = parse_and_check("file:///etc/passwd", &AllowList::empty()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "egress to \"file:\" refused: scheme \"file\" is not allowed (only http and https)"
        );
    }

    #[test]
    fn hostnames_and_public_ips_pass() {
        let allow = AllowList::empty();
        for raw in [
            "http://example.com/",
            "https://LOCALHOST/", // checked later by the resolver
            "http://8.8.8.8/",
            "https://[2606:4700:4700::1111]/",
        ] {
            assert!(parse_and_check(raw, &allow).is_ok(), "{raw}");
        }
    }

    #[test]
    fn allow_list_cidr_exempts_literals() {
        let allow = AllowList::parse("127.0.0.1/32, ::1").unwrap();
        assert!(parse_and_check("http://127.0.0.1:9/", &allow).is_ok());
        assert!(parse_and_check("http://2130706433:9/", &allow).is_ok());
        assert!(parse_and_check("http://[::1]:9/", &allow).is_ok());
        assert!(parse_and_check("http://127.0.0.2/", &allow).is_err());
        assert!(parse_and_check("http://[::ffff:127.0.0.1]/", &allow).is_err());
        // A hostname entry never exempts an IP literal.
        let by_name = AllowList::parse("localhost").unwrap();
        assert!(parse_and_check("http://127.0.0.1/", &by_name).is_err());
    }

    #[test]
    fn invalid_urls_do_not_echo_input() {
        for raw in ["not a url secret123", "http://", "http://exa mple.com/secret123"] {
            match parse_and_check(raw, &AllowList::empty()) {
                Err(e @ EgressError::InvalidUrl { .. }) => {
                    assert!(!e.to_string().contains("secret123"), "{e}")
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
