//! The API keys page (admins): list, create (the key shown once, on the answer to the post),
//! revoke. The same rules as `/api/keys`: admin only, a key's role at most the creator's.

use axum::extract::{Query, State};
use axum::response::Response;
use minijinja::{context, Value};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::{issue_api_key, Access};
use crate::dashboard::session::{Session, SessionForm};
use crate::dashboard::view::{self, OrPage};
use crate::http::{ApiError, AppState};
use crate::ids::now_ms;
use crate::store::Role;

async fn page(state: &AppState, session: &Session, extra: Value) -> Result<Response, Response> {
    let keys: Vec<Value> = if session.principal.require(Access::Admin).is_ok() {
        state
            .store
            .list_api_keys(&session.principal.workspace_id)
            .await
            .or_page(state, session)?
            .iter()
            .map(|k| {
                context! {
                    id => k.id, name => k.name, key_preview => k.key_preview, role => k.role.as_str(),
                    active => k.revoked_at.is_none(), last_used => k.last_used.map(view::when),
                    total_requests => k.total_requests,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let ctx = context! { shell => view::shell(session), page => "keys", keys => keys, ..extra };
    Ok(view::render(state, "keys.html", ctx))
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, Response> {
    page(
        &state,
        &session,
        context! { notice => view::notice(q.notice.as_deref()) },
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    role: String,
}

pub async fn create(
    State(state): State<AppState>,
    form: SessionForm<CreateForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    let p = &session.principal;
    p.require(Access::Admin).or_page(&state, &session)?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 200 {
        let e = ApiError::BadRequest("name must be 1 to 200 characters".into());
        return Err(view::failure(&state, Some(&session), e));
    }
    let role = Role::parse(&form.role)
        .ok_or_else(|| ApiError::BadRequest("role must be one of admin, member, readonly".into()))
        .or_page(&state, &session)?;
    let issued = issue_api_key(&p.workspace_id, name, role);
    state
        .store
        .insert_api_key(&issued.record, &p.actor())
        .await
        .or_page(&state, &session)?;
    tracing::info!(key_id = %issued.record.id, role = %role, "API key issued (dashboard)");
    let new_key = context! { name => issued.record.name, key => issued.key.expose_secret() };
    page(&state, &session, context! { new_key => new_key }).await
}

#[derive(Deserialize)]
pub struct RevokeForm {
    id: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    form: SessionForm<RevokeForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    let p = &session.principal;
    p.require(Access::Admin).or_page(&state, &session)?;
    let found = state
        .store
        .revoke_api_key(&p.workspace_id, &form.id, now_ms(), &p.actor())
        .await
        .or_page(&state, &session)?;
    if !found {
        let e = ApiError::NotFound(format!("API key {:?} not found", form.id));
        return Err(view::failure(&state, Some(&session), e));
    }
    tracing::info!(key_id = %form.id, "API key revoked (dashboard)");
    Ok(view::see_other("/keys?notice=revoked"))
}
