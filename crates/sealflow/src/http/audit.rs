//! `/audit`: the workspace's audit trail, newest first (admin only). Entries hold who did what to
//! which secret or key, and every use of a secret by a run; never a value.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::QueryParams;
use super::paging::Paging;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};
use crate::domain::audit::{AuditService, ListAudit};
use crate::ids::rfc3339;
use crate::store::AuditEntry;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// Only entries about this secret (a secret name).
    secret: Option<String>,
    /// Only entries of this run (`run_…`).
    run_id: Option<String>,
    /// Only entries at or after this time: RFC 3339 (`2026-01-31T12:00:00Z`) or a date
    /// (`2026-01-31`, midnight UTC).
    since: Option<String>,
    page: Option<i64>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first: `seq`, `at`, `kind`, `actor`, `secret`, `secret_version`, `run_id`,
    /// `step_id`, `host`, `outcome`, `subject`, `detail`, `prev_hash`, `hash`.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<Value>,
    total: i64,
    page: i64,
    limit: i64,
}

fn entry_view(e: &AuditEntry) -> Value {
    let ev = &e.event;
    json!({
        "seq": e.seq,
        "at": rfc3339(ev.at),
        "kind": ev.kind,
        "actor": ev.actor,
        "secret": ev.secret_name,
        "secret_version": ev.secret_version,
        "run_id": ev.run_id,
        "step_id": ev.step_id,
        "host": ev.host,
        "outcome": ev.outcome,
        "subject": ev.subject,
        "detail": ev.detail,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

#[utoipa::path(get, path = "/audit", tag = "audit", params(ListAuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<ListAuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    principal.require(Access::Admin)?;
    let paging = Paging::new(query.page, query.limit, query.offset);
    let filters = ListAudit {
        secret: query.secret.as_deref(),
        run_id: query.run_id.as_deref(),
        since: query.since.as_deref(),
    };
    let (entries, total) = AuditService::new(state.store.clone())
        .list(&principal.workspace_id, filters, paging.request())
        .await?;
    Ok(Json(AuditList {
        entries: entries.iter().map(entry_view).collect(),
        total,
        page: paging.page,
        limit: paging.limit,
    }))
}
