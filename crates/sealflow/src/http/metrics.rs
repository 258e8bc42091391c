//! `/metrics` (the application's registry in the OpenMetrics text format, which Prometheus reads)
//! and the layer that counts every request the router answers.
//!
//! No auth: the page holds counts under fixed labels (route templates, status codes, step types)
//! and no user data, like `/healthz`. Operators who want it private serve it on a listener of its
//! own (`SEALFLOW_METRICS_LISTEN=127.0.0.1:9464`, reachable only from the host or a private
//! network) or turn it off; the README says how.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, AppState};
use crate::config::MetricsListen;
use crate::ids::now_ms;
use crate::metrics::{Metrics, CONTENT_TYPE as METRICS_TYPE};

/// The `/metrics` route, for the main router when it serves it (`MetricsListen::Main`).
pub fn main_router(listen: MetricsListen) -> Router<AppState> {
    match listen {
        MetricsListen::Main => Router::new().route("/metrics", get(scrape)),
        MetricsListen::Off | MetricsListen::Separate(_) => Router::new(),
    }
}

/// The whole application of a separate metrics listener: `/metrics`, and 404 for anything else.
/// Its requests are not counted, so the API's figures are the same wherever metrics are served.
pub fn separate_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}

/// Counts a request under its route template (never its path, which holds ids and tokens) and
/// status, with its latency to the response headers. Applied with `Router::layer`, so it runs
/// after routing and sees the matched route.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    metrics.http_request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        res.status().as_u16(),
        started.elapsed(),
    );
    res
}

/// Reads the queue gauges from the database (one indexed query), then encodes the registry.
async fn scrape(State(state): State<AppState>) -> Response {
    let now = now_ms();
    match state.store.due_runs(now).await {
        Ok(due) => {
            let age_ms = due.oldest_wake_at.map_or(0, |at| (now - at).max(0));
            state.metrics.set_queue(due.count, age_ms as f64 / 1000.0);
        }
        Err(e) => {
            // The rest of the page still helps while the database is away.
            tracing::warn!(error = %e, "metrics: cannot read the run queue");
            state.metrics.queue_unknown();
        }
    }
    ([(CONTENT_TYPE, METRICS_TYPE)], state.metrics.encode()).into_response()
}
