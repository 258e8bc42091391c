//! The one HTTP error type, and the one place every lower-layer error becomes a status code.
//!
//! Body, always: `{"error": msg, "message": msg, "code": "snake_case"}` plus optional `details`
//! (the official clients read `message`, then `error`). A 500 sends only a generic sentence and an
//! error id; the whole cause chain is logged under that id. Driver text never reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::AuthError;
use crate::domain::audit::AuditError;
use crate::domain::files::FileError;
use crate::domain::runs::RunsError;
use crate::domain::secrets::SecretsError;
use crate::domain::users::UsersError;
use crate::domain::workflows::WorkflowsError;
use crate::store::StoreError;
use crate::vault::VaultError;

/// The error body, for the OpenAPI document (the response is built with `json!`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A human sentence (the same text as `message`).
    pub error: String,
    pub message: String,
    /// A stable snake_case code, e.g. `invalid_request`, `validation_failed`.
    pub code: String,
    /// Where the problem is, when known (e.g. `{"step": "notify", "field": "config.url"}`).
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    RequestTimeout(String),
    Conflict(String),
    PayloadTooLarge(String),
    /// The request target is longer than the server parses (written by `crate::server`).
    UriTooLong(String),
    UnsupportedMediaType(String),
    /// The request head has too many or too large header fields (written by `crate::server`).
    HeadersTooLarge(String),
    Unprocessable {
        message: String,
        details: Option<Value>,
    },
    PaymentRequired(String),
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
        /// The window's limit and reset (unix seconds), for the `X-RateLimit-*` headers.
        limit: i64,
        reset: i64,
    },
    /// A feature sealflow does not have (the official clients read 503 as "not configured").
    Unavailable(String),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::HeadersTooLarge(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"),
            Self::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_supported"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

/// The error's cause chain as one line, for logs.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An error taken apart, for a page that shows it in HTML rather than JSON.
pub struct ErrorParts {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Retry-After seconds, the window's limit and its reset (unix seconds), for a 429.
    pub rate: Option<(u64, i64, i64)>,
}

impl ApiError {
    /// Status, code and message; a 500 is logged here under a new reference id, and only that
    /// id is in the message.
    pub fn into_parts(self) -> ErrorParts {
        let (status, code) = self.status_and_code();
        let mut details = None;
        let mut rate = None;
        let message = match self {
            Self::BadRequest(m)
            | Self::Unauthorized(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::RequestTimeout(m)
            | Self::Conflict(m)
            | Self::PayloadTooLarge(m)
            | Self::UriTooLong(m)
            | Self::UnsupportedMediaType(m)
            | Self::HeadersTooLarge(m)
            | Self::PaymentRequired(m)
            | Self::Unavailable(m) => m,
            Self::MethodNotAllowed => "method not allowed on this route".to_owned(),
            Self::Unprocessable { message, details: d } => {
                details = d;
                message
            }
            Self::TooManyRequests {
                message,
                retry_after_secs,
                limit,
                reset,
            } => {
                rate = Some((retry_after_secs, limit, reset));
                message
            }
            Self::Internal(e) => {
                let error_id = crate::ids::new_id("err");
                tracing::error!(error_id = %error_id, error = %chain(e.as_ref()), "internal error");
                format!("internal error (reference {error_id})")
            }
        };
        ErrorParts {
            status,
            code,
            message,
            details,
            rate,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = self.into_parts();
        let mut body = json!({ "error": parts.message, "message": parts.message, "code": parts.code });
        if let Some(d) = parts.details {
            body["details"] = d;
        }
        let mut response = (parts.status, Json(body)).into_response();
        if let Some((secs, limit, reset)) = parts.rate {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
            headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Invalid(_) => Self::Unauthorized(e.to_string()),
            AuthError::Forbidden { .. } => Self::Forbidden(e.to_string()),
            AuthError::Store(e) => Self::internal(e),
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Invalid(m) => Self::BadRequest(m),
            SecretsError::NotFound(_) => Self::NotFound(e.to_string()),
            SecretsError::Busy(_) => Self::Conflict(e.to_string()),
            SecretsError::Store(e) => Self::internal(e),
            SecretsError::Vault(e) => Self::internal(e),
        }
    }
}

impl From<WorkflowsError> for ApiError {
    fn from(e: WorkflowsError) -> Self {
        match e {
            WorkflowsError::Invalid { message, step, field } => {
                let mut details = serde_json::Map::new();
                if let Some(step) = step {
                    details.insert("step".into(), step.into());
                }
                if let Some(field) = field {
                    details.insert("field".into(), field.into());
                }
                Self::Unprocessable {
                    message,
                    details: Some(Value::Object(details)),
                }
            }
            WorkflowsError::BadRequest(m) => Self::BadRequest(m),
            WorkflowsError::NotFound(_) => Self::NotFound(e.to_string()),
            WorkflowsError::Busy(_) => Self::Conflict(e.to_string()),
            WorkflowsError::Conflict(m) => Self::Conflict(m),
            WorkflowsError::Store(e) => Self::internal(e),
        }
    }
}

impl From<RunsError> for ApiError {
    fn from(e: RunsError) -> Self {
        match e {
            RunsError::BadRequest(m) => Self::BadRequest(m),
            RunsError::NotFound(_) => Self::NotFound(e.to_string()),
            RunsError::Conflict(m) => Self::Conflict(m),
            RunsError::RateLimited {
                retry_after_secs,
                limit,
                reset,
            } => Self::TooManyRequests {
                message: e.to_string(),
                retry_after_secs,
                limit,
                reset,
            },
            RunsError::InsufficientCredits(m) => Self::PaymentRequired(m),
            RunsError::Store(e) => Self::internal(e),
        }
    }
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Unsupported(m) => Self::UnsupportedMediaType(m),
            FileError::TooLarge(m) => Self::PayloadTooLarge(m),
            FileError::Invalid(m) => Self::Unprocessable {
                message: m,
                details: None,
            },
            FileError::Store(e) => Self::internal(e),
        }
    }
}

impl From<UsersError> for ApiError {
    fn from(e: UsersError) -> Self {
        match e {
            UsersError::Invalid(m) => Self::BadRequest(m),
            UsersError::BadCredentials => Self::Unauthorized(e.to_string()),
            UsersError::NotFound(m) => Self::NotFound(m),
            UsersError::Conflict(m) => Self::Conflict(m),
            UsersError::Store(e) => Self::internal(e),
            UsersError::Hashing(e) => Self::Internal(e.into()),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => Self::BadRequest(m),
            AuditError::Store(e) => Self::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        Self::internal(e)
    }
}
