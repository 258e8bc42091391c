//! The webhook step: render the request (`webhook_request`, resolving secrets at the moment of
//! sending), send through the egress guard with retries, and record only masked output.
//!
//! Values are encoded by where they are placed: in the URL by component (`webhook_url`; a
//! whole-URL secret is used as the URL), a header value must not contain CR or LF, and a value in
//! a JSON body becomes a JSON string (serde escapes it). A secret's `allowed_hosts` is checked
//! against the final URL before anything is sent, and requests that carry a secret never follow
//! redirects (a 3xx fails the step), so a secret cannot be bounced to another host.
//!
//! What is recorded is masked with the run's [`Redactor`] (see `sealflow_redact` for the forms):
//! the response body is read up to the cap plus the longest pattern, masked whole, and only then
//! cut (so a secret straddling the cut is never kept in part); a JSON body has its secret-bearing
//! number tokens masked before it is parsed; every error text goes through the same masking.
//! While the request is in flight the redactor is published in the run's [`LiveSlot`], so the
//! log writer masks the HTTP client's lines too.
//!
//! Residual copies: the rendered URL is held in zeroizing memory, but header values and body
//! bytes live in `http`/`bytes` buffers that cannot be zeroized; they are dropped when the send
//! finishes.

use std::time::{Duration, Instant};

use http::header::{HeaderValue, RETRY_AFTER};
use rand::Rng;
use sealflow_egress::{EgressClient, EgressError, OutboundRequest};
use sealflow_redact::{LiveSlot, Redactor};
use sealflow_workflow::WebhookConfig;
use serde_json::{json, Value};

use super::context::RunContext;
use super::response::read_masked_body;
use super::webhook_request::{prepare, Prepared};
use crate::domain::secrets::SecretsService;
use crate::metrics::{Metrics, WebhookSend};
use crate::store::{audit_kinds, AuditEvent, Store};

/// Upper bound on one wait between attempts (also caps a remote `Retry-After`).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const BASE_BACKOFF_MS: u64 = 200;

/// How a webhook step ended. `output`/`error` are already masked.
pub struct WebhookOutcome {
    pub ok: bool,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub attempts: i64,
    /// One `secret.use_outcome` entry per secret sent, for the caller to write with the step's
    /// result (so the outcome costs no commit of its own).
    pub audit: Vec<AuditEvent>,
    /// What the audit trail records as the outcome: `http_2xx`… or `error:<kind>`.
    label: String,
}

impl WebhookOutcome {
    fn failed(error: String, attempts: i64, label: String) -> Self {
        Self {
            ok: false,
            output: None,
            error: Some(error),
            attempts,
            audit: Vec::new(),
            label,
        }
    }
}

/// Where a step's secret uses are recorded.
pub struct AuditSite<'a> {
    pub store: &'a dyn Store,
    /// The run's id (a batch row's delivery id is `<run>-<row>`; the trail keeps them apart).
    pub run_id: &'a str,
    /// The batch row, if any.
    pub row: Option<i64>,
}

/// A webhook step rendered, with its secrets resolved into the run's redactor: what is sent on
/// every attempt, and the `secret.used` entries that must be on record before the first one.
pub struct Ready {
    prepared: Prepared,
    uses: Vec<AuditEvent>,
}

impl Ready {
    /// The `secret.used` entries (empty when the request carries no secret).
    pub fn uses(&self) -> &[AuditEvent] {
        &self.uses
    }
}

/// The step a use is recorded for.
pub struct UseSite<'a> {
    /// As [`AuditSite::run_id`].
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub row: Option<i64>,
}

