//! Dashboard sessions and CSRF.
//!
//! The session cookie holds a random 43-character token; the database keeps only its SHA-256
//! (so a leaked database row cannot be replayed as a cookie). The cookie is `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, and `Secure` when `SEALFLOW_PUBLIC_URL` is https. Each session
//! has its own random CSRF token, which every form posts back as `csrf` and which is compared in
//! constant time ([`SessionForm`]). The sign-in form, which has no session yet, uses a
//! double-submit token: a random value in a short-lived cookie that the form must repeat.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::view;
use crate::auth::Principal;
use crate::domain::users::SESSION_TTL_MS;
use crate::http::AppState;
use crate::store::{Membership, SessionRecord};

pub const SESSION_COOKIE: &str = "sealflow_session";
pub const LOGIN_CSRF_COOKIE: &str = "sealflow_login_csrf";

/// A signed-in person acting in one workspace.
pub struct Session {
    pub record: SessionRecord,
    pub principal: Principal,
    pub email: String,
    pub workspaces: Vec<Membership>,
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn secure_suffix(state: &AppState) -> &'static str {
    if state.public_base().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        secure_suffix(state)
    );
    HeaderValue::from_str(&value).expect("cookie text is ASCII")
}

/// `Set-Cookie` that removes a cookie.
pub fn clear_cookie(state: &AppState, name: &str, path: &str) -> HeaderValue {
    let value = format!(
        "{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_suffix(state)
    );
    HeaderValue::from_str(&value).expect("cookie text is ASCII")
}

/// `Set-Cookie` for the sign-in form's double-submit token.
pub fn login_csrf_cookie(state: &AppState, token: &str) -> HeaderValue {
    let value = format!(
        "{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure_suffix(state)
    );
    HeaderValue::from_str(&value).expect("cookie text is ASCII")
}

/// Constant-time comparison of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    !a.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn to_sign_in() -> Response {
    Redirect::to("/login").into_response()
}

impl Session {
    /// The session a request's cookie names, if it is live and its user still belongs to its
    /// workspace.
    pub async fn from_headers(headers: &HeaderMap, state: &AppState) -> Result<Option<Self>, Response> {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let fail = |e: crate::http::ApiError| view::failure(state, None, e);
        let Some(record) = state.users.session(&token).await.map_err(|e| fail(e.into()))? else {
            return Ok(None);
        };
        let Some(principal) = state
            .auth
            .user_principal(&record.user_id, &record.workspace_id)
            .await
            .map_err(|e| fail(e.into()))?
        else {
            return Ok(None);
        };
        let user = state
            .users
            .get_user(&record.user_id)
            .await
            .map_err(|e| fail(e.into()))?;
        let workspaces = state
            .users
            .workspaces(&record.user_id)
            .await
            .map_err(|e| fail(e.into()))?;
        tracing::Span::current().record("workspace_id", principal.workspace_id.as_str());
        Ok(Some(Session {
            record,
            principal,
            email: user.email,
            workspaces,
        }))
    }
}

/// Pages need a session: without one the browser is sent to the sign-in page.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Session::from_headers(&parts.headers, state)
            .await?
            .ok_or_else(to_sign_in)
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// A form post from a signed-in page: the session, and the form, whose `csrf` field matched.
pub struct SessionForm<T> {
    pub session: Session,
    pub form: T,
}

/// Reads a URL-encoded form body (within the body limit).
pub async fn form_bytes(req: Request, state: &AppState) -> Result<Bytes, Response> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        view::message(
            state,
            None,
            status,
            "Form not accepted",
            "The form could not be read (it may be too large).",
        )
    })
}

pub fn parse_form<T: DeserializeOwned>(
    state: &AppState,
    session: Option<&Session>,
    bytes: &[u8],
) -> Result<T, Response> {
    serde_urlencoded::from_bytes(bytes).map_err(|_| {
        view::message(
            state,
            session,
            StatusCode::BAD_REQUEST,
            "Form not accepted",
            "The form is missing a field or has one that is not valid.",
        )
    })
}

/// Checks the posted `csrf` field against `expected`.
pub fn check_csrf(
    state: &AppState,
    session: Option<&Session>,
    bytes: &[u8],
    expected: &str,
) -> Result<(), Response> {
    let posted = serde_urlencoded::from_bytes::<CsrfField>(bytes)
        .ok()
        .and_then(|f| f.csrf)
        .unwrap_or_default();
    if tokens_match(&posted, expected) {
        Ok(())
    } else {
        tracing::warn!("dashboard form refused: missing or wrong CSRF token");
        Err(view::message(
            state,
            session,
            StatusCode::FORBIDDEN,
            "Form not accepted",
            "This form is out of date or did not come from this site. Reload the page and try again.",
        ))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for SessionForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = form_bytes(Request::from_parts(parts, body), state).await?;
        check_csrf(state, Some(&session), &bytes, &session.record.csrf_token)?;
        let form = parse_form(state, Some(&session), &bytes)?;
        Ok(SessionForm { session, form })
    }
}
