//! Workflow pages: the list, creating from a template or blank, the JSON editor (with the
//! server's validation message shown at the step and field it names), activate/pause, a manual
//! `Run` for any trigger, and the webhook URL with rotate (for roles that may run workflows).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use serde::Deserialize;
use serde_json::json;

use super::NoticeQuery;
use crate::auth::Access;
use crate::dashboard::session::{Session, SessionForm};
use crate::dashboard::view::{self, OrPage};
use crate::domain::runs::StartRun;
use crate::domain::workflows::{webhook_url, NewWorkflow, WorkflowChanges};
use crate::http::{ApiError, AppState};
use crate::store::{PageRequest, WorkflowRecord};

/// Workflows listed on one page.
const LIST_LIMIT: i64 = 200;

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, Response> {
    let page = PageRequest {
        offset: 0,
        limit: LIST_LIMIT,
    };
    let (workflows, _) = state
        .workflows
        .list(&session.principal.workspace_id, None, page)
        .await
        .or_page(&state, &session)?;
    let rows: Vec<Value> = workflows
        .iter()
        .map(|w| {
            context! {
                id => w.id, name => w.name, status => w.status, version => w.version,
                trigger => w.trigger["type"].as_str().unwrap_or("manual"),
                steps => w.steps.as_array().map_or(0, Vec::len),
                updated_at => view::when(w.updated_at),
            }
        })
        .collect();
    let templates: Vec<Value> = sealflow_workflow::catalogue::catalogue()
        .iter()
        .map(|t| context! { id => t.id, name => t.name })
        .collect();
    let ctx = context! {
        shell => view::shell(&session), page => "workflows", workflows => rows, templates => templates,
        notice => view::notice(q.notice.as_deref()),
    };
    Ok(view::render(&state, "workflows.html", ctx))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    template_id: String,
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    form: SessionForm<CreateForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    let name = Some(form.name.trim().to_owned()).filter(|n| !n.is_empty());
    let req = if form.template_id.is_empty() {
        // A blank workflow: a manual trigger and one transform step to edit from.
        NewWorkflow {
            name: Some(name.unwrap_or_else(|| "Untitled workflow".into())),
            trigger: Some(json!({"type": "manual", "config": {}})),
            steps: Some(
                json!([{"id": "shape", "type": "transform", "config": {"output": {"received": "{{input}}"}}}]),
            ),
            ..Default::default()
        }
    } else {
        NewWorkflow {
            name,
            template_id: Some(form.template_id),
            ..Default::default()
        }
    };
    let wf = state
        .workflows
        .create(&session.principal.workspace_id, req)
        .await
        .or_page(&state, &session)?;
    tracing::info!(workflow_id = %wf.id, "workflow created (dashboard)");
    Ok(view::see_other(&format!("/workflows/{}?notice=created", wf.id)))
}

/// What the editor shows and what a failed save names.
struct Editor<'a> {
    definition: Option<String>,
    invalid: Option<Value>,
    run_input: &'a str,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn editor(
    state: &AppState,
    session: &Session,
    wf: &WorkflowRecord,
    status: StatusCode,
    e: Editor<'_>,
) -> Response {
    let definition = e.definition.unwrap_or_else(|| {
        serde_json::to_string_pretty(&json!({
            "name": wf.name, "description": wf.description, "trigger": wf.trigger, "steps": wf.steps,
        }))
        .unwrap_or_default()
    });
    // The step list follows the text being edited, so an error lands beside the step it names.
    let steps: Vec<Value> = serde_json::from_str::<serde_json::Value>(&definition)
        .ok()
        .and_then(|d| d["steps"].as_array().cloned())
        .unwrap_or_else(|| wf.steps.as_array().cloned().unwrap_or_default())
        .iter()
        .map(
            |s| context! { id => s["id"].as_str().unwrap_or("?"), type => s["type"].as_str().unwrap_or("?") },
        )
        .collect();
    let may_run = session.principal.require(Access::Write).is_ok();
    let hook = wf
        .webhook_token
        .as_deref()
        .filter(|_| may_run)
        .map(|t| webhook_url(state.public_base(), t));
    let ctx = context! {
        shell => view::shell(session), page => "workflows",
        wf => context! {
            id => wf.id, name => wf.name, description => wf.description, status => wf.status,
            version => wf.version, trigger_type => wf.trigger["type"].as_str().unwrap_or("manual"),
            webhook_url => hook,
        },
        steps => steps, definition => definition, invalid => e.invalid, run_input => e.run_input,
        notice => e.notice, error => e.error,
    };
    view::render_status(state, status, "workflow.html", ctx)
}

