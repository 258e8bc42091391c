//! Rendering helpers: the page shell (who is signed in, where), HTML responses, error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{context, Value};

use super::session::Session;
use crate::auth::Access;
use crate::http::{ApiError, AppState};

/// What every signed-in page shows in its header, and which controls it may offer.
pub fn shell(session: &Session) -> Value {
    let p = &session.principal;
    let slug = session
        .workspaces
        .iter()
        .find(|w| w.workspace_id == p.workspace_id)
        .map(|w| w.slug.clone())
        .unwrap_or_default();
    let workspaces: Vec<Value> = session
        .workspaces
        .iter()
        .map(|w| context! { id => w.workspace_id, slug => w.slug, role => w.role.as_str() })
        .collect();
    context! {
        email => session.email,
        role => p.role.as_str(),
        workspace_id => p.workspace_id,
        workspace_slug => slug,
        workspaces => workspaces,
        csrf => session.record.csrf_token,
        can_write => p.require(Access::Write).is_ok(),
        is_admin => p.require(Access::Admin).is_ok(),
    }
}

/// Renders a template with `status`.
pub fn render_status(state: &AppState, status: StatusCode, name: &str, ctx: Value) -> Response {
    match state.pages.render(name, ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            let error_id = crate::ids::new_id("err");
            tracing::error!(error_id = %error_id, error = %e, template = name, "page rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(format!(
                    "<!doctype html><title>Error</title><p>Internal error (reference {error_id}).</p>"
                )),
            )
                .into_response()
        }
    }
}

pub fn render(state: &AppState, name: &str, ctx: Value) -> Response {
    render_status(state, StatusCode::OK, name, ctx)
}

/// A short page with a heading and a sentence.
pub fn message(
    state: &AppState,
    session: Option<&Session>,
    status: StatusCode,
    heading: &str,
    text: &str,
) -> Response {
    let ctx = context! { shell => session.map(shell), heading => heading, text => text };
    render_status(state, status, "message.html", ctx)
}

/// An error from a domain service or the auth layer, as a page with the API's status.
pub fn failure(state: &AppState, session: Option<&Session>, e: ApiError) -> Response {
    let parts = e.into_parts();
    let heading = match parts.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::CONFLICT => "Conflict",
        s if s.is_client_error() => "Not accepted",
        _ => "Something went wrong",
    };
    message(state, session, parts.status, heading, &parts.message)
}

/// 303 to `path`, so a reload after a post does not post again.
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// Turns a domain result into a page error on failure.
pub trait OrPage<T> {
    fn or_page(self, state: &AppState, session: &Session) -> Result<T, Response>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, state: &AppState, session: &Session) -> Result<T, Response> {
        self.map_err(|e| failure(state, Some(session), e.into()))
    }
}

/// A timestamp as pages show it.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Fixed notices a redirect may name (`?notice=`), so no text from the URL is shown.
pub fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "saved" => "Secret saved. Its value is stored encrypted and will not be shown.",
        "deleted" => "Secret deleted.",
        "created" => "Workflow created.",
        "updated" => "Workflow saved as a new version.",
        "status" => "Workflow status changed.",
        "rotated" => "Webhook URL rotated; the old URL no longer works.",
        "revoked" => "API key revoked.",
        "cancelled" => "Run cancelled.",
        "switched" => "Workspace switched.",
        _ => return None,
    })
}
