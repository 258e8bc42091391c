//! Runs: start a workflow run, list and read runs, cancel (spec §5).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{OptionalJsonBody, Path, QueryParams};
use super::paging::Paging;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal, Subject};
use crate::domain::runs::{RateState, RunRequest, StartRun};
use crate::ids::rfc3339;
use crate::store::{RunRecord, StepRecord};

/// Longest `?wait=` (seconds).
const MAX_WAIT_SECS: u64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(cancel))
}

/// The same routes for the official CLI under `/api/cli`, where one run reads as
/// `{"run": {...}, "steps": [...]}` with `step_id` / `step_type` on each step.
pub fn cli_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(list))
        .route("/workflows/runs/{id}", axum::routing::get(get_one_cli))
        .routes(routes!(cancel))
}

/// The CLI's view of one run: the flat run without its steps, and the steps beside it.
fn cli_run_view(run: &RunRecord, recorded: &[StepRecord]) -> Value {
    let mut flat = run_view(run, Some(recorded));
    let steps = match flat.as_object_mut().and_then(|o| o.remove("steps")) {
        Some(Value::Array(steps)) => steps,
        _ => Vec::new(),
    };
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|mut step| {
            step["step_id"] = step["id"].clone();
            step["step_type"] = step["type"].clone();
            step
        })
        .collect();
    json!({ "run": flat, "steps": steps })
}

/// A run as the API shows it. `steps` lists every step of the pinned definition.
pub fn run_view(run: &RunRecord, recorded: Option<&[StepRecord]>) -> Value {
    let def_steps: &[Value] = run.definition["steps"].as_array().map_or(&[], Vec::as_slice);
    let duration = |start: Option<i64>, end: Option<i64>| match (start, end) {
        (Some(s), Some(e)) => json!((e - s).max(0)),
        _ => Value::Null,
    };
    let mut view = json!({
        "id": run.id,
        "workflow_id": run.workflow_id,
        "workflow_name": run.workflow_name,
        "workflow_version": run.workflow_version,
        "status": run.status,
        "trigger_type": run.trigger_type,
        "input": run.input,
        "steps_total": def_steps.len(),
        "steps_completed": run.steps_completed,
        "credits_used": 0,
        // Rows written to the run's results: one per file row for a batch run, else none.
        "output_rows": 0,
        "error": run.error,
        "created_at": rfc3339(run.created_at),
        "started_at": run.started_at.map(rfc3339),
        "completed_at": run.completed_at.map(rfc3339),
        "duration_ms": duration(run.started_at, run.completed_at),
    });
    if let Some(batch) = run.definition.get("batch") {
        // A batch run's progress is in rows: the row cursor is its `next_step`.
        let rows_done = if run.status == "completed" {
            batch["row_count"].clone()
        } else {
            json!(run.next_step)
        };
        view["steps_total"] = batch["row_count"].clone();
        view["steps_completed"] = rows_done.clone();
        view["output_rows"] = rows_done.clone();
        view["file_id"] = batch["file_id"].clone();
        view["rows_total"] = batch["row_count"].clone();
        view["rows_done"] = rows_done;
        if recorded.is_some() {
            view["steps"] = json!([]);
        }
        return view;
    }
    if let Some(recorded) = recorded {
        let unrun = match run.status.as_str() {
            "cancelled" => "cancelled",
            "completed" | "failed" => "skipped",
            _ => "pending",
        };
        let steps: Vec<Value> = def_steps
            .iter()
            .enumerate()
            .map(|(i, s)| match recorded.iter().find(|r| r.idx == i as i64) {
                Some(r) => {
                    let mut step = json!({
                        "id": r.step_id, "type": r.step_type, "status": r.status,
                        "output": r.output.clone().unwrap_or_else(|| json!({})),
                        "attempts": r.attempts, "duration_ms": duration(r.started_at, r.completed_at),
                        "credits_used": 0,
                    });
                    if let Some(e) = &r.error {
                        step["error"] = json!(e);
                    }
                    step
                }
                None => json!({
                    "id": s["id"], "type": s["type"], "status": unrun, "output": {},
                    "attempts": 0, "duration_ms": Value::Null, "credits_used": 0,
                }),
            })
            .collect();
        view["steps"] = Value::Array(steps);
    }
    view
}

#[derive(Deserialize, ToSchema)]
pub struct RunBody {
    /// The run's input (an object); `{}` when omitted.
    #[schema(value_type = Option<Object>)]
    input: Option<Value>,
    /// An uploaded file (`POST /workflows/files`): runs the workflow once per row.
    file_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Answer when the run has finished or after this many seconds (at most 30).
    pub wait: Option<u64>,
}

