//! Sign-in, sign-out and the workspace switcher.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::NoFields;
use crate::dashboard::session::{self, Session, SessionForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::dashboard::view::{self, OrPage};
use crate::domain::users::UsersError;
use crate::http::{check_login_rate, pick_workspace, ApiError, AppState};

/// `/`: the runs page when signed in, else the sign-in page.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match Session::from_headers(&headers, &state).await {
        Ok(Some(_)) => view::see_other("/runs"),
        Ok(None) => view::see_other("/login"),
        Err(page) => page,
    }
}

fn login_form(state: &AppState, status: StatusCode, email: &str, error: Option<&str>) -> Response {
    let token = crate::ids::random_base62(32);
    let mut res = view::render_status(
        state,
        status,
        "login.html",
        context! { csrf => token, email => email, error => error },
    );
    res.headers_mut()
        .append(header::SET_COOKIE, session::login_csrf_cookie(state, &token));
    res
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match Session::from_headers(&headers, &state).await {
        Ok(Some(_)) => view::see_other("/runs"),
        Ok(None) => login_form(&state, StatusCode::OK, "", None),
        Err(page) => page,
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: SecretString,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Result<Response, Response> {
    let expected = session::cookie(req.headers(), LOGIN_CSRF_COOKIE).unwrap_or_default();
    let bytes = session::form_bytes(req, &state).await?;
    session::check_csrf(&state, None, &bytes, &expected)?;
    let form: LoginForm = session::parse_form(&state, None, &bytes)?;
    if let Err(e) = check_login_rate(&state, &form.email, &peer).await {
        let parts = e.into_parts();
        return Ok(login_form(
            &state,
            parts.status,
            &form.email,
            Some(&parts.message),
        ));
    }
    let signed_in = match state.users.sign_in(&form.email, form.password).await {
        Ok(s) => s,
        Err(UsersError::BadCredentials) => {
            return Ok(login_form(
                &state,
                StatusCode::UNAUTHORIZED,
                &form.email,
                Some("Invalid email or password."),
            ))
        }
        Err(e) => return Err(view::failure(&state, None, e.into())),
    };
    let workspace = match pick_workspace(&signed_in, None) {
        Ok(w) => w,
        Err(e) => return Err(view::failure(&state, None, e)),
    };
    let new = state
        .users
        .open_session(&signed_in.user.id, &workspace.workspace_id)
        .await
        .map_err(|e| view::failure(&state, None, e.into()))?;
    tracing::info!(user_id = %signed_in.user.id, "user signed in (dashboard)");
    let mut res = view::see_other("/runs");
    let headers = res.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session::session_cookie(&state, new.token.expose_secret()),
    );
    headers.append(
        header::SET_COOKIE,
        session::clear_cookie(&state, LOGIN_CSRF_COOKIE, "/login"),
    );
    Ok(res)
}

pub async fn logout(
    State(state): State<AppState>,
    form: SessionForm<NoFields>,
) -> Result<Response, Response> {
    let session = form.session;
    state
        .users
        .close_session(&session.record.token_hash)
        .await
        .or_page(&state, &session)?;
    let mut res = view::see_other("/login");
    res.headers_mut().append(
        header::SET_COOKIE,
        session::clear_cookie(&state, SESSION_COOKIE, "/"),
    );
    Ok(res.into_response())
}

#[derive(Deserialize)]
pub struct SwitchForm {
    workspace: String,
}

pub async fn switch(
    State(state): State<AppState>,
    form: SessionForm<SwitchForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    state
        .users
        .switch_workspace(&session.record, &form.workspace)
        .await
        .map_err(ApiError::from)
        .or_page(&state, &session)?;
    Ok(view::see_other("/runs?notice=switched"))
}
