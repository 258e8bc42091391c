//! The operator's egress allow-list: exceptions to the SSRF guard.
//!
//! The setting is a comma-separated list. Each entry is one of:
//!
//! * a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a bare IP address (taken as
//!   `/32` or `/128`): addresses inside it may be connected to even though the
//!   guard would refuse them. Host bits must be zero (`10.0.0.1/8` is an
//!   error), so that typos are caught. Matching is on the exact address family
//!   written: `127.0.0.1/32` does not allow `::ffff:127.0.0.1`.
//! * a hostname (`intranet.example.com`): that host, compared
//!   case-insensitively and ignoring a trailing dot, may be connected to
//!   whatever it resolves to.
//! * a wildcard `*.corp.example`: every subdomain of `corp.example` (at any
//!   depth) is allowed like a hostname entry, but not `corp.example` itself.
//!
//! Whitespace around entries and empty entries are ignored. Hostname entries
//! never match IP-literal URLs; use a CIDR for those.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::EgressError;

/// A hostname pattern from the allow-list, stored lower-case without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Matches exactly this host.
    Exact(String),
    /// Matches hosts ending in `.suffix` (the stored value includes the dot).
    Subdomains(String),
}

/// Parsed operator allow-list; the default is empty (nothing is exempt).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
    hosts: Vec<HostPattern>,
}

impl AllowList {
    /// An allow-list that exempts nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a comma-separated allow-list setting.
    ///
    /// Returns [`EgressError::InvalidAllowList`] naming the first bad entry.
    pub fn parse(setting: &str) -> Result<Self, EgressError> {
        let mut list = Self::default();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |reason: &'static str| EgressError::InvalidAllowList {
                entry: entry.to_owned(),
                reason,
            };
            if entry.contains('/') {
                let net = IpNet::from_str(entry).map_err(|_| bad("not a valid CIDR block"))?;
                if net.trunc() != net {
                    return Err(bad("CIDR block has host bits set"));
                }
                list.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if let Some(suffix) = entry.strip_prefix("*.") {
                let suffix =
                    normalize_hostname(suffix).ok_or_else(|| bad("not a valid hostname wildcard"))?;
                list.hosts.push(HostPattern::Subdomains(format!(".{suffix}")));
            } else {
                let host = normalize_hostname(entry)
                    .ok_or_else(|| bad("not a valid IP address, CIDR block or hostname"))?;
                list.hosts.push(HostPattern::Exact(host));
            }
        }
        Ok(list)
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    /// Whether a CIDR entry covers `ip`.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether a hostname or wildcard entry covers `host` (a DNS name, not an
    /// IP literal).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.hosts.iter().any(|pattern| match pattern {
            HostPattern::Exact(exact) => *exact == host,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        })
    }
}

impl FromStr for AllowList {
    type Err = EgressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Lower-cases and validates an ASCII DNS name (letters, digits, `-`, `_`;
/// labels of 1–63 characters; at most 253 characters). Names whose last label
/// is numeric are rejected because URL parsing would treat them as IPv4.
fn normalize_hostname(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let labels_ok = name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric_tld =
        last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") || last.starts_with("0X");
    (labels_ok && !numeric_tld).then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_documented_example() {
        let list =
            AllowList::parse("127.0.0.1/32, 10.0.0.0/8, ::1/128, intranet.example.com, *.corp.example")
                .unwrap();
        assert!(list.allows_ip(ip("127.0.0.1")));
        assert!(!list.allows_ip(ip("127.0.0.2")));
        assert!(list.allows_ip(ip("10.200.3.4")));
        assert!(!list.allows_ip(ip("11.0.0.0")));
        assert!(list.allows_ip(ip("::1")));
        assert!(!list.allows_ip(ip("::2")));
        assert!(!list.allows_ip(ip("::ffff:127.0.0.1")));
        assert!(list.allows_host("intranet.example.com"));
        assert!(list.allows_host("INTRANET.Example.COM."));
        assert!(!list.allows_host("x.intranet.example.com"));
        assert!(!list.allows_host("intranet.example.com.evil.test"));
        assert!(list.allows_host("a.corp.example"));
        assert!(list.allows_host("a.b.corp.example"));
        assert!(!list.allows_host("corp.example"));
        assert!(!list.allows_host("evilcorp.example"));
        assert!(!list.is_empty());
    }

    #[test]
    fn bare_ips_and_v6_cidrs() {
        let list = AllowList::parse("192.168.1.5,fd00::/8").unwrap();
        assert!(list.allows_ip(ip("192.168.1.5")));
        assert!(!list.allows_ip(ip("192.168.1.6")));
        assert!(list.allows_ip(ip("fd12::1")));
        assert!(!list.allows_ip(ip("fc00::1")));
    }

    #[test]
    fn empty_settings() {
        assert!(AllowList::parse("").unwrap().is_empty());
        assert!(AllowList::parse(" , ,").unwrap().is_empty());
        assert_eq!(AllowList::parse("").unwrap(), AllowList::empty());
        assert!(!AllowList::empty().allows_ip(ip("127.0.0.1")));
        assert!(!AllowList::empty().allows_host("localhost"));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "nonsense/8",
            "*",
            "*.",
            "a.*.example",
            "exa mple.com",
            "-bad.example",
            "http://example.com",
            "10.0.0",
            "0x7f000001",
            "[::1]",
            "bücher.example",
        ] {
            let err = AllowList::parse(&format!("127.0.0.1/32, {bad}")).unwrap_err();
            match &err {
                EgressError::InvalidAllowList { entry, .. } => assert_eq!(entry, bad),
                other => panic!("unexpected error {other:?}"),
            }
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn from_str_matches_parse() {
        let list: AllowList = "localhost".parse().unwrap();
        assert!(list.allows_host("localhost"));
    }
}
