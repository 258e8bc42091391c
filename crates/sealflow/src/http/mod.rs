//! The HTTP layer: the application state, the router, and request-wide layers.
//!
//! Each resource has its own module exporting `router()`; this file only merges them, mounts the
//! `/api/cli` alias, and adds the body limit, request ids, request logging and request metrics.

mod audit;
mod error;
mod extract;
mod files;
mod health;
mod hooks;
mod integrations;
mod keys;
mod me;
pub mod metrics;
mod openapi;
mod paging;
pub(crate) mod runs;
mod secrets;
mod templates;
mod users;
mod workflows;

pub use users::{check_login_rate, pick_workspace};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response};
use axum::{Extension, Router};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{field::Empty, Span};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody, ErrorParts};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::runs::RunsService;
use crate::domain::secrets::SecretsService;
use crate::domain::users::UsersService;
use crate::domain::workflows::WorkflowsService;
use crate::store::Store;
use crate::vault::Vault;

/// Everything a handler may use; cloned per request (all fields are shared handles).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub auth: Arc<Authenticator>,
    pub secrets: Arc<SecretsService>,
    pub workflows: Arc<WorkflowsService>,
    pub runs: Arc<RunsService>,
    pub users: Arc<UsersService>,
    /// The dashboard's compiled templates.
    pub pages: Arc<crate::dashboard::Pages>,
    /// The base URL clients reach this server at (no trailing slash).
    pub public_base: Arc<str>,
    /// The application's metrics registry (served at `/metrics`).
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    pub fn public_base(&self) -> &str {
        &self.public_base
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealflow",
        description = "Encrata Workflows API, self-hosted. Every route under /api/workflows also \
                       answers under /api/cli/workflows.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "secrets", description = "Write-only secrets"),
        (name = "workflows", description = "Workflow definitions and templates"),
        (name = "runs", description = "Runs of workflows"),
        (name = "triggers", description = "Webhook ingest"),
        (name = "keys", description = "API keys"),
        (name = "users", description = "Sign-in and workspace members"),
        (name = "audit", description = "The tamper-evident audit trail"),
        (name = "operations", description = "Health, readiness, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (sf_live_…) or a JWT"))
                    .build(),
            ),
        );
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&crate::ids::new_id("req"))
            .ok()
            .map(RequestId::new)
    }
}

/// The API routes that also answer under the `/api/cli` alias (with the runs routes given, as
/// one run reads differently there). Literal segments (`secrets`, `templates`) take precedence
/// over `/workflows/{id}` in axum's router.
fn workflow_routes(runs: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(secrets::router())
        .merge(templates::router())
        .merge(runs)
        .merge(files::router())
        .merge(workflows::router())
        .merge(keys::router())
        .merge(me::router())
}

/// Every documented route, and the OpenAPI document generated from them.
pub fn routes_and_openapi() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .nest(
            "/api",
            workflow_routes(runs::router())
                .merge(hooks::router())
                .merge(users::router())
                .merge(audit::router()),
        )
        .split_for_parts();
    (routes, openapi::apply(doc))
}

pub fn router(state: AppState) -> Router {
    let (documented, doc) = routes_and_openapi();
    let body_limit = state.config.body_limit;
    Router::new()
        .merge(documented)
        .merge(metrics::main_router(state.config.metrics))
        .nest(
            "/api/cli",
            Router::from(workflow_routes(runs::cli_router())).merge(integrations::router()),
        )
        .nest("/api", integrations::router())
        .merge(crate::dashboard::router())
        .layer(Extension(Arc::new(doc)))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| "(unmatched)".to_owned());
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route = %route,
                        request_id = %request_id,
                        workspace_id = Empty,
                    )
                })
                .on_request(())
                .on_response(|res: &Response<_>, latency: Duration, _span: &Span| {
                    // Debug: one line per request is the hot path's biggest log cost.
                    tracing::debug!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "request finished"
                    );
                })
                .on_failure(()),
        )
        // Every request the router answers, 4xx and fallbacks included.
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .with_state(state)
}
