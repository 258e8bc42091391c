//! Request extractors whose rejections use the API's JSON error shape.
//!
//! [`JsonBody`] reads the body itself rather than using `axum::Json` so that (a) a missing
//! `Content-Type` is accepted (curl and some clients omit it), (b) a body over the limit is a JSON
//! 413, (c) serde's messages are cleaned of the offending value, which may be a secret, and (d) only
//! one JSON object is a body: serde would otherwise fill a struct from an array (`["n", "v"]`) and
//! ignore text after the value, so a body two parsers read differently could pass.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::Principal;

/// A JSON request body deserialized into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The raw bytes of a JSON request body (content type and size checked), for callers that must
/// see the exact bytes, such as a signature check.
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        read_body(req, state).await.map(JsonBytes)
    }
}

/// A JSON body that may be absent (empty); used where a query string is the alternative.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let is_json = mime.eq_ignore_ascii_case("application/json")
        || (mime.starts_with("application/") && mime.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "request bodies must be JSON (Content-Type: application/json), not {mime:?}"
        )))
    }
}

/// Reads the whole body within the configured body timeout, so a client that sends a body
/// slowly (or stops halfway) cannot hold a connection and a handler indefinitely.
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config.body_timeout;
    let read = tokio::time::timeout(limit, Bytes::from_request(req, state))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} ms",
                limit.as_millis()
            ))
        })?;
    read.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "request body is larger than the limit of {} bytes",
                state.config.body_limit
            ))
        } else {
            ApiError::BadRequest("could not read the request body".into())
        }
    })
}

/// Parses a body that must be exactly one JSON object (surrounding whitespace allowed).
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid request body: it must be one JSON object ({…})".into(),
            ))
        }
        None => {
            return Err(ApiError::BadRequest(
                "invalid request body: it is empty; expected one JSON object".into(),
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." {
                    String::new()
                } else {
                    format!("field `{path}`: ")
                };
                format!(
                    "invalid request body: {field}{}",
                    without_value(&inner.to_string())
                )
            }
            serde_json::error::Category::Eof => "malformed JSON: the body ended early".to_owned(),
            _ => format!(
                "malformed JSON at line {} column {}",
                inner.line(),
                inner.column()
            ),
        };
        ApiError::BadRequest(what)
    })?;
    de.end().map_err(|e| {
        ApiError::BadRequest(format!(
            "malformed JSON: text after the JSON object at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

/// serde writes the unexpected value into messages like "invalid type: string \"…\", expected
/// …". That value may be a secret, so keep only what was expected.
fn without_value(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    for kind in ["invalid type", "invalid value", "invalid length"] {
        if message.starts_with(kind) {
            if let Some((_, expected)) = message.split_once(", expected ") {
                return format!("{kind}, expected {expected}");
            }
            return kind.to_owned();
        }
    }
    if message.starts_with("unknown variant") {
        if let Some((_, expected)) = message.split_once(", expected ") {
            return format!("unknown value, expected {expected}");
        }
    }
    message.to_owned()
}

/// Path parameters deserialized into `T`. axum's own `Path` answers a parameter that is not valid
/// UTF-8 with a text/plain 400; this one answers in the JSON shape (without echoing the value).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| match e {
                PathRejection::FailedToDeserializePathParams(inner)
                    if matches!(inner.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
                {
                    ApiError::BadRequest("a path parameter is not valid UTF-8 text".into())
                }
                _ => ApiError::BadRequest("a path parameter could not be read".into()),
            })
    }
}

/// Query parameters deserialized into `T`; a bad query is a JSON 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryParams(v))
            .map_err(|e| {
                ApiError::BadRequest(format!("invalid query string: {}", without_value(&e.body_text())))
            })
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header =
            match parts.headers.get(header::AUTHORIZATION) {
                None => None,
                Some(v) => Some(v.to_str().map_err(|_| {
                    ApiError::Unauthorized("the Authorization header is not valid text".into())
                })?),
            };
        let principal = state.auth.authenticate(header).await?;
        tracing::Span::current().record("workspace_id", principal.workspace_id.as_str());
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::without_value;

    #[test]
    fn serde_messages_lose_the_offending_value() {
        let m = without_value("invalid type: string \"s3cr3t\", expected a sequence at line 1 column 9");
        assert_eq!(m, "invalid type, expected a sequence");
        let m = without_value("invalid type: integer `123456`, expected a string");
        assert!(!m.contains("123456"));
        assert_eq!(without_value("missing field `value`"), "missing field `value`");
    }
}
