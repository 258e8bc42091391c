//! Runs: starting a run of a workflow (with idempotency keys and the per-caller rate limit),
//! reading runs and their step results, cancelling, and waiting for a run to finish.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::ids::{new_id, now_ms};
use crate::store::{
    CancelRun, InsertRun, PageRequest, RunRecord, StepRecord, Store, StoreError, WorkflowRecord,
};

pub const RUN_STATUSES: [&str; 5] = ["queued", "running", "completed", "failed", "cancelled"];
/// How long an idempotency key binds (spec §5: 24 h).
const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
const WINDOW_MS: i64 = 60_000;
/// How often a `?wait=` caller re-reads its run even without an end announcement.
const WAIT_RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Error)]
pub enum RunsError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("rate limit of {limit} requests per minute exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        limit: i64,
        retry_after_secs: u64,
        /// Unix seconds when the window resets.
        reset: i64,
    },
    #[error("{0}")]
    InsufficientCredits(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a caller stands in its rate-limit window (for the `X-RateLimit-*` headers).
#[derive(Debug, Clone, Copy)]
pub struct RateState {
    pub limit: i64,
    pub remaining: i64,
    /// Unix seconds when the window resets.
    pub reset: i64,
}

/// A request to start a run.
pub struct StartRun<'a> {
    pub workspace_id: &'a str,
    pub workflow_id: &'a str,
    pub trigger_type: &'a str,
    pub input: Value,
    pub idempotency_key: Option<String>,
}

/// What a call to the run endpoint adds to a [`StartRun`].
#[derive(Debug, Default)]
pub struct RunRequest {
    /// The whole request body: an Idempotency-Key binds to all of it, not only to `input`.
    pub body: Option<Value>,
    /// Runs the workflow once per row of this uploaded file.
    pub file_id: Option<String>,
    /// The API key that pays the run's credit.
    pub charge_key: Option<String>,
}

/// The result of a start: the run, and whether it was an idempotent replay.
pub struct Started {
    pub run: RunRecord,
    pub replayed: bool,
}

pub struct RunsService {
    store: Arc<dyn Store>,
    engine: Engine,
    /// Turns true when the server shuts down, so `?wait=` requests answer at once instead of
    /// holding the graceful shutdown open.
    stopping: watch::Receiver<bool>,
}

impl RunsService {
    pub fn new(store: Arc<dyn Store>, engine: Engine, stopping: watch::Receiver<bool>) -> Self {
        Self {
            store,
            engine,
            stopping,
        }
    }

    /// Counts a request against `bucket`'s one-minute window of `limit` (shared through the
    /// database, so every instance counts the same window).
    pub async fn check_rate(&self, bucket: &str, limit: i64) -> Result<RateState, RunsError> {
        let now = now_ms();
        let window = now - now.rem_euclid(WINDOW_MS);
        let hits = self.store.hit_rate_window(bucket, window).await?;
        let reset_ms = window + WINDOW_MS;
        let state = RateState {
            limit,
            remaining: (limit - hits).max(0),
            reset: reset_ms.div_euclid(1000),
        };
        if hits > limit {
            self.engine.metrics().rate_limited(bucket);
            let retry_after_secs = ((reset_ms - now + 999) / 1000).max(1) as u64;
            return Err(RunsError::RateLimited {
                limit,
                retry_after_secs,
                reset: state.reset,
            });
        }
        Ok(state)
    }

    pub async fn start(&self, req: StartRun<'_>) -> Result<Started, RunsError> {
        self.start_request(req, RunRequest::default()).await
    }

