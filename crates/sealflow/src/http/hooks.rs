//! `POST /api/hooks/{token}`: webhook ingest (spec §7). No bearer token: the unguessable token in
//! the URL is the credential. Optional signature check when the trigger names a signing secret.
//!
//! Signature (ours): `X-Signature-Timestamp: <unix seconds>` and
//! `X-Signature-256: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. The timestamp is
//! inside the MAC (unlike a body-only MAC) so that a captured request cannot be replayed later
//! with a fresh timestamp; it must be within 5 minutes of the server's clock.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{parse_json, JsonBytes, QueryParams};
use super::runs::{rate_headers, run_view, WaitQuery};
use super::{ApiError, AppState, ErrorBody};
use crate::domain::runs::{is_finished, StartRun};
use crate::domain::secrets::SecretsError;
use crate::store::RunRecord;

/// How far a signature timestamp may be from the server's clock.
const MAX_SKEW_SECS: i64 = 300;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest))
}

#[utoipa::path(post, path = "/hooks/{token}", tag = "triggers",
    params(("token" = String, Path), WaitQuery,
           ("X-Signature-256" = Option<String>, Header, description = "sha256=<hex HMAC of \"<timestamp>.<body>\">"),
           ("X-Signature-Timestamp" = Option<String>, Header, description = "Unix seconds")),
    request_body(content = Object, description = "Becomes the run's input"),
    responses((status = 202, description = "Run started (or still running after ?wait=): {id, status}"),
              (status = 200, description = "With ?wait=: the run ended within the wait; the run object of GET /workflows/runs/{id}"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn ingest(
    State(state): State<AppState>,
    Path(token): Path<String>,
    QueryParams(query): QueryParams<WaitQuery>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let wf = state
        .store
        .find_workflow_by_webhook_token(&token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no workflow listens at this URL".into()))?;
    tracing::Span::current().record("workspace_id", wf.workspace_id.as_str());
    let rate = state
        .runs
        .check_rate(&format!("hook:{}", wf.id), state.config.hook_rate_limit)
        .await?;
    if let Some(secret_name) = wf.trigger["config"]["signing_secret"].as_str() {
        verify_signature(&state, &wf.workspace_id, secret_name, &headers, &body).await?;
    }
    let input: Value = parse_json(&body)?;
    let started = state
        .runs
        .start(StartRun {
            workspace_id: &wf.workspace_id,
            workflow_id: &wf.id,
            trigger_type: "webhook",
            input,
            idempotency_key: None,
        })
        .await?;
    let mut response = match query.wait {
        Some(secs) if secs > 0 => {
            let wait = Duration::from_secs(secs.min(30));
            let (run, steps) = state.runs.wait(&wf.workspace_id, &started.run.id, wait).await?;
            if is_finished(&run.status) {
                // Ended within the wait: the run as `GET /api/workflows/runs/{id}` shows it.
                (StatusCode::OK, Json(run_view(&run, Some(&steps)))).into_response()
            } else {
                accepted(&run)
            }
        }
        _ => accepted(&started.run),
    };
    tracing::debug!(workflow_id = %wf.id, run_id = %started.run.id, "webhook accepted");
    rate_headers(response.headers_mut(), &rate);
    Ok(response)
}

fn accepted(run: &RunRecord) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "id": run.id, "status": run.status })),
    )
        .into_response()
}

async fn verify_signature(
    state: &AppState,
    workspace_id: &str,
    secret_name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
    let timestamp = header("x-signature-timestamp")
        .ok_or_else(|| unauthorized("missing X-Signature-Timestamp header"))?;
    let signature = header("x-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .ok_or_else(|| unauthorized("missing X-Signature-256: sha256=<hex> header"))?;
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| unauthorized("X-Signature-Timestamp must be Unix seconds"))?;
    if (crate::ids::now_ms() / 1000 - ts).abs() > MAX_SKEW_SECS {
        return Err(unauthorized(
            "the signature timestamp is more than 5 minutes from the server's clock",
        ));
    }
    let expected = hex::decode(signature).map_err(|_| unauthorized("X-Signature-256 is not hex"))?;
    let key = match state.secrets.reveal(workspace_id, secret_name).await {
        Ok(key) => key,
        Err(SecretsError::NotFound(_)) => {
            // The workflow names a secret that was deleted: nobody can sign; say so to the operator.
            tracing::warn!(secret = %secret_name, "webhook signing secret is missing; refusing calls");
            return Err(unauthorized("the signature cannot be checked"));
        }
        Err(e) => return Err(e.into()),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| unauthorized("the signature does not match"))
}
