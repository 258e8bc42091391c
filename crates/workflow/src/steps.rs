//! Per-type config checks: turns a step's config object into its typed
//! [`StepConfig`], applying defaults. Fields are checked in schema order (the
//! order of [`config_keys`]); unknown keys and template syntax were already
//! checked by [`crate::validate`].
//!
//! Optional fields given as `null` count as omitted (some clients serialise
//! absent fields that way), except `condition.value`, where `null` is a value
//! to compare with, and `transform.output`, where it is the output.

use std::collections::BTreeMap;
use std::fmt::Display;

use regex::RegexBuilder;
use sealflow_template::TemplateString;
use serde_json::{Map, Value};

use crate::duration::{check_delay_seconds, parse_duration, MAX_DELAY_SECONDS, MIN_DELAY_SECONDS};
use crate::model::{
    Branch, ConditionConfig, DelayConfig, Method, Operator, StepConfig, StepType, TransformConfig,
    WebhookConfig,
};
use crate::url_template::UrlTemplate;
use crate::validate::{show, Invalid, Position, StepIndex};

/// Default webhook timeout, ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Longest webhook timeout, ms.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Default webhook retries.
pub const DEFAULT_RETRIES: u32 = 3;
/// Most webhook retries.
pub const MAX_RETRIES: u32 = 10;
/// Longest `matches` pattern, in bytes.
pub const MAX_REGEX_LEN: usize = 1_000;
/// Compiled-size cap for `matches` patterns, so a short pattern cannot
/// expand into a huge automaton (`a{1000}{1000}`).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The keys a config of this type may have, in schema order.
pub fn config_keys(step_type: StepType) -> &'static [&'static str] {
    match step_type {
        StepType::Webhook => &["url", "method", "headers", "body", "timeout_ms", "retries"],
        StepType::Condition => &["field", "operator", "value", "then", "else"],
        StepType::Delay => &["seconds", "duration"],
        StepType::Transform => &["output"],
    }
}

/// The step being checked: its id (for messages) and position (for branch
/// targets).
pub(crate) struct StepCtx<'a> {
    pub(crate) id: &'a str,
    pub(crate) index: usize,
    /// Whether the step's config names any `{{secrets.*}}` (some rules are stricter then).
    pub(crate) uses_secrets: bool,
}

impl StepCtx<'_> {
    /// `step "<id>": <message>`, with `field` for the details.
    pub(crate) fn invalid(&self, field: impl Into<String>, message: impl Display) -> Invalid {
        Invalid {
            message: format!("step \"{}\": {message}", self.id),
            step: Some(self.id.to_owned()),
            field: Some(field.into()),
        }
    }

    /// `step "<id>": config.<key> <rule>`.
    fn field(&self, key: &str, rule: impl Display) -> Invalid {
        self.invalid(format!("config.{key}"), format!("config.{key} {rule}"))
    }
}

/// An optional field: `None` when absent or `null`.
fn opt<'v>(config: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    config.get(key).filter(|v| !v.is_null())
}

pub(crate) fn parse_config(
    ctx: &StepCtx<'_>,
    step_type: StepType,
    config: &Map<String, Value>,
    index: &StepIndex<'_>,
) -> Result<StepConfig, Invalid> {
    Ok(match step_type {
        StepType::Webhook => StepConfig::Webhook(webhook(ctx, config)?),
        StepType::Condition => StepConfig::Condition(condition(ctx, config, index)?),
        StepType::Delay => StepConfig::Delay(delay(ctx, config)?),
        StepType::Transform => StepConfig::Transform(transform(ctx, config)?),
    })
}

