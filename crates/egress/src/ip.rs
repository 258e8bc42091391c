//! Classification of IP addresses that webhook egress must never reach.
//!
//! This module is pure: it only inspects addresses and never touches the network.
//!
//! Refused IPv4 ranges:
//!
//! | range              | kind                                   |
//! |--------------------|----------------------------------------|
//! | `0.0.0.0/8`        | unspecified ("this network")           |
//! | `10.0.0.0/8`       | private                                |
//! | `100.64.0.0/10`    | shared address space (CGNAT)           |
//! | `127.0.0.0/8`      | loopback                               |
//! | `169.254.0.0/16`   | link-local (incl. cloud metadata `169.254.169.254`) |
//! | `172.16.0.0/12`    | private                                |
//! | `192.0.0.0/24`     | reserved (IETF protocol assignments)   |
//! | `192.0.2.0/24`     | documentation                          |
//! | `192.168.0.0/16`   | private                                |
//! | `198.18.0.0/15`    | benchmarking                           |
//! | `198.51.100.0/24`  | documentation                          |
//! | `203.0.113.0/24`   | documentation                          |
//! | `224.0.0.0/4`      | multicast                              |
//! | `240.0.0.0/4`      | reserved (future use)                  |
//! | `255.255.255.255`  | broadcast                              |
//!
//! Refused IPv6 ranges: `::` (unspecified), `::1` (loopback), `100::/64`
//! (discard-only, reserved), `2001:2::/48` (benchmarking), `2001:db8::/32` and
//! `3fff::/20` (documentation), `64:ff9b:1::/48` (local-use NAT64, treated as
//! private), `fc00::/7` (unique local, private), `fec0::/10` (deprecated
//! site-local, private), `fe80::/10` (link-local) and `ff00::/8` (multicast).
//!
//! IPv6 forms that embed an IPv4 address are refused when the embedded IPv4
//! address is refused: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`,
//! 6to4 `2002:AABB:CCDD::/48` and Teredo `2001:0::/32` (whose client address is
//! stored inverted in the low 32 bits).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is off limits, without regard to how it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForbiddenKind {
    /// `0.0.0.0/8` or `::`.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// RFC 1918 ranges, unique-local `fc00::/7`, site-local `fec0::/10` and
    /// local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16` (cloud metadata services live here) or `fe80::/10`.
    LinkLocal,
    /// `100.64.0.0/10`, the carrier-grade NAT shared address space.
    SharedAddressSpace,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges (TEST-NET-1/2/3, `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// `198.18.0.0/15` or `2001:2::/48`.
    Benchmarking,
    /// Other special-purpose ranges: `192.0.0.0/24`, `240.0.0.0/4`, `100::/64`.
    Reserved,
}

impl ForbiddenKind {
    /// A short noun phrase such as `"a loopback address"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// The IPv6 form through which a forbidden IPv4 address was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Ipv4Mapped,
    /// `::a.b.c.d` (deprecated IPv4-compatible form).
    Ipv4Compatible,
    /// `::ffff:0:a.b.c.d` (SIIT IPv4-translated form).
    Ipv4Translated,
    /// `64:ff9b::a.b.c.d` (well-known NAT64 prefix).
    Nat64,
    /// `2002:aabb:ccdd::/48`.
    SixToFour,
    /// `2001:0:…` with the inverted client address in the low 32 bits.
    Teredo,
}

impl Embedding {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Ipv4Translated => "IPv4-translated",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::Teredo => "Teredo",
        }
    }
}

/// The verdict for a forbidden address: what it is, and the IPv6 form that
/// carried it if it was an embedded IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Forbidden {
    /// The kind of range the (possibly embedded) address belongs to.
    pub kind: ForbiddenKind,
    /// `Some` when an IPv6 address was refused for the IPv4 address it embeds.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some((form, v4)) = self.embedded {
            write!(f, " ({} form of {v4})", form.as_str())?;
        }
        Ok(())
    }
}

/// IPv4 ranges as (network, prefix length, kind). Broadcast precedes the
/// enclosing reserved `240.0.0.0/4` so that it is reported precisely.
const V4_RANGES: &[(u32, u8, ForbiddenKind)] = &[
    (0xFFFF_FFFF, 32, ForbiddenKind::Broadcast),
    (0x0000_0000, 8, ForbiddenKind::Unspecified),
    (0x0A00_0000, 8, ForbiddenKind::Private),
    (0x6440_0000, 10, ForbiddenKind::SharedAddressSpace),
    (0x7F00_0000, 8, ForbiddenKind::Loopback),
    (0xA9FE_0000, 16, ForbiddenKind::LinkLocal),
    (0xAC10_0000, 12, ForbiddenKind::Private),
    (0xC000_0000, 24, ForbiddenKind::Reserved),
    (0xC000_0200, 24, ForbiddenKind::Documentation),
    (0xC0A8_0000, 16, ForbiddenKind::Private),
    (0xC612_0000, 15, ForbiddenKind::Benchmarking),
    (0xC633_6400, 24, ForbiddenKind::Documentation),
    (0xCB00_7100, 24, ForbiddenKind::Documentation),
    (0xE000_0000, 4, ForbiddenKind::Multicast),
    (0xF000_0000, 4, ForbiddenKind::Reserved),
];