pub fn rate_headers(headers: &mut HeaderMap, rate: &RateState) {
    for (name, value) in [
        ("x-ratelimit-limit", rate.limit),
        ("x-ratelimit-remaining", rate.remaining),
        ("x-ratelimit-reset", rate.reset),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// The caller's rate-limit identity: its API key, or its user within the workspace.
pub fn caller_id(principal: &Principal) -> String {
    match &principal.subject {
        Subject::ApiKey(id) => id.clone(),
        Subject::User(sub) => format!("{}:{sub}", principal.workspace_id),
    }
}

#[utoipa::path(post, path = "/workflows/{id}/run", tag = "runs",
    params(("id" = String, Path), WaitQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first run for 24 h")),
    request_body = Option<RunBody>,
    responses((status = 201, description = "The new run"), (status = 200, description = "Idempotent replay"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
async fn start(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<WaitQuery>,
    headers: HeaderMap,
    OptionalJsonBody(raw): OptionalJsonBody<Value>,
) -> Result<Response, ApiError> {
    // The whole body is what an Idempotency-Key binds to, so it is kept beside the parsed form.
    let body: Option<RunBody> = raw.clone().map(serde_json::from_value).transpose().map_err(|_| {
        // serde's message may quote the offending value, which may be a secret: say what is wanted.
        ApiError::BadRequest("invalid run body: `input` must be an object and `file_id` a string".into())
    })?;
    principal.require(Access::Write)?;
    let caller = caller_id(&principal);
    let rate = state
        .runs
        .check_rate(&format!("run:{caller}"), state.config.run_rate_limit)
        .await?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
    let (input, file_id) = body.map(|b| (b.input, b.file_id)).unwrap_or_default();
    let charge_key = match &principal.subject {
        Subject::ApiKey(key_id) => Some(key_id.clone()),
        Subject::User(_) => None,
    };
    let started = state
        .runs
        .start_request(
            StartRun {
                workspace_id: &principal.workspace_id,
                workflow_id: &id,
                trigger_type: "manual",
                input: input.unwrap_or_else(|| json!({})),
                idempotency_key,
            },
            RunRequest {
                body: Some(raw.unwrap_or_else(|| json!({}))),
                file_id,
                charge_key,
                watch: query.wait.is_some_and(|secs| secs > 0),
                ..RunRequest::default()
            },
        )
        .await?;
    let (run, steps) = match query.wait {
        Some(secs) if secs > 0 => {
            let wait = Duration::from_secs(secs.min(MAX_WAIT_SECS));
            state
                .runs
                .wait(
                    &principal.workspace_id,
                    &started.run.id,
                    wait,
                    started.watch.clone(),
                )
                .await?
        }
        _ => (started.run, Vec::new()),
    };
    let status = if started.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    tracing::info!(run_id = %run.id, replayed = started.replayed, "run accepted");
    let mut response = (status, Json(run_view(&run, Some(&steps)))).into_response();
    rate_headers(response.headers_mut(), &rate);
    if started.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRunsQuery {
    workflow_id: Option<String>,
    status: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    #[schema(value_type = Vec<Object>)]
    runs: Vec<Value>,
    total: i64,
    page: i64,
    limit: i64,
}

#[utoipa::path(get, path = "/workflows/runs", tag = "runs", params(ListRunsQuery),
    responses((status = 200, body = RunList), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<ListRunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    principal.require(Access::Read)?;
    let paging = Paging::new(query.page, query.limit, query.offset);
    let (runs, total) = state
        .runs
        .list(
            &principal.workspace_id,
            query.workflow_id.as_deref(),
            query.status.as_deref(),
            paging.request(),
        )
        .await?;
    Ok(Json(RunList {
        runs: runs.iter().map(|r| run_view(r, None)).collect(),
        total,
        page: paging.page,
        limit: paging.limit,
    }))
}

#[utoipa::path(get, path = "/workflows/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "The run with its steps"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Read)?;
    let (run, steps) = state.runs.get(&principal.workspace_id, &id).await?;
    Ok(Json(run_view(&run, Some(&steps))))
}

async fn get_one_cli(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Read)?;
    let (run, steps) = state.runs.get(&principal.workspace_id, &id).await?;
    Ok(Json(cli_run_view(&run, &steps)))
}

#[utoipa::path(post, path = "/workflows/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "Cancelled"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Access::Write)?;
    state.runs.cancel(&principal.workspace_id, &id).await?;
    tracing::info!(run_id = %id, "run cancelled");
    Ok(Json(
        json!({ "success": true, "message": "Run cancelled", "id": id, "status": "cancelled" }),
    ))
}