fn webhook(ctx: &StepCtx<'_>, config: &Map<String, Value>) -> Result<WebhookConfig, Invalid> {
    let url = match opt(config, "url") {
        None => return Err(ctx.field("url", "is required")),
        Some(Value::String(url)) => url,
        Some(_) => return Err(ctx.field("url", "must be a string")),
    };
    check_url(ctx, url)?;

    let method = match opt(config, "method") {
        None => Method::default(),
        Some(v) => v.as_str().and_then(Method::from_name).ok_or_else(|| {
            let all = Method::ALL.map(Method::as_str).join(", ");
            ctx.field("method", format!("must be one of {all}"))
        })?,
    };

    let mut headers = BTreeMap::new();
    match opt(config, "headers") {
        None => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                if !is_header_name(name) {
                    return Err(ctx.invalid(
                        format!("config.headers.{name}"),
                        format!(
                            "config.headers has an invalid header name {}; use letters, digits and !#$%&'*+-.^_`|~",
                            show(name)
                        ),
                    ));
                }
                let Value::String(value) = value else {
                    return Err(ctx.field(&format!("headers.{name}"), "must be a string"));
                };
                // Literal CR/LF would split the header; tags are checked
                // again when rendered.
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(ctx.field(&format!("headers.{name}"), "must not contain control characters"));
                }
                if let Some(why) = crate::headers::refusal(name, ctx.uses_secrets) {
                    return Err(ctx.field(&format!("headers.{name}"), why));
                }
                if let Some(first) = headers.keys().find(|k: &&String| k.eq_ignore_ascii_case(name)) {
                    return Err(ctx.invalid(
                        format!("config.headers.{name}"),
                        format!(
                            "config.headers has both {} and {}; header names are case-insensitive",
                            show(first),
                            show(name)
                        ),
                    ));
                }
                headers.insert(name.clone(), value.clone());
            }
        }
        Some(_) => return Err(ctx.field("headers", "must be an object of strings")),
    }

    let body = opt(config, "body").cloned();

    let timeout_ms = match opt(config, "timeout_ms") {
        None => DEFAULT_TIMEOUT_MS,
        Some(v) => v
            .as_u64()
            .filter(|t| (1..=MAX_TIMEOUT_MS).contains(t))
            .ok_or_else(|| {
                ctx.field(
                    "timeout_ms",
                    format!("must be an integer from 1 to {MAX_TIMEOUT_MS}"),
                )
            })?,
    };
    let retries = match opt(config, "retries") {
        None => DEFAULT_RETRIES,
        Some(v) => v
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r <= MAX_RETRIES)
            .ok_or_else(|| ctx.field("retries", format!("must be an integer from 0 to {MAX_RETRIES}")))?,
    };

    Ok(WebhookConfig {
        url: url.clone(),
        method,
        headers,
        body,
        timeout_ms,
        retries,
    })
}

/// A literal URL must be absolute http(s) with a host. A templated one is read as a URL
/// ([`UrlTemplate`]): every tag must stand where its value can be encoded for its component, and
/// a tag that supplies the destination (the whole URL, or its start) must be a secret unless the
/// step uses no secret, so whoever supplies input cannot choose where secrets are sent.
fn check_url(ctx: &StepCtx<'_>, url: &str) -> Result<(), Invalid> {
    // Template syntax was checked for the whole config already.
    let Ok(parsed) = TemplateString::parse(url) else {
        return Ok(());
    };
    if parsed.is_literal() {
        return if is_absolute_http_url(url) {
            Ok(())
        } else {
            Err(ctx.field(
                "url",
                format!(
                    "must be an absolute http:// or https:// URL with a host, got {}",
                    show(url)
                ),
            ))
        };
    }
    let template = UrlTemplate::parse(url).map_err(|p| ctx.field("url", p.message))?;
    if let Some(tag) = template.destination_tag() {
        if tag.secret_name().is_none() && ctx.uses_secrets {
            return Err(ctx.field(
                "url",
                format!(
                    "takes its destination from {{{{{tag}}}}}, so whoever supplies that value would choose \
                     where this step's secrets are sent; in a step that uses secrets, write the host in \
                     config.url (a tag may fill a label, as in https://{{{{input.tenant}}}}.example.com/) \
                     or take the whole URL from a secret"
                ),
            ));
        }
    }
    Ok(())
}

