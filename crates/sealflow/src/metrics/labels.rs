//! Label sets, and the mapping of what the code knows onto their fixed values. Anything outside a
//! known set becomes `other` rather than being copied into a label.

use prometheus_client::encoding::EncodeLabelSet;
use sealflow_egress::EgressError;
use sealflow_workflow::StepType;

/// The route label of a request that matched no route (its path is never used as a label).
pub(super) const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HttpLabels {
    pub method: &'static str,
    /// A route template compiled into the router (`/api/workflows/{id}`), or [`UNMATCHED_ROUTE`].
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TriggerLabels {
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RunEndLabels {
    pub trigger: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StepLabels {
    pub step_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WebhookLabels {
    pub outcome: &'static str,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub outcome: &'static str,
}

impl OutcomeLabels {
    pub fn of(ok: bool) -> Self {
        Self {
            outcome: if ok { "ok" } else { "error" },
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LimitLabels {
    pub limit: &'static str,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEndStatus {
    Completed,
    Failed,
    Cancelled,
}

impl RunEndStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How one request of a webhook step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookSend {
    /// A response arrived with this status code.
    Response(u16),
    /// The connect or overall timeout elapsed.
    Timeout,
    /// No connection could be made (DNS, TCP, TLS).
    ConnectError,
    /// The egress guard refused the destination: nothing left the machine.
    Refused,
    /// Any other failure (a protocol error, a reset, too many redirects).
    Error,
}

impl WebhookSend {
    pub fn from_error(e: &EgressError) -> Self {
        match e {
            EgressError::Timeout { .. } => Self::Timeout,
            EgressError::Connect { .. } => Self::ConnectError,
            EgressError::Refused { .. } | EgressError::InvalidUrl { .. } => Self::Refused,
            _ => Self::Error,
        }
    }

    pub(super) fn labels(self) -> WebhookLabels {
        let (outcome, status_class) = match self {
            Self::Response(code) => {
                let class = match code / 100 {
                    1 => "1xx",
                    2 => "2xx",
                    3 => "3xx",
                    4 => "4xx",
                    5 => "5xx",
                    _ => "other",
                };
                let outcome = if class == "2xx" { "success" } else { "http_error" };
                (outcome, class)
            }
            Self::Timeout => ("timeout", "none"),
            Self::ConnectError => ("connect_error", "none"),
            Self::Refused => ("refused", "none"),
            Self::Error => ("error", "none"),
        };
        WebhookLabels {
            outcome,
            status_class,
        }
    }
}

/// The standard methods by name; anything else (a client may send any token) is `other`.
pub(super) fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The trigger types runs are created with.
pub(super) fn trigger_label(trigger: &str) -> &'static str {
    match trigger {
        "manual" => "manual",
        "webhook" => "webhook",
        "schedule" => "schedule",
        _ => "other",
    }
}

pub(super) fn step_label(step: StepType) -> &'static str {
    step.as_str()
}

/// The limit a rate-limit bucket (`run:<caller>`, `hook:<workflow>`, …) belongs to; the part
/// after the colon names a caller and is never used.
pub(super) fn limit_label(bucket: &str) -> &'static str {
    match bucket.split_once(':').map_or(bucket, |(kind, _)| kind) {
        "run" => "runs",
        "hook" => "webhook_ingest",
        "login-email" => "sign_in_email",
        "login-addr" => "sign_in_address",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_map_to_other_and_never_through() {
        assert_eq!(trigger_label("run_abc123"), "other");
        assert_eq!(limit_label("run:key_abc"), "runs");
        assert_eq!(limit_label("sk_live_secret"), "other");
        assert_eq!(method_label(&http::Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(WebhookSend::Response(503).labels().status_class, "5xx");
        assert_eq!(WebhookSend::Response(204).labels().outcome, "success");
        assert_eq!(WebhookSend::Response(999).labels().status_class, "other");
    }
}
