//! The HTTP layer: the application state, the router, and request-wide layers.
//!
//! Each resource has its own module exporting `router()`; this file only merges them, mounts the
//! `/api/cli` alias, and adds the body limit, request ids and request logging.

mod error;
mod extract;
mod health;
mod keys;
mod secrets;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::{field::Empty, Span};

pub use error::ApiError;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::secrets::SecretsService;
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

/// The API routes that also answer under the `/api/cli` alias.
fn workflow_routes() -> Router<AppState> {
    Router::new().merge(secrets::router())
}

pub fn router(state: AppState) -> Router {
    let api = Router::new().merge(workflow_routes()).merge(keys::router());
    let body_limit = state.config.body_limit;
    Router::new()
        .merge(health::router())
        .nest("/api", api)
        .nest("/api/cli", workflow_routes())
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
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "request finished"
                    );
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .with_state(state)
}