/// Renders a webhook step and resolves its secrets (added to `redactor`); the outcome to record
/// instead when nothing can be sent (an unknown secret, a host the secret may not go to, …).
pub async fn ready(
    workspace_id: &str,
    config: &WebhookConfig,
    ctx: &RunContext,
    secrets: &SecretsService,
    redactor: &mut Redactor,
    site: UseSite<'_>,
) -> Result<Ready, WebhookOutcome> {
    let prepared = prepare(workspace_id, config, ctx, secrets, redactor)
        .await
        .map_err(|message| {
            let error = redactor.redact_str(&message).into_owned();
            WebhookOutcome::failed(error, 0, "not_sent".into())
        })?;
    let uses = prepared
        .uses
        .iter()
        .map(|(name, version)| AuditEvent {
            secret_name: Some(name.clone()),
            secret_version: Some(*version),
            run_id: Some(site.run_id.to_owned()),
            step_id: Some(site.step_id.to_owned()),
            host: Some(prepared.audit_host.clone()),
            detail: site.row.map(|row| format!("row={row}")),
            ..AuditEvent::new(workspace_id, audit_kinds::SECRET_USED, "engine")
        })
        .collect();
    Ok(Ready { prepared, uses })
}

pub struct WebhookStep<'a> {
    pub workspace_id: &'a str,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub config: &'a WebhookConfig,
    pub ctx: &'a RunContext,
    pub secrets: &'a SecretsService,
    pub egress: &'a EgressClient,
    /// Masks every secret the run has resolved; this step adds its own.
    pub redactor: &'a mut Redactor,
    /// Where the redactor is published for the log writer while the request is in flight.
    pub live: &'a LiveSlot,
    /// Counts every request sent (each attempt).
    pub metrics: &'a Metrics,
    pub audit: AuditSite<'a>,
    /// The step made [`Ready`] before the run was inserted, its uses committed with the insert
    /// (see `Engine::first_send`), and its secrets already in `redactor`: sent as it is.
    pub recorded: Option<Ready>,
}

impl WebhookStep<'_> {
    pub async fn run(self) -> WebhookOutcome {
        let WebhookStep {
            workspace_id,
            run_id,
            step_id,
            config,
            ctx,
            secrets,
            egress,
            redactor,
            live,
            metrics,
            audit,
            recorded,
        } = self;
        let (ready, on_record) = match recorded {
            Some(ready) => (Ok(ready), true),
            None => {
                let site = UseSite {
                    run_id: audit.run_id,
                    step_id,
                    row: audit.row,
                };
                let ready = ready(workspace_id, config, ctx, secrets, redactor, site).await;
                (ready, false)
            }
        };
        // Published before anything is sent: the HTTP client logs the destination.
        live.update(redactor);
        let Ready { prepared, uses } = match ready {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        };
        // Each use is on the record before the request leaves: if it cannot be written, nothing
        // is sent.
        if !on_record && !uses.is_empty() {
            let written = audit.store.append_audit(uses.clone()).await;
            for _ in &uses {
                metrics.audit_write(written.is_ok());
            }
            if let Err(e) = written {
                tracing::error!(error = %e, step = step_id, "the audit trail refused a secret use; not sending");
                let error = "the audit trail could not record this step's use of its secrets, so nothing \
                             was sent";
                return WebhookOutcome::failed(error.into(), 0, "not_sent".into());
            }
        }
        let mut outcome = send(run_id, step_id, config, &prepared, egress, redactor, metrics).await;
        outcome.audit = uses
            .into_iter()
            .map(|used| AuditEvent {
                at: crate::ids::now_ms(),
                kind: audit_kinds::SECRET_USE_OUTCOME.to_owned(),
                outcome: Some(outcome.label.clone()),
                detail: Some(match used.detail {
                    Some(row) => format!("{row} attempts={}", outcome.attempts),
                    None => format!("attempts={}", outcome.attempts),
                }),
                ..used
            })
            .collect();
        outcome
    }
}