/// Length of a leading `http://` or `https://` (any case).
fn http_scheme_len(url: &str) -> Option<usize> {
    ["http://", "https://"]
        .into_iter()
        .find(|s| url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))
        .map(str::len)
}

/// A deliberately small check (no URL crate): scheme, then a non-empty host
/// with an optional numeric port, and no whitespace or control characters.
fn is_absolute_http_url(url: &str) -> bool {
    let Some(scheme_len) = http_scheme_len(url) else {
        return false;
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let rest = &url[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Userinfo (`user:pass@`) is allowed; the host follows the last `@`.
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, after)) if !addr.is_empty() => (addr, after.strip_prefix(':')),
            _ => return false,
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port_ok = match port {
        None => true,
        Some(p) => !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok(),
    };
    !host.is_empty() && port_ok
}

/// RFC 9110 `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn condition(
    ctx: &StepCtx<'_>,
    config: &Map<String, Value>,
    index: &StepIndex<'_>,
) -> Result<ConditionConfig, Invalid> {
    let field = match opt(config, "field") {
        None => return Err(ctx.field("field", "is required")),
        Some(Value::String(field)) => field,
        Some(_) => {
            return Err(ctx.field(
                "field",
                "must be a string (a template such as \"{{input.status}}\")",
            ))
        }
    };
    // A field without a tag is a constant: almost always `input.status`
    // written without braces.
    if TemplateString::parse(field).map_or(true, |t| t.is_literal()) {
        return Err(ctx.field(
            "field",
            format!(
                "{} has no template tag; write e.g. \"{{{{input.status}}}}\"",
                show(field)
            ),
        ));
    }

    let operator = match opt(config, "operator") {
        None => return Err(ctx.field("operator", "is required")),
        Some(v) => v.as_str().and_then(Operator::from_name).ok_or_else(|| {
            let all = Operator::ALL.map(Operator::as_str).join(", ");
            ctx.field("operator", format!("must be one of {all}"))
        })?,
    };

    let value = config.get("value");
    let op = operator.as_str();
    let value = match (operator, value) {
        (Operator::Exists | Operator::NotExists, None | Some(Value::Null)) => None,
        (Operator::Exists | Operator::NotExists, Some(_)) => {
            return Err(ctx.field("value", format!("must be omitted for operator {op}")));
        }
        (_, None) => return Err(ctx.field("value", format!("is required for operator {op}"))),
        (Operator::Matches, Some(Value::String(pattern))) => {
            check_regex(ctx, pattern)?;
            Some(Value::String(pattern.clone()))
        }
        (Operator::Matches, Some(_)) => {
            return Err(ctx.field(
                "value",
                "must be a string (a regular expression) for operator matches",
            ));
        }
        (Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte, Some(v))
            if !(v.is_number() || v.is_string()) =>
        {
            return Err(ctx.field("value", format!("must be a number or a string for operator {op}")));
        }
        (_, Some(v)) => Some(v.clone()),
    };

    let then = match opt(config, "then") {
        None => None,
        Some(Value::String(target)) => {
            check_target(ctx, "then", target, index)?;
            Some(target.clone())
        }
        Some(_) => return Err(ctx.field("then", "must be a step id")),
    };
    let else_ = match opt(config, "else") {
        None => Branch::End,
        Some(Value::String(target)) if target == "end" => Branch::End,
        Some(Value::String(target)) => {
            check_target(ctx, "else", target, index)?;
            Branch::Step(target.clone())
        }
        Some(_) => return Err(ctx.field("else", "must be a step id or \"end\"")),
    };

    Ok(ConditionConfig {
        field: field.clone(),
        operator,
        value,
        then,
        else_,
    })
}

