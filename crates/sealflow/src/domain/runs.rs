//! Runs: starting a run of a workflow (with idempotency keys and the per-caller rate limit),
//! reading runs and their step results, cancelling, and waiting for a run to finish.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;

use crate::engine::{Engine, Watch};
use crate::ids::{new_ordered_id, now_ms};
use crate::store::{
    CancelRun, InsertRun, PageRequest, RateHit, RunRecord, StepRecord, Store, StoreError, WorkflowRecord,
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
    /// The workflow as the caller just read it (a webhook call looks it up by its token), so it
    /// is not read again.
    pub workflow: Option<WorkflowRecord>,
    /// Counts the call against this rate-limit bucket (name, per-minute limit) in the same commit
    /// as the new run: one write instead of two.
    pub rate: Option<(String, i64)>,
    /// The caller will wait for the run's end (`?wait=`): watch it from before it starts.
    pub watch: bool,
}

/// The result of a start: the run, and whether it was an idempotent replay.
pub struct Started {
    pub run: RunRecord,
    pub replayed: bool,
    /// Where the caller stands in the rate-limit window of [`RunRequest::rate`].
    pub rate: Option<RateState>,
    /// With [`RunRequest::watch`], for a run handed to a local worker: pass it to
    /// [`RunsService::wait`].
    pub watch: Option<Arc<Watch>>,
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
        let window = window_of(now);
        let hits = self.store.hit_rate_window(bucket, window).await?;
        rate_state(now, limit, hits).inspect_err(|_| self.engine.metrics().rate_limited(bucket))
    }

    pub async fn start(&self, req: StartRun<'_>) -> Result<Started, RunsError> {
        self.start_request(req, RunRequest::default()).await
    }

    /// Starts a run; with `extra.charge_key` it costs that key one credit (given back when the
    /// call turns out to be a replay or is refused), and is refused with 402 past the key's limit.
    /// With `extra.rate`, the call counts against that limit first (429 past it), whether or not
    /// a run is started, as a separate [`Self::check_rate`] before the start would.
    pub async fn start_request(
        &self,
        req: StartRun<'_>,
        mut extra: RunRequest,
    ) -> Result<Started, RunsError> {
        let rate = extra.rate.take();
        match self.start_counted(req, extra, rate.as_ref()).await {
            Ok(started) => Ok(started),
            // Refused before the insert, which would have counted the call: count it now, and
            // answer 429 rather than the refusal when the limit is passed (as if counted first).
            Err(Refused::Early(e)) => match rate {
                Some((bucket, limit)) => {
                    self.check_rate(&bucket, limit).await?;
                    Err(e)
                }
                None => Err(e),
            },
            Err(Refused::Counted(e)) => Err(e),
        }
    }
}

/// Why a start was refused, and whether the insert's commit already counted the call.
enum Refused {
    Early(RunsError),
    Counted(RunsError),
}

impl<E: Into<RunsError>> From<E> for Refused {
    fn from(e: E) -> Self {
        Refused::Early(e.into())
    }
}

/// The start of the fixed window `now` falls in.
fn window_of(now: i64) -> i64 {
    now - now.rem_euclid(WINDOW_MS)
}

/// Where `hits` leave a caller of `limit` in the window of `now`; an error past the limit.
fn rate_state(now: i64, limit: i64, hits: i64) -> Result<RateState, RunsError> {
    let reset_ms = window_of(now) + WINDOW_MS;
    let state = RateState {
        limit,
        remaining: (limit - hits).max(0),
        reset: reset_ms.div_euclid(1000),
    };
    if hits > limit {
        let retry_after_secs = ((reset_ms - now + 999) / 1000).max(1) as u64;
        return Err(RunsError::RateLimited {
            limit,
            retry_after_secs,
            reset: state.reset,
        });
    }
    Ok(state)
}

