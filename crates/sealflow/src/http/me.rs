//! `/me`: who the caller is. The official CLI checks a key with it before saving it (`login`)
//! and prints it (`whoami`); a bad key is a 401 like everywhere else.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Principal, Subject};
use crate::ids::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[utoipa::path(get, path = "/me", tag = "keys",
    responses((status = 200, description = "The caller: role, workspace, and its key or user"),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>, ApiError> {
    let workspace = state
        .store
        .find_workspace(&principal.workspace_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the caller's workspace no longer exists".into()))?;
    let mut body = json!({
        "role": principal.role.as_str(),
        "workspace": { "id": workspace.id, "name": workspace.slug, "slug": workspace.slug },
    });
    match &principal.subject {
        Subject::ApiKey(id) => {
            let key = state
                .store
                .list_api_keys(&principal.workspace_id)
                .await?
                .into_iter()
                .find(|k| &k.id == id)
                .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))?;
            body["name"] = json!(key.name);
            body["key"] = json!({
                "id": key.id,
                "name": key.name,
                "key_preview": key.key_preview,
                "created_at": rfc3339(key.created_at),
                "credits_used": key.credits_used,
                "credit_limit": key.credit_limit,
            });
            body["credits_used"] = json!(key.credits_used);
            if let Some(limit) = key.credit_limit {
                body["credits_remaining"] = json!((limit - key.credits_used).max(0));
            }
        }
        Subject::User(sub) => {
            body["name"] = json!(sub);
            body["user"] = json!({ "id": sub });
        }
    }
    Ok(Json(body))
}