/// Branches only jump forward, so every run terminates.
fn check_target(ctx: &StepCtx<'_>, key: &str, target: &str, index: &StepIndex<'_>) -> Result<(), Invalid> {
    match index.position(target, ctx.index) {
        Position::Later => Ok(()),
        Position::Unknown => {
            Err(ctx.field(key, format!("names step {}, which does not exist", show(target))))
        }
        Position::Itself | Position::Earlier => Err(ctx.field(
            key,
            format!(
                "names step {}, which does not come after step \"{}\"; branches may only jump forward",
                show(target),
                ctx.id
            ),
        )),
    }
}

/// A literal pattern must compile now; one with tags is compiled per run.
fn check_regex(ctx: &StepCtx<'_>, pattern: &str) -> Result<(), Invalid> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(ctx.field(
            "value",
            format!(
                "is {} bytes; a regular expression may be at most {MAX_REGEX_LEN}",
                pattern.len()
            ),
        ));
    }
    if !TemplateString::parse(pattern).is_ok_and(|t| t.is_literal()) {
        return Ok(());
    }
    match RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
        Ok(_) => Ok(()),
        Err(e) => Err(ctx.field(
            "value",
            format!("is not a valid regular expression: {}", regex_reason(&e)),
        )),
    }
}

/// The one-line reason from a regex error (its `Display` draws a caret
/// diagram over several lines).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn delay(ctx: &StepCtx<'_>, config: &Map<String, Value>) -> Result<DelayConfig, Invalid> {
    let range = format!("from {MIN_DELAY_SECONDS} to {MAX_DELAY_SECONDS}");
    let seconds = match (opt(config, "seconds"), opt(config, "duration")) {
        (Some(_), Some(_)) => {
            return Err(ctx.invalid("config", "config takes either seconds or duration, not both"));
        }
        (None, None) => {
            return Err(ctx.invalid("config.seconds", "config.seconds or config.duration is required"));
        }
        (Some(v), None) => v
            .as_u64()
            .and_then(|s| check_delay_seconds(s).ok())
            .ok_or_else(|| ctx.field("seconds", format!("must be an integer {range}")))?,
        (None, Some(Value::String(text))) => {
            parse_duration(text).map_err(|e| ctx.field("duration", format!("{} {e}", show(text))))?
        }
        (None, Some(_)) => {
            return Err(ctx.field(
                "duration",
                "must be a string such as \"90s\", \"5m\", \"2h\" or \"1d\"",
            ));
        }
    };
    Ok(DelayConfig { seconds })
}

fn transform(ctx: &StepCtx<'_>, config: &Map<String, Value>) -> Result<TransformConfig, Invalid> {
    match config.get("output") {
        None => Err(ctx.field("output", "is required")),
        Some(output) => Ok(TransformConfig {
            output: output.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_urls() {
        for ok in [
            "https://hooks.slack.com/services/T/B/x",
            "http://example.com",
            "HTTPS://EXAMPLE.COM:8443/a?b#c",
            "https://user:pw@example.com/",
            "https://[::1]:8080/x",
            "https://example.com?q=1",
        ] {
            assert!(is_absolute_http_url(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "https://",
            "https:///path",
            "https://:80/",
            "https://example.com:99999/",
            "https://example.com:/",
            "https://exa mple.com",
            "https://[]/",
            "example.com",
            "//example.com",
            "",
        ] {
            assert!(!is_absolute_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("X-Api-Key"));
        assert!(is_header_name("a!#$%&'*+-.^_`|~9"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("Bad Name"));
        assert!(!is_header_name("a:b"));
        assert!(!is_header_name("é"));
    }

    #[test]
    fn regex_reason_is_one_line() {
        // Built at run time: clippy rejects an invalid regex literal.
        let pattern = ["(", "abc"].concat();
        let Err(e) = regex::Regex::new(&pattern) else {
            panic!("should not compile");
        };
        assert_eq!(regex_reason(&e), "unclosed group");
    }
}
