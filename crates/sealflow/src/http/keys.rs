//! `/keys`: list, issue and revoke API keys (spec §8). Admin only; a key is shown once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{JsonBody, QueryParams};
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{issue_api_key, Access, Principal};
use crate::ids::{now_ms, rfc3339};
use crate::store::Role;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create, revoke))
}

#[utoipa::path(get, path = "/keys", tag = "keys",
    responses((status = 200, description = "The workspace's keys, with previews only"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let keys: Vec<Value> = state
        .store
        .list_api_keys(&principal.workspace_id)
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "key_preview": k.key_preview,
                "role": k.role.as_str(),
                "created_at": rfc3339(k.created_at),
                "last_used": k.last_used.map(rfc3339),
                "total_requests": k.total_requests,
                "credits_used": 0,
                "is_active": k.revoked_at.is_none(),
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateKey {
    name: String,
    role: Option<String>,
}

#[utoipa::path(post, path = "/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, description = "The new key, shown this once"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Access::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::BadRequest("name must be 1 to 200 characters".into()));
    }
    let role = match body.role.as_deref() {
        None => Role::Member,
        Some(r) => Role::parse(r)
            .ok_or_else(|| ApiError::BadRequest("role must be one of admin, member, readonly".into()))?,
    };
    if role > principal.role {
        return Err(ApiError::Forbidden(format!(
            "a {} may not issue a key with the {role} role",
            principal.role
        )));
    }
    let issued = issue_api_key(&principal.workspace_id, name, role);
    state.store.insert_api_key(&issued.record).await?;
    tracing::info!(key_id = %issued.record.id, role = %role, "API key issued");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": issued.record.id,
            "name": issued.record.name,
            "key": issued.key.expose_secret(),
            "role": role.as_str(),
            "created_at": rfc3339(issued.record.created_at),
        })),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    id: Option<String>,
    #[serde(default)]
    permanent: Option<String>,
}

#[utoipa::path(delete, path = "/keys", tag = "keys", params(RevokeQuery),
    responses((status = 200, description = "Revoked or deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<RevokeQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let id = query
        .id
        .ok_or_else(|| ApiError::BadRequest("id is required (?id=key_…)".into()))?;
    let permanent = matches!(query.permanent.as_deref(), Some("true" | "1"));
    let found = if permanent {
        state.store.delete_api_key(&principal.workspace_id, &id).await?
    } else {
        state
            .store
            .revoke_api_key(&principal.workspace_id, &id, now_ms())
            .await?
    };
    if !found {
        return Err(ApiError::NotFound(format!("API key {id:?} not found")));
    }
    let message = if permanent {
        "API key deleted"
    } else {
        "API key revoked"
    };
    tracing::info!(key_id = %id, permanent, "API key revoked");
    Ok(Json(json!({ "message": message })))
}