impl RunsService {
    async fn start_counted(
        &self,
        req: StartRun<'_>,
        extra: RunRequest,
        rate: Option<&(String, i64)>,
    ) -> Result<Started, Refused> {
        if !req.input.is_object() {
            return Err(RunsError::BadRequest("input must be a JSON object".into()).into());
        }
        if let Some(key) = &req.idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(RunsError::BadRequest(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                )
                .into());
            }
        }
        let wf = match extra.workflow {
            Some(wf) if wf.workspace_id == req.workspace_id && wf.id == req.workflow_id => wf,
            _ => self
                .store
                .get_workflow(req.workspace_id, req.workflow_id)
                .await?
                .ok_or_else(|| RunsError::NotFound(format!("workflow {:?}", req.workflow_id)))?,
        };
        if wf.status == "paused" {
            return Err(RunsError::Conflict(format!(
                "workflow {:?} is paused; activate it to run it",
                wf.id
            ))
            .into());
        }
        if req.trigger_type == "webhook" && wf.status != "active" {
            return Err(RunsError::Conflict(format!(
                "workflow {:?} is {}; only active workflows accept webhook calls",
                wf.id, wf.status
            ))
            .into());
        }
        let batch = match &extra.file_id {
            Some(file_id) => Some(super::files::batch_of(self.store.as_ref(), &wf, file_id).await?),
            None => None,
        };
        let mut run = new_run(&wf, req.trigger_type, req.input, req.idempotency_key, now_ms());
        if let Some(batch) = batch {
            Arc::make_mut(&mut run.definition)["batch"] = batch;
        }
        if let Some(body) = &extra.body {
            run.request_hash = Some(request_hash(body));
        }
        let request_hash = run.request_hash.clone().unwrap_or_default();
        if let Some(key_id) = &extra.charge_key {
            if !self.store.charge_api_key_credit(key_id).await? {
                return Err(Refused::Early(RunsError::InsufficientCredits(
                    "this API key has used its credit limit (one credit per run); raise it with \
                     POST /api/keys/limit"
                        .into(),
                )));
            }
        }
        // With a free local worker the run is inserted already claimed and handed straight to it
        // (one write, no polling); otherwise it is queued for whichever worker frees up first.
        let reservation = self.engine.reserve();
        let now = run.created_at;
        // Registered before the insert (and so before the hand-off), so the end cannot be
        // announced unheard; dropped again below if no run of ours was inserted.
        let watch = (extra.watch && reservation.is_some()).then(|| self.engine.ends().watch(&run.id));
        let handed = reservation.is_some();
        // A run for a local worker whose first step sends secrets has that step made ready now,
        // so that its uses go on record in the insert's commit rather than in one of their own.
        // Not with an Idempotency-Key: a retried call is answered with the first run, and its
        // secrets would have been decrypted for nothing.
        let mut first = match &reservation {
            Some(_) if run.idempotency_key.is_none() => self.engine.first_send(&run).await,
            _ => None,
        };
        // The insert and the hand-off run in their own task: a caller that hangs up while the
        // insert is in the writer's queue must not leave a committed run claimed by a worker that
        // never starts it (it would sit until its lease expired, 30 s by default).
        let inserted = {
            let (store, engine, run) = (self.store.clone(), self.engine.clone(), run.clone());
            let hit = rate.map(|(bucket, limit)| (bucket.clone(), *limit));
            tokio::spawn(async move {
                let claim = reservation.as_ref().map(|r| (r.owner.as_str(), r.lease_until));
                let hit = hit.as_ref().map(|(bucket, limit)| RateHit {
                    bucket: bucket.as_str(),
                    window_start: window_of(now),
                    limit: *limit,
                });
                let uses = first.as_ref().map(|f| f.uses().to_vec()).unwrap_or_default();
                let with_uses = !uses.is_empty();
                let mut inserted = store
                    .insert_counted_run(&run, IDEMPOTENCY_TTL_MS, claim, hit, uses)
                    .await;
                if inserted.is_err() && with_uses {
                    // What failed may be the audit trail, refusing the entries: the run is then
                    // inserted alone, and its worker prepares the step again and records that it
                    // could not send (nothing of the failed commit is stored).
                    first = None;
                    inserted = store
                        .insert_counted_run(&run, IDEMPOTENCY_TTL_MS, claim, hit, Vec::new())
                        .await;
                }
                if let Ok((Some(InsertRun::Inserted), _)) = &inserted {
                    let metrics = engine.metrics();
                    metrics.run_started(&run.trigger_type);
                    for _ in first.iter().flat_map(|f| f.uses()) {
                        metrics.audit_write(true);
                    }
                    match reservation {
                        Some(reservation) => engine.hand_off(started(run), reservation, first),
                        None => engine.wake(),
                    }
                }
                inserted
            })
            .await
            .unwrap_or_else(|e| {
                Err(crate::store::StoreError::Commit(format!(
                    "the insert task failed: {e}"
                )))
            })
        };
        let watch = match (&inserted, watch) {
            (Ok((Some(InsertRun::Inserted), _)), watch) => watch,
            (_, Some(watch)) => {
                self.engine.ends().unwatch(&run.id, watch);
                None
            }
            (_, None) => None,
        };
        let (inserted, rate) = match inserted {
            Ok((inserted, hits)) => {
                let rate = match (rate, hits) {
                    (Some((bucket, limit)), Some(hits)) => Some(
                        rate_state(now, *limit, hits)
                            .inspect_err(|_| self.engine.metrics().rate_limited(bucket)),
                    ),
                    _ => None,
                };
                (Ok(inserted), rate.transpose())
            }
            Err(e) => (Err(e), Ok(None)),
        };
        let outcome = match (inserted, rate) {
            (Ok(Some(InsertRun::Inserted)), Ok(rate)) => {
                return Ok(Started {
                    run: if handed { started(run) } else { run },
                    replayed: false,
                    rate,
                    watch,
                });
            }
            (Ok(_), Err(limited)) => Err(limited),
            (Ok(Some(InsertRun::Existing(existing))), Ok(rate))
                if existing.request_hash.as_deref() == Some(&request_hash) =>
            {
                Ok(Started {
                    run: *existing,
                    replayed: true,
                    rate,
                    watch: None,
                })
            }
            (Ok(Some(InsertRun::Existing(_))), Ok(_)) => Err(RunsError::Conflict(
                "this Idempotency-Key was already used with a different request body".into(),
            )),
            (Ok(None), Ok(_)) => unreachable!("a refused insert is past the limit"),
            // The commit failed: the call was not counted either.
            (Err(e), _) => return Err(Refused::Early(e.into())),
        };
        // No new run: the credit spent above goes back.
        if let Some(key_id) = &extra.charge_key {
            self.store
                .refund_api_key_credit(key_id)
                .await
                .map_err(|e| Refused::Counted(e.into()))?;
        }
        outcome.map_err(Refused::Counted)
    }
}

