//! `/workflows/secrets`: list names, create or replace, delete. Values go in, never out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{JsonBody, OptionalJsonBody, QueryParams};
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};
use crate::domain::secrets::{PutOutcome, PutSecret};
use crate::ids::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create, delete))
}

#[utoipa::path(get, path = "/workflows/secrets", tag = "secrets",
    responses((status = 200, description = "Names and timestamps, sorted by name; never values"),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Read)?;
    let secrets: Vec<Value> = state
        .secrets
        .list(&principal.workspace_id)
        .await?
        .into_iter()
        .map(|s| {
            let mut item = json!({
                "name": s.name,
                "created_at": rfc3339(s.created_at),
                "updated_at": rfc3339(s.updated_at),
            });
            if let Some(hosts) = s.allowed_hosts {
                item["allowed_hosts"] = json!(hosts);
            }
            item
        })
        .collect();
    Ok(Json(json!({ "secrets": secrets })))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateSecret {
    /// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`
    name: String,
    /// 1 byte to 64 KiB of UTF-8; write-only.
    #[schema(value_type = String, format = Password)]
    value: SecretString,
    /// Absent, `null`, or a list: three different meanings (see `domain::secrets`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_hosts: Option<Option<Vec<String>>>,
}

/// Marks a field that was present (even as `null`) as `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[utoipa::path(post, path = "/workflows/secrets", tag = "secrets", request_body = CreateSecret,
    responses((status = 201, description = "Created"), (status = 200, description = "Replaced"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateSecret>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Access::Write)?;
    let name = body.name.clone();
    let outcome = state
        .secrets
        .put(
            &principal.workspace_id,
            &principal.actor(),
            PutSecret {
                name: body.name,
                value: body.value,
                allowed_hosts: body.allowed_hosts,
            },
        )
        .await?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Replaced => StatusCode::OK,
    };
    tracing::info!(secret = %name, outcome = ?outcome, "secret stored");
    Ok((status, Json(json!({ "success": true, "name": name }))))
}

#[derive(Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct NameOnly {
    /// The secret's name (in the JSON body or the query string).
    name: Option<String>,
}

#[utoipa::path(delete, path = "/workflows/secrets", tag = "secrets", params(NameOnly),
    request_body(content = Option<NameOnly>, description = "`{\"name\": …}`, or use `?name=`"),
    responses((status = 200, description = "Deleted"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<NameOnly>,
    OptionalJsonBody(body): OptionalJsonBody<NameOnly>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Write)?;
    let name = body
        .and_then(|b| b.name)
        .or(query.name)
        .ok_or_else(|| ApiError::BadRequest("name is required (in the JSON body or as ?name=)".into()))?;
    state
        .secrets
        .delete(&principal.workspace_id, &principal.actor(), &name)
        .await?;
    tracing::info!(secret = %name, "secret deleted");
    Ok(Json(json!({ "success": true, "message": "Secret deleted" })))
}
