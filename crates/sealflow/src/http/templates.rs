//! `/workflows/templates`: the built-in catalogue (spec §6).

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::QueryParams;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{Access, Principal};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// Only templates of this category.
    category: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    #[schema(value_type = Vec<Object>)]
    templates: Vec<&'static sealflow_workflow::catalogue::WorkflowTemplate>,
}

#[utoipa::path(get, path = "/workflows/templates", tag = "workflows", params(TemplateQuery),
    responses((status = 200, body = TemplateList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(
    principal: Principal,
    QueryParams(query): QueryParams<TemplateQuery>,
) -> Result<Json<TemplateList>, ApiError> {
    principal.require(Access::Read)?;
    let templates = sealflow_workflow::catalogue::catalogue()
        .iter()
        .filter(|t| query.category.as_deref().is_none_or(|c| t.category == c))
        .collect();
    Ok(Json(TemplateList { templates }))
}
