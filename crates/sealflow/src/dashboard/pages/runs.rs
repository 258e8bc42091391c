//! Run pages: the filtered list, one run's steps (status, duration, attempts, masked output and
//! errors) refreshed live by `run.js` until the run ends, and cancel.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::{context, Value};
use serde::Deserialize;

use super::NoFields;
use crate::auth::Access;
use crate::dashboard::session::{Session, SessionForm};
use crate::dashboard::view::{self, OrPage};
use crate::domain::runs::{is_finished, RUN_STATUSES};
use crate::http::runs::run_view;
use crate::http::AppState;
use crate::store::PageRequest;

/// Runs listed on one page (newest first).
const LIST_LIMIT: i64 = 50;

#[derive(Deserialize)]
pub struct ListQuery {
    workflow_id: Option<String>,
    status: Option<String>,
    notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, Response> {
    let ws = &session.principal.workspace_id;
    let workflow_id = q.workflow_id.as_deref().filter(|s| !s.is_empty());
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let page = PageRequest {
        offset: 0,
        limit: LIST_LIMIT,
    };
    let (runs, total) = state
        .runs
        .list(ws, workflow_id, status, page)
        .await
        .or_page(&state, &session)?;
    let (workflows, _) = state
        .workflows
        .list(
            ws,
            None,
            PageRequest {
                offset: 0,
                limit: 200,
            },
        )
        .await
        .or_page(&state, &session)?;
    let rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut v = run_view(r, None);
            v["created_at"] = view::when(r.created_at).into();
            Value::from_serialize(&v)
        })
        .collect();
    let workflows: Vec<Value> = workflows
        .iter()
        .map(|w| context! { id => w.id, name => w.name })
        .collect();
    let ctx = context! {
        shell => view::shell(&session), page => "runs", runs => rows, total => total,
        workflows => workflows, statuses => RUN_STATUSES, filter_workflow => workflow_id,
        filter_status => status, notice => view::notice(q.notice.as_deref()),
    };
    Ok(view::render(&state, "runs.html", ctx))
}

#[derive(Deserialize)]
pub struct ShowQuery {
    fragment: Option<String>,
    notice: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, Response> {
    let (run, steps) = state
        .runs
        .get(&session.principal.workspace_id, &id)
        .await
        .or_page(&state, &session)?;
    let mut v = run_view(&run, Some(&steps));
    v["created_at"] = view::when(run.created_at).into();
    if let Some(steps) = v["steps"].as_array_mut() {
        for s in steps {
            let out = &s["output"];
            let empty = out.as_object().is_some_and(|o| o.is_empty()) || out.is_null();
            s["output_text"] = if empty {
                serde_json::Value::Null
            } else {
                serde_json::to_string_pretty(out).unwrap_or_default().into()
            };
        }
    }
    let input_text = serde_json::to_string_pretty(&run.input).unwrap_or_default();
    let ctx = context! {
        shell => view::shell(&session), page => "runs", run => Value::from_serialize(&v),
        finished => is_finished(&run.status), input_text => input_text,
        notice => view::notice(q.notice.as_deref()),
    };
    let template = if q.fragment.is_some() {
        "run_detail.html"
    } else {
        "run.html"
    };
    Ok(view::render(&state, template, ctx))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: SessionForm<NoFields>,
) -> Result<Response, Response> {
    let session = form.session;
    session
        .principal
        .require(Access::Write)
        .or_page(&state, &session)?;
    state
        .runs
        .cancel(&session.principal.workspace_id, &id)
        .await
        .or_page(&state, &session)?;
    Ok(view::see_other(&format!("/runs/{id}?notice=cancelled")))
}
