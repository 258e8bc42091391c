//! Batch runs from files: `POST /workflows/files` (multipart field `file`, optional
//! `workflow_id`) stores an uploaded CSV/TXT for the workspace; `GET /workflows/runs/{id}/download`
//! streams the results of a run started with its `file_id` as CSV.

use std::io::Write;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};
use crate::domain::files::{self, MAX_FILE_BYTES};
use crate::domain::results::results_csv;
use crate::ids::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Uploads have their own cap; the multipart framing needs a little room above it.
        .routes(routes!(upload).layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 64 * 1024)))
        .routes(routes!(download))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("the upload is larger than {MAX_FILE_BYTES} bytes"))
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

#[utoipa::path(post, path = "/workflows/files", tag = "runs",
    request_body(content_type = "multipart/form-data", description = "field `file` (CSV with a header row, or TXT with one value a line); optional field `workflow_id`"),
    responses((status = 201, description = "{id, filename, row_count, identifier_type, identifier_column}"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Access::Write)?;
    let mut multipart = multipart.map_err(|_| {
        ApiError::UnsupportedMediaType(
            "send the file as multipart/form-data with a field named `file`".into(),
        )
    })?;
    let mut spooled: Option<(String, tempfile::NamedTempFile)> = None;
    let mut workflow_id: Option<String> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let filename = field.file_name().unwrap_or("upload.csv").trim().to_owned();
                if filename.is_empty() || filename.len() > 255 {
                    return Err(ApiError::BadRequest(
                        "the file name must be 1 to 255 bytes".into(),
                    ));
                }
                files::kind_of(&filename)?;
                let mut tmp = tempfile::NamedTempFile::new().map_err(ApiError::internal)?;
                let mut size = 0usize;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len();
                    if size > MAX_FILE_BYTES {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "the upload is larger than {MAX_FILE_BYTES} bytes"
                        )));
                    }
                    tmp.write_all(&chunk).map_err(ApiError::internal)?;
                }
                tmp.flush().map_err(ApiError::internal)?;
                spooled = Some((filename, tmp));
            }
            Some("workflow_id") => {
                let text = field.text().await.map_err(multipart_error)?;
                let text = text.trim();
                if !text.is_empty() {
                    if text.len() > 64 {
                        return Err(ApiError::BadRequest("workflow_id is too long".into()));
                    }
                    workflow_id = Some(text.to_owned());
                }
            }
            _ => {}
        }
    }
    let (filename, tmp) =
        spooled.ok_or_else(|| ApiError::BadRequest("the multipart body has no field named `file`".into()))?;
    if let Some(wf) = &workflow_id {
        state
            .store
            .get_workflow(&principal.workspace_id, wf)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("workflow {wf:?} not found")))?;
    }
    let file = files::store_upload(
        state.store.as_ref(),
        &principal.workspace_id,
        workflow_id,
        &filename,
        tmp.path(),
    )
    .await?;
    tracing::info!(file_id = %file.id, rows = file.row_count, "file uploaded");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": file.id,
            "filename": file.filename,
            "row_count": file.row_count,
            "identifier_type": file.identifier_type,
            "identifier_column": file.identifier_column,
            "columns": file.columns,
            "workflow_id": file.workflow_id,
            "created_at": rfc3339(file.created_at),
        })),
    ))
}

#[utoipa::path(get, path = "/workflows/runs/{id}/download", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "text/csv: the file's columns, each row's flattened output, `error`"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn download(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Access::Read)?;
    let (run, _) = state.runs.get(&principal.workspace_id, &id).await?;
    if run.definition.get("batch").is_none() {
        return Err(ApiError::Conflict(format!(
            "run {id:?} was not started with a file; only batch runs have results to download"
        )));
    }
    let stream = results_csv(state.store.clone(), &run).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{}.csv\"", run.id),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