/// IPv6 ranges that are refused outright (embedded-IPv4 forms are handled
/// separately).
const V6_RANGES: &[(u128, u8, ForbiddenKind)] = &[
    (0, 128, ForbiddenKind::Unspecified),
    (1, 128, ForbiddenKind::Loopback),
    (0x0100_0000_0000_0000 << 64, 64, ForbiddenKind::Reserved),
    (0x2001_0002_0000_u128 << 80, 48, ForbiddenKind::Benchmarking),
    (0x2001_0db8_u128 << 96, 32, ForbiddenKind::Documentation),
    (0x3fff_u128 << 112, 20, ForbiddenKind::Documentation),
    (0x0064_ff9b_0001_u128 << 80, 48, ForbiddenKind::Private),
    (0xfc00_u128 << 112, 7, ForbiddenKind::Private),
    (0xfec0_u128 << 112, 10, ForbiddenKind::Private),
    (0xfe80_u128 << 112, 10, ForbiddenKind::LinkLocal),
    (0xff00_u128 << 112, 8, ForbiddenKind::Multicast),
];

fn in_v4(addr: u32, net: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    addr & mask == net
}

fn in_v6(addr: u128, net: u128, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    addr & mask == net
}

fn v4_kind(ip: Ipv4Addr) -> Option<ForbiddenKind> {
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| in_v4(bits, *net, *len))
        .map(|(_, _, kind)| *kind)
}

/// The IPv4 address an IPv6 address embeds, if it uses one of the forms
/// listed in the module docs.
fn embedded_v4(ip: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if in_v6(bits, 0xffff_u128 << 32, 96) {
        Some((Embedding::Ipv4Mapped, low32))
    } else if in_v6(bits, 0xffff_u128 << 48, 96) {
        Some((Embedding::Ipv4Translated, low32))
    } else if in_v6(bits, 0, 96) {
        // `::` and `::1` are matched earlier by `V6_RANGES`.
        Some((Embedding::Ipv4Compatible, low32))
    } else if in_v6(bits, 0x0064_ff9b_u128 << 96, 96) {
        Some((Embedding::Nat64, low32))
    } else if in_v6(bits, 0x2002_u128 << 112, 16) {
        Some((Embedding::SixToFour, Ipv4Addr::from((bits >> 80) as u32)))
    } else if in_v6(bits, 0x2001_0000_u128 << 96, 32) {
        Some((Embedding::Teredo, Ipv4Addr::from(!(bits as u32))))
    } else {
        None
    }
}

/// Why `ip` must not be reached by egress traffic, or `None` if it is an
/// ordinary globally routable address.
///
/// This ignores any operator allow-list; see [`crate::AllowList`].
pub fn forbidden_reason(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4).map(|kind| Forbidden { kind, embedded: None }),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            if let Some((_, _, kind)) = V6_RANGES.iter().find(|(n, l, _)| in_v6(bits, *n, *l)) {
                return Some(Forbidden {
                    kind: *kind,
                    embedded: None,
                });
            }
            let (form, v4) = embedded_v4(v6)?;
            v4_kind(v4).map(|kind| Forbidden {
                kind,
                embedded: Some((form, v4)),
            })
        }
    }
}

