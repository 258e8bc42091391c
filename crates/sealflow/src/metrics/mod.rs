//! Prometheus metrics: the families sealflow records, in one registry owned by the application
//! (never a process global, so several servers in one process keep their own counts), and their
//! text encoding for `/metrics` (served by `http/metrics.rs`).
//!
//! Every label holds a value from a fixed set (`labels.rs`): route templates, status codes, step
//! types, triggers, outcomes. Never a secret, an id, a host or anything a caller chose, so the
//! number of series stays bounded and a scrape reveals no user data.

mod labels;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use labels::{
    limit_label, method_label, step_label, trigger_label, HttpLabels, LimitLabels, OutcomeLabels,
    RouteLabels, RunEndLabels, StepLabels, TriggerLabels, WebhookLabels, UNMATCHED_ROUTE,
};
pub use labels::{RunEndStatus, WebhookSend};

/// The media type of the encoding (OpenMetrics text, which Prometheus reads natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds, for request latencies (half a millisecond to the longest `?wait=`).
const HTTP_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds, for steps (a transform takes microseconds, a webhook up to its 60 s timeout times
/// its retries).
const STEP_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Seconds, for one batched transaction (an fsync is tens of microseconds to milliseconds).
const COMMIT_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Jobs in one transaction (the writer's cap is 256).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

/// The group-commit writer's figures. Created by the store when it opens (the writer records
/// into it from its first commit), and registered by the application that serves them.
#[derive(Clone)]
pub struct CommitMetrics {
    duration: Histogram,
    batch_size: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        Self {
            duration: Histogram::new(COMMIT_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
        }
    }
}

impl CommitMetrics {
    /// One transaction of `jobs` writes that took `took` from `BEGIN` to the end of `COMMIT`.
    pub(crate) fn observe(&self, jobs: usize, took: Duration) {
        self.duration.observe(took.as_secs_f64());
        self.batch_size.observe(jobs as f64);
    }
}

/// A handle to the application's metrics; cheap to clone (every clone records into the same
/// registry). [`Metrics::default`] is a fresh registry that nothing serves, for components built
/// outside an application (tests that construct an engine directly).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    f: Families,
}

struct Families {
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    runs_started: Family<TriggerLabels, Counter>,
    runs_finished: Family<RunEndLabels, Counter>,
    step_duration: Family<StepLabels, Histogram>,
    webhook_sends: Family<WebhookLabels, Counter>,
    due_runs: Gauge<f64, AtomicU64>,
    oldest_due_age: Gauge<f64, AtomicU64>,
    secret_decryptions: Family<OutcomeLabels, Counter>,
    rate_limit_refusals: Family<LimitLabels, Counter>,
    audit_writes: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(CommitMetrics::default())
    }
}

impl Metrics {
    /// A registry holding every family, with the store's commit figures in it.
    pub fn new(commits: CommitMetrics) -> Self {
        let mut registry = Registry::with_prefix("sealflow");
        let f = Families {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            runs_started: Family::default(),
            runs_finished: Family::default(),
            step_duration: Family::new_with_constructor(step_histogram),
            webhook_sends: Family::default(),
            due_runs: Gauge::default(),
            oldest_due_age: Gauge::default(),
            secret_decryptions: Family::default(),
            rate_limit_refusals: Family::default(),
            audit_writes: Family::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            f.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers, by method and route template",
            f.http_duration.clone(),
        );
        registry.register(
            "runs_started",
            "Runs created, by trigger (idempotent replays are not new runs)",
            f.runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs that ended, by trigger and final status",
            f.runs_finished.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "Time one step took to execute, by step type",
            f.step_duration.clone(),
        );
        registry.register(
            "webhook_sends",
            "HTTP requests sent by webhook steps (each retry counts), by outcome and status class",
            f.webhook_sends.clone(),
        );
        registry.register(
            "queue_due_runs",
            "Runs due to execute and not held by a live worker, read from the database at scrape \
             time (NaN when the database did not answer)",
            f.due_runs.clone(),
        );
        registry.register(
            "queue_oldest_due_age_seconds",
            "How long the longest-waiting due run has been due (0 when none is; NaN when the \
             database did not answer)",
            f.oldest_due_age.clone(),
        );
        registry.register(
            "db_commit_duration_seconds",
            "Time of one group-commit transaction, from BEGIN to the end of COMMIT",
            commits.duration,
        );
        registry.register(
            "db_commit_batch_size",
            "Writes committed together in one group-commit transaction",
            commits.batch_size,
        );
        registry.register(
            "secret_decryptions",
            "Secret values decrypted for a step about to send them, by outcome",
            f.secret_decryptions.clone(),
        );
        registry.register(
            "rate_limit_refusals",
            "Requests refused with 429 by a rate limit, by limit",
            f.rate_limit_refusals.clone(),
        );
        registry.register(
            "audit_writes",
            "secret.used audit entries written before a webhook step sends, by outcome",
            f.audit_writes.clone(),
        );
        Self {
            inner: Arc::new(Inner { registry, f }),
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// One answered request. `route` is the matched route template (`None`: no route matched).
    pub fn http_request(&self, method: &http::Method, route: Option<&str>, status: u16, took: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
        self.inner
            .f
            .http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.inner
            .f
            .http_requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// A run was created with this trigger type.
    pub fn run_started(&self, trigger: &str) {
        self.inner
            .f
            .runs_started
            .get_or_create(&TriggerLabels {
                trigger: trigger_label(trigger),
            })
            .inc();
    }

    /// A run of this trigger type ended.
    pub fn run_finished(&self, trigger: &str, status: RunEndStatus) {
        self.inner
            .f
            .runs_finished
            .get_or_create(&RunEndLabels {
                trigger: trigger_label(trigger),
                status: status.as_str(),
            })
            .inc();
    }

    /// A step of this type ran for `took`.
    pub fn step(&self, step_type: sealflow_workflow::StepType, took: Duration) {
        self.inner
            .f
            .step_duration
            .get_or_create(&StepLabels {
                step_type: step_label(step_type),
            })
            .observe(took.as_secs_f64());
    }

    /// One request a webhook step sent (or tried to).
    pub fn webhook_send(&self, send: WebhookSend) {
        self.inner.f.webhook_sends.get_or_create(&send.labels()).inc();
    }

    /// The queue as the database saw it: due runs, and the age of the oldest in seconds.
    pub fn set_queue(&self, due: i64, oldest_age_secs: f64) {
        self.inner.f.due_runs.set(due as f64);
        self.inner.f.oldest_due_age.set(oldest_age_secs);
    }

    /// The database did not answer the queue query: the gauges say so rather than keep old values.
    pub fn queue_unknown(&self) {
        self.inner.f.due_runs.set(f64::NAN);
        self.inner.f.oldest_due_age.set(f64::NAN);
    }

    /// A secret was decrypted (`ok`) or failed to decrypt.
    pub fn secret_decryption(&self, ok: bool) {
        self.inner
            .f
            .secret_decryptions
            .get_or_create(&OutcomeLabels::of(ok))
            .inc();
    }

    /// A caller was refused by the rate limit counted in `bucket` (`run:…`, `hook:…`, …).
    pub fn rate_limited(&self, bucket: &str) {
        self.inner
            .f
            .rate_limit_refusals
            .get_or_create(&LimitLabels {
                limit: limit_label(bucket),
            })
            .inc();
    }

    /// An audit entry was written (`ok`) or could not be.
    pub fn audit_write(&self, ok: bool) {
        self.inner
            .f
            .audit_writes
            .get_or_create(&OutcomeLabels::of(ok))
            .inc();
    }
}