/// Sends the prepared request with retries; the outcome's `audit` is left empty.
async fn send(
    run_id: &str,
    step_id: &str,
    config: &WebhookConfig,
    prepared: &Prepared,
    egress: &EgressClient,
    redactor: &mut Redactor,
    metrics: &Metrics,
) -> WebhookOutcome {
    let delivery_id = format!("{run_id}-{step_id}");
    let max_attempts = 1 + i64::from(config.retries);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut req = OutboundRequest::new(prepared.method.clone(), prepared.url.as_str());
        req.headers = prepared.headers.clone();
        for name in ["idempotency-key", "x-sealflow-delivery"] {
            if !req.headers.contains_key(name) {
                req.headers
                    .insert(name, HeaderValue::from_str(&delivery_id).expect("ids are ASCII"));
            }
        }
        req.body = prepared.body.clone();
        req.timeout = Some(Duration::from_millis(config.timeout_ms));
        let started = Instant::now();
        let sent = egress.send(req, !prepared.carries_secret).await;
        metrics.webhook_send(match &sent {
            Ok(resp) => WebhookSend::Response(resp.status().as_u16()),
            Err(e) => WebhookSend::from_error(e),
        });
        let retry_after = match sent {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = parse_retry_after(resp.headers().get(RETRY_AFTER));
                let host = resp.url().host_str().unwrap_or_default().to_owned();
                let (body, truncated) = read_masked_body(resp, redactor).await;
                let mut output = json!({ "status_code": status.as_u16(), "body": body });
                if truncated {
                    output["truncated"] = Value::Bool(true);
                }
                let label = format!("http_{}xx", status.as_u16() / 100);
                if status.is_success() {
                    return WebhookOutcome {
                        ok: true,
                        output: Some(output),
                        error: None,
                        attempts,
                        audit: Vec::new(),
                        label,
                    };
                }
                let retryable = status.as_u16() == 429 || status.is_server_error();
                if !retryable || attempts >= max_attempts {
                    let mut error =
                        format!("HTTP {} from {host} after {attempts} attempt(s)", status.as_u16());
                    if status.is_redirection() && prepared.carries_secret {
                        error.push_str("; redirects are not followed for requests that carry secrets");
                    }
                    return WebhookOutcome {
                        ok: false,
                        output: Some(output),
                        // The host may be (or hold) a secret.
                        error: Some(redactor.redact_str(&error).into_owned()),
                        attempts,
                        audit: Vec::new(),
                        label,
                    };
                }
                retry_after
            }
            Err(e) => {
                if !e.is_retryable() || attempts >= max_attempts {
                    let error = format!("{e} (after {attempts} attempt(s))");
                    let error = redactor.redact_str(&error).into_owned();
                    return WebhookOutcome::failed(error, attempts, error_label(&e));
                }
                None
            }
        };
        tracing::debug!(
            step = step_id,
            attempts,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook retry"
        );
        tokio::time::sleep(backoff(attempts, retry_after)).await;
    }
}

/// The kind of a send error, as the audit trail records it (no host, no detail).
fn error_label(e: &EgressError) -> String {
    let kind = match e {
        EgressError::Refused { .. } => "refused",
        EgressError::InvalidUrl { .. } => "invalid_url",
        EgressError::Connect { .. } => "connect",
        EgressError::Timeout { .. } => "timeout",
        EgressError::TooManyRedirects { .. } => "redirects",
        EgressError::Transport { .. } => "transport",
        _ => "other",
    };
    format!("error:{kind}")
}

fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let secs: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_BACKOFF))
}

/// Exponential backoff with jitter (half to all of 200 ms · 2^(n-1)), or the server's Retry-After.
fn backoff(attempt: i64, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d;
    }
    let exp = BASE_BACKOFF_MS.saturating_mul(1 << (attempt - 1).clamp(0, 16));
    let jittered = rand::thread_rng().gen_range(exp / 2..=exp);
    Duration::from_millis(jittered).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        assert!(backoff(1, None) <= Duration::from_millis(200));
        assert!(backoff(3, None) >= Duration::from_millis(400));
        assert_eq!(backoff(2, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert!(backoff(40, None) <= MAX_BACKOFF);
    }
}
