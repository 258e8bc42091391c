//! Cost of the metrics on the request path: recording one request, the router's layer around a
//! trivial handler (compared with the same router without it), and one scrape's encoding.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::routing::get;
use axum::Router;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sealflow::metrics::Metrics;
use tower::ServiceExt;

const ROUTE: &str = "/api/workflows/{id}";

fn router(metrics: Option<Metrics>) -> Router {
    let app = Router::new().route(ROUTE, get(|| async { "ok" }));
    match metrics {
        Some(m) => app.layer(axum::middleware::from_fn_with_state(
            m,
            sealflow::http::metrics::track,
        )),
        None => app,
    }
}

fn request() -> Request<Body> {
    Request::get("/api/workflows/wf_abc").body(Body::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let metrics = Metrics::default();
    c.bench_function("record_one_request", |b| {
        b.iter(|| {
            metrics.http_request(
                black_box(&Method::GET),
                black_box(Some(ROUTE)),
                200,
                Duration::from_micros(800),
            )
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let plain = router(None);
    let tracked = router(Some(Metrics::default()));
    c.bench_function("router_without_metrics", |b| {
        b.iter(|| rt.block_on(plain.clone().oneshot(request())).unwrap())
    });
    c.bench_function("router_with_metrics", |b| {
        b.iter(|| rt.block_on(tracked.clone().oneshot(request())).unwrap())
    });

    // A busy server's page: 40 routes with 3 statuses each, and every other family moved.
    let busy = Metrics::default();
    for r in 0..40 {
        let route = format!("/api/route{r}/{{id}}");
        for status in [200, 404, 500] {
            busy.http_request(&Method::GET, Some(&route), status, Duration::from_millis(3));
        }
    }
    busy.run_started("manual");
    busy.webhook_send(sealflow::metrics::WebhookSend::Response(200));
    c.bench_function("encode_a_busy_page", |b| b.iter(|| black_box(busy.encode())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