/// A run inserted claimed, as its worker starts it.
fn started(mut run: RunRecord) -> RunRecord {
    run.status = "running".into();
    run.started_at = Some(run.created_at);
    run
}

impl RunsService {
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
    /// `watched`: the watch [`Started::watch`] took before the run was handed to a local worker;
    /// it has heard every end of the run, so the first read is skipped, and when the worker
    /// announces the ended run with its record the answer needs no read at all.
    pub async fn wait(
        &self,
        workspace_id: &str,
        id: &str,
        wait: Duration,
        mut watched: Option<Arc<Watch>>,
    ) -> Result<(RunRecord, Vec<StepRecord>), RunsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut stopping = self.stopping.clone();
        let ends = self.engine.ends();
        loop {
            let (watch, heard_all) = match watched.take() {
                Some(w) => (w, true),
                // Taken before the read, so an end between the read and the wait is heard.
                None => (ends.watch(id), false),
            };
            let finished = async {
                if !heard_all {
                    let run = self
                        .store
                        .get_run(workspace_id, id)
                        .await?
                        .ok_or_else(|| RunsError::NotFound(format!("run {id:?}")))?;
                    let now = tokio::time::Instant::now();
                    if is_finished(&run.status) || now >= deadline || *stopping.borrow() {
                        return Ok::<_, RunsError>(Some(run));
                    }
                }
                let until = deadline.min(tokio::time::Instant::now() + WAIT_RECHECK);
                tokio::select! {
                    _ = watch.ended(until) => {},
                    _ = stopping.changed() => {},
                }
                Ok(None)
            }
            .await;
            let record = watch.record();
            ends.unwatch(id, watch);
            if let Some(ended) = record.filter(|e| e.run.workspace_id == workspace_id) {
                return Ok((ended.run.clone(), ended.steps.clone()));
            }
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
        id: new_ordered_id("run", now),
        workspace_id: wf.workspace_id.clone(),
        workflow_id: wf.id.clone(),
        workflow_name: wf.name.clone(),
        workflow_version: wf.version,
        definition: Arc::new(json!({ "trigger": wf.trigger, "steps": wf.steps })),
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
