//! `/workflows`: list, create (optionally from a template), get, update, delete, versions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{JsonBody, Path, QueryParams};
use super::paging::Paging;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};
use crate::domain::workflows::{is_signed, webhook_url, NewWorkflow, WorkflowChanges};
use crate::ids::rfc3339;
use crate::store::WorkflowRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(versions))
        .routes(routes!(rotate_webhook))
}

/// A workflow as the API shows it (spec §4).
#[derive(Serialize, ToSchema)]
pub struct WorkflowView {
    id: String,
    name: String,
    description: String,
    /// `draft`, `active` or `paused`.
    status: String,
    /// `{"type": "manual" | "webhook" | "schedule", "config": {…}}`
    #[schema(value_type = Object)]
    trigger: Value,
    /// Ordered `{"id", "type", "config"}` steps.
    #[schema(value_type = Vec<Object>)]
    steps: Value,
    template_id: Option<String>,
    version: i64,
    /// The ingest URL (its token is a credential): shown only to roles that may run the
    /// workflow (`admin`, `member`); `null` for `readonly` and for non-webhook triggers.
    webhook_url: Option<String>,
    /// The key that signs ingest calls of a `signed` webhook trigger, shown once: in the
    /// response that created it (create, the update that turned signing on, rotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_signing_key: Option<String>,
    created_at: String,
    updated_at: String,
}

/// What a response may show of a workflow's ingest credentials.
struct Credentials<'a> {
    public_base: &'a str,
    /// The caller may run the workflow, so may see the URL that runs it.
    may_run: bool,
}

impl<'a> Credentials<'a> {
    fn for_caller(state: &'a AppState, principal: &Principal) -> Self {
        Credentials {
            public_base: state.public_base(),
            may_run: principal.require(Access::Write).is_ok(),
        }
    }
}