/// Whether `ip` is forbidden (ignoring any allow-list).
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<ForbiddenKind> {
        forbidden_reason(s.parse().unwrap()).map(|f| f.kind)
    }

    fn assert_kind(addrs: &[&str], expected: ForbiddenKind) {
        for a in addrs {
            assert_eq!(kind(a), Some(expected), "{a}");
        }
    }

    fn assert_allowed(addrs: &[&str]) {
        for a in addrs {
            assert_eq!(kind(a), None, "{a} should be allowed");
        }
    }

    #[test]
    fn v4_loopback() {
        assert_kind(
            &["127.0.0.0", "127.0.0.1", "127.255.255.255"],
            ForbiddenKind::Loopback,
        );
        assert_allowed(&["126.255.255.255", "128.0.0.0"]);
    }

    #[test]
    fn v4_private() {
        assert_kind(
            &[
                "10.0.0.0",
                "10.255.255.255",
                "172.16.0.0",
                "172.31.255.255",
                "192.168.0.0",
                "192.168.255.255",
            ],
            ForbiddenKind::Private,
        );
        assert_allowed(&[
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
        ]);
    }

    #[test]
    fn v4_link_local_and_metadata() {
        assert_kind(
            &["169.254.0.0", "169.254.169.254", "169.254.255.255"],
            ForbiddenKind::LinkLocal,
        );
        assert_allowed(&["169.253.255.255", "169.255.0.0"]);
    }

    #[test]
    fn v4_cgnat() {
        assert_kind(
            &["100.64.0.0", "100.127.255.255"],
            ForbiddenKind::SharedAddressSpace,
        );
        assert_allowed(&["100.63.255.255", "100.128.0.0"]);
    }

    #[test]
    fn v4_multicast_reserved_broadcast() {
        assert_kind(&["224.0.0.0", "239.255.255.255"], ForbiddenKind::Multicast);
        assert_kind(&["240.0.0.0", "255.255.255.254"], ForbiddenKind::Reserved);
        assert_kind(&["255.255.255.255"], ForbiddenKind::Broadcast);
        assert_allowed(&["223.255.255.255"]);
    }

    #[test]
    fn v4_unspecified() {
        assert_kind(
            &["0.0.0.0", "0.1.2.3", "0.255.255.255"],
            ForbiddenKind::Unspecified,
        );
        assert_allowed(&["1.0.0.0"]);
    }

    #[test]
    fn v4_documentation_benchmarking_protocol() {
        assert_kind(
            &["192.0.2.0", "192.0.2.255", "198.51.100.7", "203.0.113.255"],
            ForbiddenKind::Documentation,
        );
        assert_kind(&["198.18.0.0", "198.19.255.255"], ForbiddenKind::Benchmarking);
        assert_kind(&["192.0.0.0", "192.0.0.255"], ForbiddenKind::Reserved);
        assert_allowed(&[
            "192.0.1.255",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
        ]);
    }

    #[test]
    fn v4_public_allowed() {
        assert_allowed(&["1.1.1.1", "8.8.8.8", "93.184.216.34", "223.1.2.3"]);
    }

    #[test]
    fn v6_plain_ranges() {
        assert_kind(&["::"], ForbiddenKind::Unspecified);
        assert_kind(&["::1"], ForbiddenKind::Loopback);
        assert_kind(
            &[
                "fc00::",
                "fd12:3456::1",
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ],
            ForbiddenKind::Private,
        );
        assert_kind(&["fec0::1", "feff::1"], ForbiddenKind::Private);
        assert_kind(&["fe80::", "fe80::1", "febf:ffff::1"], ForbiddenKind::LinkLocal);
        assert_kind(&["ff00::", "ff02::1", "ffff::1"], ForbiddenKind::Multicast);
        assert_kind(&["2001:db8::1", "3fff::1"], ForbiddenKind::Documentation);
        assert_kind(&["2001:2::1"], ForbiddenKind::Benchmarking);
        assert_kind(&["100::1"], ForbiddenKind::Reserved);
        assert_kind(&["64:ff9b:1::a00:1"], ForbiddenKind::Private);
        // Just outside each range.
        assert_allowed(&[
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe00::1",
            "2001:db9::1",
            "4000::1",
            "100:0:0:1::1",
            "2001:3::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ]);
    }

    #[test]
    fn v6_embedded_v4_forms() {
        let cases = [
            ("::ffff:127.0.0.1", Embedding::Ipv4Mapped, ForbiddenKind::Loopback),
            ("::ffff:10.1.2.3", Embedding::Ipv4Mapped, ForbiddenKind::Private),
            (
                "::ffff:169.254.169.254",
                Embedding::Ipv4Mapped,
                ForbiddenKind::LinkLocal,
            ),
            ("::127.0.0.1", Embedding::Ipv4Compatible, ForbiddenKind::Loopback),
            ("::0.0.0.2", Embedding::Ipv4Compatible, ForbiddenKind::Unspecified),
            (
                "::ffff:0:192.168.1.1",
                Embedding::Ipv4Translated,
                ForbiddenKind::Private,
            ),
            ("64:ff9b::127.0.0.1", Embedding::Nat64, ForbiddenKind::Loopback),
            (
                "64:ff9b::100.64.0.1",
                Embedding::Nat64,
                ForbiddenKind::SharedAddressSpace,
            ),
            ("2002:7f00:1::", Embedding::SixToFour, ForbiddenKind::Loopback),
            (
                "2002:a9fe:a9fe::1",
                Embedding::SixToFour,
                ForbiddenKind::LinkLocal,
            ),
            // Teredo client 127.0.0.1 is stored inverted: 0x80ff_fffe.
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                Embedding::Teredo,
                ForbiddenKind::Loopback,
            ),
        ];
        for (addr, form, kind) in cases {
            let f = forbidden_reason(addr.parse().unwrap()).expect(addr);
            assert_eq!(f.kind, kind, "{addr}");
            assert_eq!(f.embedded.map(|(e, _)| e), Some(form), "{addr}");
        }
        // The same forms embedding public addresses are fine.
        assert_allowed(&[
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ]);
    }

    #[test]
    fn display_names_the_kind_and_form() {
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            forbidden_reason(ip).unwrap().to_string(),
            "a loopback address (IPv4-mapped form of 127.0.0.1)"
        );
        let ip: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(forbidden_reason(ip).unwrap().to_string(), "a link-local address");
        assert!(is_forbidden("10.0.0.1".parse().unwrap()));
    }
}
