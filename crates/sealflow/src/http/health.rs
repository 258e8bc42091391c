//! Liveness and readiness probes; no auth, no workspace data.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers; the master key is loaded before the server listens at all.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: database unreachable");
        ApiError::internal(e)
    })?;
    Ok(Json(json!({
        "status": "ready",
        "database": state.store.backend(),
        "master_key_id": state.vault.primary_key_id(),
    })))
}