impl WorkflowView {
    fn new(wf: WorkflowRecord, creds: &Credentials<'_>) -> Self {
        WorkflowView {
            webhook_url: wf
                .webhook_token
                .as_deref()
                .filter(|_| creds.may_run)
                .map(|t| webhook_url(creds.public_base, t)),
            webhook_signing_key: None,
            id: wf.id,
            name: wf.name,
            description: wf.description,
            status: wf.status,
            trigger: wf.trigger,
            steps: wf.steps,
            template_id: wf.template_id,
            version: wf.version,
            created_at: rfc3339(wf.created_at),
            updated_at: rfc3339(wf.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowList {
    workflows: Vec<WorkflowView>,
    total: i64,
    page: i64,
    limit: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page number, from 1.
    page: Option<i64>,
    /// Items per page, 1 to 100 (values outside are clamped).
    limit: Option<i64>,
    /// Items to skip; wins over `page`.
    offset: Option<i64>,
    /// Only workflows with this status.
    status: Option<String>,
}

#[utoipa::path(get, path = "/workflows", tag = "workflows", params(ListQuery),
    responses((status = 200, body = WorkflowList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<WorkflowList>, ApiError> {
    principal.require(Access::Read)?;
    let paging = Paging::new(query.page, query.limit, query.offset);
    let (items, total) = state
        .workflows
        .list(&principal.workspace_id, query.status.as_deref(), paging.request())
        .await?;
    let creds = Credentials::for_caller(&state, &principal);
    Ok(Json(WorkflowList {
        workflows: items
            .into_iter()
            .map(|wf| WorkflowView::new(wf, &creds))
            .collect(),
        total,
        page: paging.page,
        limit: paging.limit,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWorkflow {
    /// 1 to 200 characters; may be omitted when `template_id` names a template.
    name: Option<String>,
    description: Option<String>,
    /// Starts as `draft` unless given.
    status: Option<String>,
    #[schema(value_type = Option<Object>)]
    trigger: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    steps: Option<Value>,
    /// A built-in template to start from; the other fields override it.
    template_id: Option<String>,
}

#[utoipa::path(post, path = "/workflows", tag = "workflows", request_body = CreateWorkflow,
    responses((status = 201, body = WorkflowView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateWorkflow>,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    principal.require(Access::Write)?;
    let wf = state
        .workflows
        .create(
            &principal.workspace_id,
            NewWorkflow {
                name: body.name,
                description: body.description,
                status: body.status,
                trigger: body.trigger,
                steps: body.steps,
                template_id: body.template_id,
            },
        )
        .await?;
    tracing::info!(workflow_id = %wf.id, "workflow created");
    let key = signing_key(&state, &wf);
    let mut view = WorkflowView::new(wf, &Credentials::for_caller(&state, &principal));
    view.webhook_signing_key = key;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = WorkflowView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    principal.require(Access::Read)?;
    let wf = state.workflows.get(&principal.workspace_id, &id).await?;
    Ok(Json(WorkflowView::new(
        wf,
        &Credentials::for_caller(&state, &principal),
    )))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateWorkflow {
    name: Option<String>,
    description: Option<String>,
    status: Option<String>,
    #[schema(value_type = Option<Object>)]
    trigger: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    steps: Option<Value>,
}

#[utoipa::path(put, path = "/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    request_body = UpdateWorkflow,
    responses((status = 200, body = WorkflowView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateWorkflow>,
) -> Result<Json<WorkflowView>, ApiError> {
    principal.require(Access::Write)?;
    let changes = WorkflowChanges {
        name: body.name,
        description: body.description,
        status: body.status,
        trigger: body.trigger,
        steps: body.steps,
    };
    let (wf, new_key) = state
        .workflows
        .update(&principal.workspace_id, &id, changes)
        .await?;
    tracing::info!(workflow_id = %wf.id, version = wf.version, "workflow updated");
    let key = if new_key { signing_key(&state, &wf) } else { None };
    let mut view = WorkflowView::new(wf, &Credentials::for_caller(&state, &principal));
    view.webhook_signing_key = key;
    Ok(Json(view))
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    success: bool,
    message: String,
}

#[utoipa::path(delete, path = "/workflows/{id}", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    principal.require(Access::Write)?;
    state.workflows.delete(&principal.workspace_id, &id).await?;
    tracing::info!(workflow_id = %id, "workflow deleted");
    Ok(Json(Deleted {
        success: true,
        message: "Workflow deleted".into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    version: i64,
    name: String,
    description: String,
    status: String,
    #[schema(value_type = Object)]
    trigger: Value,
    #[schema(value_type = Vec<Object>)]
    steps: Value,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionList {
    versions: Vec<VersionView>,
}

#[utoipa::path(get, path = "/workflows/{id}/versions", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn versions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    principal.require(Access::Read)?;
    let versions = state.workflows.versions(&principal.workspace_id, &id).await?;
    Ok(Json(VersionList {
        versions: versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                name: v.name,
                description: v.description,
                status: v.status,
                trigger: v.trigger,
                steps: v.steps,
                created_at: rfc3339(v.created_at),
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct RotatedWebhook {
    webhook_url: String,
    /// The new signing key, for a `signed` trigger (the old one stops working with the old URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_signing_key: Option<String>,
}

/// The signing key of a signed webhook workflow, for the one response that shows it.
fn signing_key(state: &AppState, wf: &WorkflowRecord) -> Option<String> {
    let token = wf.webhook_token.as_deref()?;
    is_signed(&wf.trigger).then(|| {
        state
            .vault
            .webhook_signing_key(&wf.id, token)
            .expose_secret()
            .to_owned()
    })
}

#[utoipa::path(post, path = "/workflows/{id}/webhook/rotate", tag = "workflows", params(("id" = String, Path)),
    responses((status = 200, body = RotatedWebhook), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rotate_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<RotatedWebhook>, ApiError> {
    principal.require(Access::Write)?;
    let wf = state
        .workflows
        .rotate_webhook(&principal.workspace_id, &id)
        .await?;
    let token = wf.webhook_token.as_deref().unwrap_or_default();
    tracing::info!(workflow_id = %wf.id, "webhook URL rotated");
    Ok(Json(RotatedWebhook {
        webhook_url: webhook_url(state.public_base(), token),
        webhook_signing_key: signing_key(&state, &wf),
    }))
}
