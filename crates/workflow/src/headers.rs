//! Which request headers a webhook step may set in `config.headers`.
//!
//! Three groups are refused, all at save time, because the definition alone shows them (header
//! names are literal; only values are templates):
//!
//! - **Managed** headers, in every step: the HTTP client frames the request and manages the
//!   connection (`Content-Length`, `Transfer-Encoding`, `Connection`, `Upgrade`, …). A configured
//!   value could disagree with the body it frames, which is how requests are smuggled past a
//!   front end, so it is never sent.
//! - **Routing** headers, in steps that use a secret: `Host`, `Forwarded`, `X-Forwarded-*`,
//!   `Proxy-*` and the rewrite headers some front ends honour. A shared front end (a CDN, a
//!   load balancer, an API gateway) routes by them, so they could deliver a request and its
//!   secrets to another virtual host than the one `config.url` names and `allowed_hosts` checked.
//!   Steps without secrets may set them (testing a virtual host behind an IP address).
//! - **`X-Sealflow-Delivery`**, in every step: it is sealflow's own delivery id
//!   (`<run_id>-<step_id>`), stable across retries, which receivers de-duplicate on; a configured
//!   value (possibly from input) could make different deliveries collide. `Idempotency-Key` may
//!   be set: many APIs want their own key (e.g. `order-{{input.order_id}}`), and sealflow then
//!   sends that value instead of the delivery id, unchanged on every retry.

/// Headers the HTTP client sets or manages itself (RFC 9110 §7.6.1 hop-by-hop headers, framing,
/// and the HTTP/2 upgrade ones), compared case-insensitively.
pub const MANAGED_HEADERS: [&str; 10] = [
    "Connection",
    "Content-Length",
    "Expect",
    "HTTP2-Settings",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
];

/// Headers a front end may route or rewrite by, refused in steps that use secrets (besides every
/// `X-Forwarded-*` and `Proxy-*` name).
pub const ROUTING_HEADERS: [&str; 11] = [
    "Host",
    "Forwarded",
    "Via",
    "X-Real-IP",
    "X-Host",
    "X-Original-Host",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Host-Override",
    "X-HTTP-Method-Override",
    "X-Envoy-Original-Path",
];

/// Name prefixes that are routing headers as a family.
const ROUTING_PREFIXES: [&str; 2] = ["X-Forwarded-", "Proxy-"];

/// sealflow's delivery id header.
pub const DELIVERY_HEADER: &str = "X-Sealflow-Delivery";

/// Why a configured header name is refused: the rest of the sentence after the field name.
pub(crate) fn refusal(name: &str, uses_secrets: bool) -> Option<String> {
    let is = |list: &[&str]| list.iter().any(|h| h.eq_ignore_ascii_case(name));
    let has_prefix = ROUTING_PREFIXES
        .iter()
        .any(|p| name.len() > p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
    if is(&MANAGED_HEADERS) {
        return Some(
            "may not be set: the HTTP client sets connection and framing headers itself \
             (Connection, Content-Length, Expect, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, …)"
                .to_owned(),
        );
    }
    if name.eq_ignore_ascii_case(DELIVERY_HEADER) {
        return Some(format!(
            "may not be set: sealflow sends its own delivery id in {DELIVERY_HEADER} \
             (set Idempotency-Key to send a key of your own)"
        ));
    }
    if uses_secrets && (is(&ROUTING_HEADERS) || has_prefix) {
        return Some(
            "may not be set in a step that uses secrets: Host, Forwarded, Via, X-Forwarded-*, Proxy-* \
             and rewrite headers can route the request, and its secrets, to another host than \
             config.url names"
                .to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_matched_case_insensitively() {
        for managed in [
            "content-length",
            "TRANSFER-ENCODING",
            "Connection",
            "te",
            "upgrade",
        ] {
            assert!(refusal(managed, false).is_some(), "{managed}");
        }
        assert!(refusal("x-sealflow-delivery", false).is_some());
        for routing in [
            "host",
            "X-Forwarded-Host",
            "x-forwarded-for",
            "Proxy-Authorization",
            "Forwarded",
        ] {
            assert!(refusal(routing, true).is_some(), "{routing}");
            assert!(
                refusal(routing, false).is_none(),
                "{routing} is fine without secrets"
            );
        }
        for fine in [
            "Authorization",
            "Idempotency-Key",
            "Content-Type",
            "X-Forwarded",
            "Proxy",
            "Hosts",
        ] {
            assert!(refusal(fine, true).is_none(), "{fine}");
        }
    }
}
