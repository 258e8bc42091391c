//! Liveness, readiness and the OpenAPI document; no auth, no workspace data.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, ErrorBody};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi))
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up")))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers; the master key is loaded before the server listens at all.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Database reachable, master key loaded"),
              (status = 500, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: database unreachable");
        ApiError::internal(e)
    })?;
    Ok(Json(json!({
        "status": "ready",
        "database": state.store.backend(),
        "master_key_id": state.vault.current_key_id(),
    })))
}

/// The OpenAPI document, generated from the handlers' annotations at start.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document")))]
async fn openapi(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}