fn plain(notice: Option<&'static str>) -> Editor<'static> {
    Editor {
        definition: None,
        invalid: None,
        run_input: "{}",
        notice,
        error: None,
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, Response> {
    let wf = state
        .workflows
        .get(&session.principal.workspace_id, &id)
        .await
        .or_page(&state, &session)?;
    Ok(editor(
        &state,
        &session,
        &wf,
        StatusCode::OK,
        plain(view::notice(q.notice.as_deref())),
    ))
}

#[derive(Deserialize)]
pub struct SaveForm {
    definition: String,
}

pub async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SessionForm<SaveForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    let ws = &session.principal.workspace_id;
    let wf = state.workflows.get(ws, &id).await.or_page(&state, &session)?;
    let fail = |status: StatusCode, invalid: Value| {
        let e = Editor {
            definition: Some(form.definition.clone()),
            invalid: Some(invalid),
            ..plain(None)
        };
        Ok(editor(&state, &session, &wf, status, e))
    };
    let parsed: serde_json::Value = match serde_json::from_str(&form.definition) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                context! { message => "the definition must be a JSON object" },
            )
        }
        Err(e) => {
            let message = format!("not valid JSON (line {}, column {})", e.line(), e.column());
            return fail(StatusCode::BAD_REQUEST, context! { message => message });
        }
    };
    let text = |k: &str| parsed.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let changes = WorkflowChanges {
        name: text("name"),
        description: text("description"),
        status: None,
        trigger: parsed.get("trigger").cloned(),
        steps: parsed.get("steps").cloned(),
    };
    match state.workflows.update(ws, &id, changes).await {
        Ok(_) => Ok(view::see_other(&format!("/workflows/{id}?notice=updated"))),
        Err(e) => {
            let parts = ApiError::from(e).into_parts();
            let details = parts.details.unwrap_or_default();
            let invalid = context! {
                message => parts.message,
                step => details["step"].as_str(),
                field => details["field"].as_str(),
            };
            fail(parts.status, invalid)
        }
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

pub async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SessionForm<StatusForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    let changes = WorkflowChanges {
        status: Some(form.status),
        ..Default::default()
    };
    state
        .workflows
        .update(&session.principal.workspace_id, &id, changes)
        .await
        .or_page(&state, &session)?;
    Ok(view::see_other(&format!("/workflows/{id}?notice=status")))
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    input: String,
}

pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SessionForm<RunForm>,
) -> Result<Response, Response> {
    let SessionForm { session, form } = form;
    let p = &session.principal;
    p.require(Access::Write).or_page(&state, &session)?;
    let ws = &p.workspace_id;
    let input = if form.input.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&form.input) {
            Ok(v) => v,
            Err(e) => {
                let wf = state.workflows.get(ws, &id).await.or_page(&state, &session)?;
                let e = Editor {
                    run_input: &form.input,
                    error: Some(format!(
                        "The run input is not valid JSON (line {}, column {}).",
                        e.line(),
                        e.column()
                    )),
                    ..plain(None)
                };
                return Ok(editor(&state, &session, &wf, StatusCode::BAD_REQUEST, e));
            }
        }
    };
    let caller = crate::http::runs::caller_id(p);
    state
        .runs
        .check_rate(&format!("run:{caller}"), state.config.run_rate_limit)
        .await
        .or_page(&state, &session)?;
    let started = state
        .runs
        .start(StartRun {
            workspace_id: ws,
            workflow_id: &id,
            trigger_type: "manual",
            input,
            idempotency_key: None,
        })
        .await
        .or_page(&state, &session)?;
    tracing::info!(run_id = %started.run.id, "run started (dashboard)");
    Ok(view::see_other(&format!("/runs/{}", started.run.id)))
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SessionForm<super::NoFields>,
) -> Result<Response, Response> {
    let session = form.session;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    state
        .workflows
        .rotate_webhook(&session.principal.workspace_id, &id)
        .await
        .or_page(&state, &session)?;
    Ok(view::see_other(&format!("/workflows/{id}?notice=rotated")))
}
