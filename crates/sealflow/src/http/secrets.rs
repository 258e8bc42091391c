//! `/workflows/secrets`: list names, create or replace, delete. Values go in, never out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::extract::{JsonBody, OptionalJsonBody, QueryParams};
use super::{ApiError, AppState};
use crate::auth::{Access, Principal};
use crate::domain::secrets::{PutOutcome, PutSecret};
use crate::ids::rfc3339;

pub fn router() -> Router<AppState> {
    Router::new().route("/workflows/secrets", get(list).post(create).delete(delete))
}

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

#[derive(Deserialize)]
struct CreateSecret {
    name: String,
    value: SecretString,
    /// Absent, `null`, or a list: three different meanings (see `domain::secrets`).
    #[serde(default, deserialize_with = "present")]
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

#[derive(Deserialize)]
struct NameOnly {
    name: Option<String>,
}

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
    state.secrets.delete(&principal.workspace_id, &name).await?;
    tracing::info!(secret = %name, "secret deleted");
    Ok(Json(json!({ "success": true, "message": "Secret deleted" })))
}
