//! A webhook step's request, rendered under the step's budget: secrets resolved (decrypted) only
//! now, the URL by component (`webhook_url`), header values refused with CR or LF, the body as
//! JSON (or text, for a string). The URL, headers and body together may not pass the step's
//! render limit (`SEALFLOW_MAX_STEP_BYTES`), which is charged while they are rendered.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use sealflow_redact::{Redactor, MIN_FREE_TEXT_LEN};
use sealflow_template::{Budget, Limited, Tag, Template, TemplateString};
use sealflow_workflow::WebhookConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use super::context::RunContext;
use super::webhook_url;
use crate::domain::secrets::{Revealed, SecretsError, SecretsService};

/// Longest rendered URL (what HTTP servers commonly accept in a request line).
const MAX_URL_BYTES: usize = 16 * 1024;

/// One resolved secret: its value and where it may be sent.
pub(super) struct Resolved {
    pub(super) value: SecretString,
    pub(super) allowed_hosts: Option<Vec<String>>,
    pub(super) version: i64,
}

/// A request ready to send (on every attempt).
pub(super) struct Prepared {
    pub(super) method: http::Method,
    pub(super) url: Zeroizing<String>,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Bytes>,
    pub(super) carries_secret: bool,
    /// Every secret the request carries, with the version decrypted (for the audit trail).
    pub(super) uses: Vec<(String, i64)>,
    /// The destination host as the audit trail records it (see `webhook_url::audit_host`).
    pub(super) audit_host: String,
}

/// Renders the request; resolves (decrypts) the secrets it names; checks where they may go.
pub(super) async fn prepare(
    workspace_id: &str,
    config: &WebhookConfig,
    ctx: &RunContext,
    secrets: &SecretsService,
    redactor: &mut Redactor,
) -> Result<Prepared, String> {
    let url_t = TemplateString::parse(&config.url).map_err(|e| format!("config.url: {e}"))?;
    let header_ts: Vec<(&String, TemplateString)> = config
        .headers
        .iter()
        .map(|(k, v)| {
            TemplateString::parse(v)
                .map(|t| (k, t))
                .map_err(|e| format!("config.headers.{k}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let body_t = config
        .body
        .as_ref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| format!("config.body: {e}"))?;

    let mut names: Vec<String> = url_t.secret_names().into_iter().map(str::to_owned).collect();
    for (_, t) in &header_ts {
        names.extend(t.secret_names().into_iter().map(str::to_owned));
    }
    if let Some(b) = &body_t {
        names.extend(b.secret_names().into_iter().map(str::to_owned));
    }
    names.sort();
    names.dedup();
    let mut resolved: BTreeMap<String, Resolved> = BTreeMap::new();
    let mut failure = None;
    for name in &names {
        match secrets.reveal_with_hosts(workspace_id, name).await {
            Ok(Revealed {
                value,
                allowed_hosts,
                version,
            }) => {
                // Stored before values this short were refused: it could not be masked.
                if value.expose_secret().len() < MIN_FREE_TEXT_LEN {
                    failure = Some(format!(
                        "secret {name:?} is shorter than {MIN_FREE_TEXT_LEN} bytes and cannot be masked in \
                         what runs record; store a longer value"
                    ));
                    break;
                }
                resolved.insert(
                    name.clone(),
                    Resolved {
                        value,
                        allowed_hosts,
                        version,
                    },
                );
            }
            Err(SecretsError::NotFound(_)) => {
                failure = Some(format!("secret {name:?} not found"));
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, secret = %name, "could not decrypt a secret");
                failure = Some(format!("secret {name:?} could not be decrypted"));
                break;
            }
        }
    }
    // Everything resolved is masked, even when a later secret failed. The run's first secrets
    // come as a built redactor for exactly these values from the cache (building one was most of
    // a run's CPU); a later step adds its values to the run's own.
    if redactor.is_empty() && !resolved.is_empty() {
        let values: Vec<(&str, &SecretString)> = resolved
            .iter()
            .map(|(name, r)| (name.as_str(), &r.value))
            .collect();
        *redactor = secrets.redactors().get(workspace_id, &values);
    } else {
        for r in resolved.values() {
            redactor.add(r.value.expose_secret());
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let plain = |tag: &Tag| tag.lookup(ctx).ok_or_else(|| format!("{tag} not found"));
    let mut budget = Budget::new(ctx.step_bytes);
    let over = || too_large(ctx.step_bytes);

    // URL: every value encoded for the component it stands in (see `webhook_url`).
    let url = webhook_url::render_url(&config.url, &resolved, ctx, budget.remaining().min(MAX_URL_BYTES))?;
    budget.charge(url.len()).map_err(|_| over())?;
    webhook_url::check_allowed_hosts(&url, &resolved)?;
    let audit_host = webhook_url::audit_host(&config.url, &url);

    let mut headers = HeaderMap::new();
    for (name, t) in &header_ts {
        let value = t
            .render_string_with_budget(&mut budget, |tag| -> Result<Cow<'_, str>, String> {
                match tag {
                    Tag::Secret { name } => Ok(Cow::Owned(resolved[name].value.expose_secret().to_owned())),
                    other => {
                        let value = plain(other)?;
                        Ok(Cow::Owned(sealflow_template::to_text(&value).into_owned()))
                    }
                }
            })
            .map_err(|e| match e {
                Limited::Hook(message) => message,
                Limited::TooLarge(_) => over(),
            })?;
        let value = Zeroizing::new(value.into_owned());
        if value.contains(['\r', '\n']) {
            return Err(format!(
                "header {name}: the rendered value contains CR or LF; refusing to send"
            ));
        }
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header {name}: invalid name"))?;
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name}: the rendered value is not valid"))?;
        headers.insert(header_name, header_value);
    }

    let body = match &body_t {
        None => None,
        Some(t) => {
            let rendered = t
                .render_with_budget(&mut budget, |tag| match tag {
                    Tag::Secret { name } => Ok(Cow::Owned(Value::String(
                        resolved[name].value.expose_secret().to_owned(),
                    ))),
                    other => plain(other),
                })
                .map_err(|e| match e.error {
                    Limited::Hook(message) => format!("config.body{}: {message}", e.location),
                    Limited::TooLarge(_) => over(),
                })?;
            let (bytes, content_type) = match rendered {
                Value::String(s) => (Bytes::from(s), "text/plain; charset=utf-8"),
                other => (
                    Bytes::from(serde_json::to_vec(&other).expect("JSON values serialize")),
                    "application/json",
                ),
            };
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            Some(bytes)
        }
    };
    let method = http::Method::from_bytes(config.method.as_str().as_bytes()).expect("validated method");
    Ok(Prepared {
        method,
        url,
        headers,
        body,
        carries_secret: !resolved.is_empty(),
        uses: resolved
            .iter()
            .map(|(name, r)| (name.clone(), r.version))
            .collect(),
        audit_host,
    })
}

/// The step's failure when its request would pass the render limit.
fn too_large(limit: usize) -> String {
    format!(
        "the rendered request (URL, headers and body) is over the step limit of {limit} bytes \
         (SEALFLOW_MAX_STEP_BYTES)"
    )
}