    /// Starts a run; with `extra.charge_key` it costs that key one credit (given back when the
    /// call turns out to be a replay or is refused), and is refused with 402 past the key's limit.
    pub async fn start_request(&self, req: StartRun<'_>, extra: RunRequest) -> Result<Started, RunsError> {
        if !req.input.is_object() {
            return Err(RunsError::BadRequest("input must be a JSON object".into()));
        }
        if let Some(key) = &req.idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(RunsError::BadRequest(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                ));
            }
        }
        let wf = self
            .store
            .get_workflow(req.workspace_id, req.workflow_id)
            .await?
            .ok_or_else(|| RunsError::NotFound(format!("workflow {:?}", req.workflow_id)))?;
        if wf.status == "paused" {
            return Err(RunsError::Conflict(format!(
                "workflow {:?} is paused; activate it to run it",
                wf.id
            )));
        }
        if req.trigger_type == "webhook" && wf.status != "active" {
            return Err(RunsError::Conflict(format!(
                "workflow {:?} is {}; only active workflows accept webhook calls",
                wf.id, wf.status
            )));
        }
        let batch = match &extra.file_id {
            Some(file_id) => Some(super::files::batch_of(self.store.as_ref(), &wf, file_id).await?),
            None => None,
        };
        let mut run = new_run(&wf, req.trigger_type, req.input, req.idempotency_key, now_ms());
        if let Some(batch) = batch {
            run.definition["batch"] = batch;
        }
        if let Some(body) = &extra.body {
            run.request_hash = Some(request_hash(body));
        }
        let request_hash = run.request_hash.clone().unwrap_or_default();
        if let Some(key_id) = &extra.charge_key {
            if !self.store.charge_api_key_credit(key_id).await? {
                return Err(RunsError::InsufficientCredits(
                    "this API key has used its credit limit (one credit per run); raise it with \
                     POST /api/keys/limit"
                        .into(),
                ));
            }
        }
        // With a free local worker the run is inserted already claimed and handed straight to it
        // (one write, no polling); otherwise it is queued for whichever worker frees up first.
        let reservation = self.engine.reserve();
        let claim = reservation.as_ref().map(|r| (r.owner.as_str(), r.lease_until));
        let outcome = match self
            .store
            .insert_claimed_run(&run, IDEMPOTENCY_TTL_MS, claim)
            .await
        {
            Ok(InsertRun::Inserted) => {
                self.engine.metrics().run_started(&run.trigger_type);
                match reservation {
                    Some(reservation) => {
                        run.status = "running".into();
                        run.started_at = Some(run.created_at);
                        self.engine.hand_off(run.clone(), reservation);
                    }
                    None => self.engine.wake(),
                }
                return Ok(Started { run, replayed: false });
            }
            Ok(InsertRun::Existing(existing)) if existing.request_hash.as_deref() == Some(&request_hash) => {
                Ok(Started {
                    run: *existing,
                    replayed: true,
                })
            }
            Ok(InsertRun::Existing(_)) => Err(RunsError::Conflict(
                "this Idempotency-Key was already used with a different request body".into(),
            )),
            Err(e) => Err(e.into()),
        };
        // No new run: the credit spent above goes back.
        if let Some(key_id) = &extra.charge_key {
            self.store.refund_api_key_credit(key_id).await?;
        }
        outcome
    }

    pub async fn get(&self, workspace_id: &str, id: &str) -> Result<(RunRecord, Vec<StepRecord>), RunsError> {
        let run = self
            .store
            .get_run(workspace_id, id)
            .await?
            .ok_or_else(|| RunsError::NotFound(format!("run {id:?}")))?;
        let steps = self.store.run_steps(&run.id).await?;
        Ok((run, steps))
    }

    /// Waits until the run has finished or `wait` has passed, then returns it as it stands. Woken
    /// by the run's end (this instance's workers, or other instances' through the store); the run
    /// is also re-read every [`WAIT_RECHECK`] in case an end was announced where we cannot hear.
    pub async fn wait(
        &self,
        workspace_id: &str,
        id: &str,
        wait: Duration,
    ) -> Result<(RunRecord, Vec<StepRecord>), RunsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut stopping = self.stopping.clone();
        let ends = self.engine.ends();
        loop {
            let notify = ends.watch(id);
            let finished = async {
                // Registered before the read, so an end between the read and the wait is heard.
                let ended = notify.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                let run = self
                    .store
                    .get_run(workspace_id, id)
                    .await?
                    .ok_or_else(|| RunsError::NotFound(format!("run {id:?}")))?;
                let now = tokio::time::Instant::now();
                if is_finished(&run.status) || now >= deadline || *stopping.borrow() {
                    return Ok::<_, RunsError>(Some(run));
                }
                tokio::select! {
                    () = &mut ended => {},
                    () = tokio::time::sleep_until(deadline.min(now + WAIT_RECHECK)) => {},
                    _ = stopping.changed() => {},
                }
                Ok(None)
            }
            .await;
            ends.unwatch(id, notify);
            if let Some(run) = finished? {
                let steps = self.store.run_steps(&run.id).await?;
                return Ok((run, steps));
            }
        }
    }

    pub async fn list(
        &self,
        workspace_id: &str,
        workflow_id: Option<&str>,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<(Vec<RunRecord>, i64), RunsError> {
        if let Some(s) = status {
            if !RUN_STATUSES.contains(&s) {
                return Err(RunsError::BadRequest(format!(
                    "status must be one of {}",
                    RUN_STATUSES.join(", ")
                )));
            }
        }
        Ok(self
            .store
            .list_runs(workspace_id, workflow_id, status, page)
            .await?)
    }

    pub async fn cancel(&self, workspace_id: &str, id: &str) -> Result<(), RunsError> {
        match self.store.cancel_run(workspace_id, id, now_ms()).await? {
            CancelRun::Cancelled => {
                self.engine.ends().ended(id);
                // Read back for its trigger label; cancelling is rare, so the read costs little.
                if let Ok(Some(run)) = self.store.get_run(workspace_id, id).await {
                    let metrics = self.engine.metrics();
                    metrics.run_finished(&run.trigger_type, crate::metrics::RunEndStatus::Cancelled);
                }
                Ok(())
            }
            CancelRun::AlreadyFinished(status) => Err(RunsError::Conflict(format!(
                "run {id:?} has already finished ({status})"
            ))),
            CancelRun::NotFound => Err(RunsError::NotFound(format!("run {id:?}"))),
        }
    }
}

/// A queued run of `wf`'s current version, due now.
pub fn new_run(
    wf: &WorkflowRecord,
    trigger_type: &str,
    input: Value,
    idempotency_key: Option<String>,
    now: i64,
) -> RunRecord {
    RunRecord {
        id: new_id("run"),
        workspace_id: wf.workspace_id.clone(),
        workflow_id: wf.id.clone(),
        workflow_name: wf.name.clone(),
        workflow_version: wf.version,
        definition: json!({ "trigger": wf.trigger, "steps": wf.steps }),
        status: "queued".into(),
        trigger_type: trigger_type.to_owned(),
        request_hash: Some(request_hash(&input)),
        input,
        error: None,
        next_step: 0,
        wake_at: now,
        idempotency_key,
        created_at: now,
        started_at: None,
        completed_at: None,
        steps_completed: 0,
    }
}

/// SHA-256 of a JSON value's canonical text (serde_json keeps object keys sorted).
fn request_hash(body: &Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

pub fn is_finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}
