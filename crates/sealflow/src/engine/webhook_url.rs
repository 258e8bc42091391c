//! A webhook step's URL: rendered by component (`sealflow_workflow::UrlTemplate`: every value is
//! encoded for the part of the URL its tag stands in, so input cannot add a parameter, a path
//! segment, userinfo or another host), then checked against the `allowed_hosts` of every secret
//! the request carries.
//!
//! Secrets are the operator's own values: one may be the whole URL or its start
//! (`{{secrets.SLACK_WEBHOOK_URL}}`, `{{secrets.API_BASE}}/v1`) and may hold dots in the host;
//! everywhere else it is encoded like any value. The rendered URL lives in zeroizing memory.

use std::borrow::Cow;
use std::collections::BTreeMap;

use sealflow_template::Tag;
use sealflow_workflow::{UrlPart, UrlRenderError, UrlTemplate};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::context::RunContext;
use super::webhook_request::Resolved;
use crate::store::HIDDEN_HOST;

/// Renders `url` for this run; `max_len` caps its length (the step's render budget).
pub(super) fn render_url(
    url: &str,
    resolved: &BTreeMap<String, Resolved>,
    ctx: &RunContext,
    max_len: usize,
) -> Result<Zeroizing<String>, String> {
    // Validation parsed the same text when the definition was saved, and again when the run
    // loaded it, so this only fails for a definition that was never validated.
    let template = UrlTemplate::parse(url).map_err(|p| format!("config.url {}", p.message))?;
    let mut out = Zeroizing::new(String::new());
    template
        .render_into(&mut out, max_len, |tag| -> Result<Cow<'_, str>, String> {
            match tag {
                Tag::Secret { name } => Ok(Cow::Borrowed(resolved[name].value.expose_secret())),
                other => {
                    let value = other.lookup(ctx).ok_or_else(|| format!("{other} not found"))?;
                    Ok(Cow::Owned(sealflow_template::to_text(&value).into_owned()))
                }
            }
        })
        .map_err(|e| match e {
            UrlRenderError::Tag(message) => message,
            other => format!("config.url: {other}"),
        })?;
    Ok(out)
}

/// Refuses the URL if a secret it carries may not be sent to its host.
pub(super) fn check_allowed_hosts(url: &str, resolved: &BTreeMap<String, Resolved>) -> Result<(), String> {
    let parsed = sealflow_egress::Url::parse(url)
        .map_err(|_| "config.url does not render to a valid URL".to_owned())?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    for (name, r) in resolved {
        if let Some(hosts) = &r.allowed_hosts {
            if !hosts.iter().any(|pattern| host_matches(pattern, &host)) {
                return Err(format!(
                    "secret {name:?} may not be sent to {host:?} (not in its allowed_hosts)"
                ));
            }
        }
    }
    Ok(())
}

/// The destination host to record in the audit trail: the rendered URL's host, or
/// [`HIDDEN_HOST`] when a secret supplied any of it (the whole URL, its start, or a host label),
/// since the trail never holds anything derived from a value.
pub(super) fn audit_host(template: &str, rendered: &str) -> String {
    let from_secret = UrlTemplate::parse(template).map_or(true, |t| {
        t.tags().any(|(_, tag, part)| {
            matches!(tag, Tag::Secret { .. })
                && matches!(part, UrlPart::Whole | UrlPart::Start | UrlPart::Host)
        })
    });
    if from_secret {
        return HIDDEN_HOST.to_owned();
    }
    sealflow_egress::Url::parse(rendered)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}

/// `hooks.example.com` matches itself; `*.example.com` matches its subdomains.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host[..host.len() - suffix.len()].ends_with('.')
        }
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_exact_hosts_and_subdomains_only() {
        assert!(host_matches("hooks.slack.com", "hooks.slack.com"));
        assert!(!host_matches("hooks.slack.com", "evil.hooks.slack.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
    }

    #[test]
    fn the_audited_host_is_hidden_when_a_secret_chose_it() {
        let plain = "https://hooks.example.com/{{secrets.TOKEN}}?k={{secrets.KEY}}";
        assert_eq!(
            audit_host(plain, "https://Hooks.Example.com/abcd?k=efgh"),
            "hooks.example.com"
        );
        for template in [
            "{{secrets.URL}}",
            "{{secrets.BASE}}/v1",
            "https://{{secrets.TENANT}}.example.com/",
        ] {
            assert_eq!(
                audit_host(template, "https://acme.example.com/v1"),
                HIDDEN_HOST,
                "{template}"
            );
        }
        let input_label = "https://{{input.tenant}}.example.com/";
        assert_eq!(
            audit_host(input_label, "https://acme.example.com/"),
            "acme.example.com"
        );
    }
}
