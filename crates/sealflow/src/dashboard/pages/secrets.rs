//! The secrets page: names, times, allowed hosts and the workflows that use each; create,
//! replace and delete (after a confirmation page). A value is never rendered, not even back into
//! the form after a failed save.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use secrecy::SecretString;
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::Access;
use crate::dashboard::session::{Session, SessionForm};
use crate::dashboard::view::{self, OrPage};
use crate::domain::secrets::PutSecret;
use crate::http::{ApiError, AppState};

async fn page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    extra: Value,
) -> Result<Response, Response> {
    let ws = &session.principal.workspace_id;
    let secrets = state.secrets.list(ws).await.or_page(state, session)?;
    let usage = state.workflows.secret_usage(ws).await.or_page(state, session)?;
    let rows: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let used_by: Vec<Value> = usage
                .get(&s.name)
                .into_iter()
                .flatten()
                .map(|(id, name)| context! { id => id, name => name })
                .collect();
            context! {
                name => s.name,
                allowed_hosts => s.allowed_hosts,
                used_by => used_by,
                created_at => view::when(s.created_at),
                updated_at => view::when(s.updated_at),
            }
        })
        .collect();
    let ctx = context! { shell => view::shell(session), page => "secrets", secrets => rows, ..extra };
    Ok(view::render_status(state, status, "secrets.html", ctx))
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, Response> {
    let extra = context! { notice => view::notice(q.notice.as_deref()) };
    page(&state, &session, StatusCode::OK, extra).await
}

#[derive(Deserialize)]
pub struct SaveSecret {
    name: String,
    value: SecretString,
    #[serde(default)]
    allowed_hosts: String,
}

pub async fn save(
    State(state): State<AppState>,
    form: SessionForm<SaveSecret>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    let hosts: Vec<String> = form
        .allowed_hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    // An empty field is "not sent": a replace keeps the current list.
    let allowed_hosts = (!hosts.is_empty()).then_some(Some(hosts));
    let put = PutSecret {
        name: form.name.trim().to_owned(),
        value: form.value,
        allowed_hosts,
    };
    match state
        .secrets
        .put(&session.principal.workspace_id, &session.principal.actor(), put)
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %form.name.trim(), "secret saved (dashboard)");
            Ok(view::see_other("/secrets?notice=saved"))
        }
        Err(e) => {
            let parts = ApiError::from(e).into_parts();
            // The name and hosts go back into the form; the value never does.
            let extra = context! {
                error => parts.message,
                form_name => form.name,
                form_hosts => form.allowed_hosts,
            };
            page(&state, &session, parts.status, extra).await
        }
    }
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: String,
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NameQuery>,
) -> Result<Response, Response> {
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    crate::domain::secrets::validate_name(&q.name).or_page(&state, &session)?;
    let ctx = context! { shell => view::shell(&session), page => "secrets", name => q.name };
    Ok(view::render(&state, "secret_delete.html", ctx))
}

pub async fn delete(
    State(state): State<AppState>,
    form: SessionForm<NameQuery>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    state
        .secrets
        .delete(
            &session.principal.workspace_id,
            &session.principal.actor(),
            &form.name,
        )
        .await
        .or_page(&state, &session)?;
    tracing::info!(secret = %form.name, "secret deleted (dashboard)");
    Ok(view::see_other("/secrets?notice=deleted"))
}
