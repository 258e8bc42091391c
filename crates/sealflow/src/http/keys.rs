//! `/keys`: list, issue, rename, disable/enable and revoke API keys, and cap their credits
//! (spec §8, and the routes the official CLI calls under `/api/cli/keys`). Admin only; a key is
//! shown once. Revoking keeps the key listed as disabled (it can be enabled again);
//! `permanent=true` deletes it. One run started by a key costs one credit.

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
use crate::store::{ApiKeyRecord, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create, revoke, rename, set_status))
        .routes(routes!(set_limit))
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
        .map(|k| key_view(&k))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// A key as listed: previews only. `key_prefix` (the CLI's column) is the key's first characters;
/// `key_preview` (the SDK's field) adds its last four.
fn key_view(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "key_prefix": key_prefix(&k.key_preview),
        "key_preview": k.key_preview,
        "role": k.role.as_str(),
        "created_at": rfc3339(k.created_at),
        "last_used": k.last_used.map(rfc3339),
        "total_requests": k.total_requests,
        "credits_used": k.credits_used,
        "credit_limit": k.credit_limit,
        "is_active": k.revoked_at.is_none(),
        "status": if k.revoked_at.is_none() { "enabled" } else { "disabled" },
        "disabled_at": k.revoked_at.map(rfc3339),
    })
}

/// The part of a preview (`sf_live_Ab3d…x9Yz`) that is a prefix of the key.
fn key_prefix(preview: &str) -> &str {
    preview.split('…').next().unwrap_or(preview)
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
    let name = check_name(&body.name)?;
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
    state
        .store
        .insert_api_key(&issued.record, &principal.actor())
        .await?;
    tracing::info!(key_id = %issued.record.id, role = %role, "API key issued");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": issued.record.id,
            "name": issued.record.name,
            "key": issued.key.expose_secret(),
            "key_prefix": key_prefix(&issued.record.key_preview),
            "key_preview": issued.record.key_preview,
            "role": role.as_str(),
            "credits_used": 0,
            "credit_limit": Value::Null,
            "is_active": true,
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
        state
            .store
            .delete_api_key(&principal.workspace_id, &id, &principal.actor())
            .await?
    } else {
        state
            .store
            .set_api_key_enabled(&principal.workspace_id, &id, false, now_ms(), &principal.actor())
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
    Ok(Json(
        json!({ "success": true, "message": message, "id": id, "deleted": permanent, "is_active": false }),
    ))
}

fn check_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::BadRequest("name must be 1 to 200 characters".into()));
    }
    Ok(name)
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("API key {id:?} not found"))
}

#[derive(Deserialize, ToSchema)]
pub struct RenameKey {
    id: String,
    name: String,
}

#[utoipa::path(put, path = "/keys", tag = "keys", request_body = RenameKey,
    responses((status = 200, description = "Renamed"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rename(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<RenameKey>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let name = check_name(&body.name)?;
    if !state
        .store
        .rename_api_key(&principal.workspace_id, &body.id, name, &principal.actor())
        .await?
    {
        return Err(not_found(&body.id));
    }
    tracing::info!(key_id = %body.id, "API key renamed");
    Ok(Json(json!({ "success": true, "id": body.id, "name": name })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    id: Option<String>,
    /// `enable` or `disable`.
    action: Option<String>,
}

#[utoipa::path(patch, path = "/keys", tag = "keys", params(StatusQuery),
    responses((status = 200, description = "Enabled or disabled"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_status(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    let id = query
        .id
        .ok_or_else(|| ApiError::BadRequest("id is required (?id=key_…)".into()))?;
    let enabled = match query.action.as_deref() {
        Some("enable") => true,
        Some("disable") => false,
        _ => return Err(ApiError::BadRequest("action must be enable or disable".into())),
    };
    if !state
        .store
        .set_api_key_enabled(
            &principal.workspace_id,
            &id,
            enabled,
            now_ms(),
            &principal.actor(),
        )
        .await?
    {
        return Err(not_found(&id));
    }
    tracing::info!(key_id = %id, enabled, "API key status changed");
    Ok(Json(json!({ "success": true, "id": id, "is_active": enabled })))
}

#[derive(Deserialize, ToSchema)]
pub struct CreditLimit {
    id: String,
    /// Runs the key may start in total; `null` removes the cap.
    credit_limit: Option<i64>,
}

#[utoipa::path(post, path = "/keys/limit", tag = "keys", request_body = CreditLimit,
    responses((status = 200, description = "Limit set or cleared"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_limit(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreditLimit>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Admin)?;
    if body.credit_limit.is_some_and(|n| n < 0) {
        return Err(ApiError::BadRequest(
            "credit_limit must be zero or more, or null".into(),
        ));
    }
    if !state
        .store
        .set_api_key_credit_limit(
            &principal.workspace_id,
            &body.id,
            body.credit_limit,
            &principal.actor(),
        )
        .await?
    {
        return Err(not_found(&body.id));
    }
    tracing::info!(key_id = %body.id, limit = ?body.credit_limit, "API key credit limit set");
    Ok(Json(
        json!({ "success": true, "id": body.id, "credit_limit": body.credit_limit }),
    ))
}
