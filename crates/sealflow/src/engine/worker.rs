//! One worker: claim a due run, execute its steps in order while renewing the lease, record each
//! result, then finish, fail or park the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealflow_egress::EgressClient;
use sealflow_redact::{LiveRedactors, Redactor};
use sealflow_workflow::{Definition, Limits, StepConfig};
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};

use super::condition;
use super::context::RunContext;
use super::ends::{EndedRun, RunEnds};
use super::limits::RunTally;
use super::webhook::{AuditSite, WebhookStep};
use super::FirstSend;
use crate::domain::secrets::SecretsService;
use crate::ids::now_ms;
use crate::metrics::{Metrics, RunEndStatus};
use crate::store::{RunEnd, RunRecord, StepRecord, Store, StoreError};

pub(super) struct Shared {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<SecretsService>,
    pub egress: EgressClient,
    pub instance: String,
    pub lease_ms: i64,
    pub limits: Limits,
    pub poll: Duration,
    pub wake: Notify,
    /// One permit per run executing on this instance.
    pub slots: Arc<Semaphore>,
    pub workers: usize,
    /// Numbers this instance's claims, so every claim has its own lease owner.
    pub claims: AtomicU64,
    pub ends: RunEnds,
    pub definitions: Definitions,
    pub stopping: AtomicBool,
    /// Redactors of the runs in flight, for the log writer.
    pub live: LiveRedactors,
    pub metrics: Metrics,
}

impl Shared {
    pub fn next_owner(&self) -> String {
        format!(
            "{}/c{}",
            self.instance,
            self.claims.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Validated definitions by (workflow id, version): a version never changes, so a run of it needs
/// no re-validation. Bounded: cleared when it grows past [`Definitions::MAX`].
#[derive(Default)]
pub(super) struct Definitions {
    cache: Mutex<HashMap<(String, i64), Arc<Definition>>>,
}

impl Definitions {
    const MAX: usize = 1024;

    pub(super) fn get(&self, run: &RunRecord) -> Result<Arc<Definition>, String> {
        let key = (run.workflow_id.clone(), run.workflow_version);
        if let Some(def) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(def.clone());
        }
        let def =
            sealflow_workflow::validate(Some(&run.definition["trigger"]), Some(&run.definition["steps"]))
                .map_err(|e| e.to_string())?;
        let def = Arc::new(def);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= Self::MAX {
            cache.clear();
        }
        cache.insert(key, def.clone());
        Ok(def)
    }
}

/// Claims due runs from the database while worker slots are free: runs of other instances, parked
/// delays that are due, and runs whose worker died. Runs started here arrive by hand-off instead.
pub(super) async fn run_poller(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let owner = shared.next_owner();
        match shared.store.claim_run(&owner, now_ms(), shared.lease_ms).await {
            Ok(Some(run)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    execute_claimed(&shared, &owner, run, false, None).await;
                    drop(permit);
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    () = shared.wake.notified() => {},
                    () = tokio::time::sleep(shared.poll) => {},
                    _ = shutdown.changed() => {},
                }
            }
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "could not claim a run");
                tokio::time::sleep(shared.poll).await;
            }
        }
    }
    // No new hand-offs; wait for every run in progress to finish.
    shared.stopping.store(true, Ordering::Relaxed);
    let _ = shared.slots.acquire_many(shared.workers as u32).await;
}

/// Executes a run claimed by `owner`, then announces its end to local waiters.
/// `fresh`: the run was inserted claimed a moment ago, so nothing of it is recorded yet; `first`:
/// its first step, made ready before the insert.
pub(super) async fn execute_claimed(
    shared: &Shared,
    owner: &str,
    run: RunRecord,
    fresh: bool,
    first: Option<FirstSend>,
) {
    let run_id = run.id.clone();
    if let Err(e) = execute(shared, owner, run, fresh, first).await {
        // The lease will expire and the run will be taken over; nothing is lost.
        tracing::error!(run_id = %run_id, error = %e, "run interrupted by a storage error");
    }
    shared.ends.ended(&run_id);
}

async fn execute(
    shared: &Shared,
    owner: &str,
    run: RunRecord,
    fresh: bool,
    first: Option<FirstSend>,
) -> Result<(), StoreError> {
    let def = match shared.definitions.get(&run) {
        Ok(def) => def,
        Err(e) => {
            let error = format!("the stored definition is no longer valid: {e}");
            let ended = shared
                .store
                .finish_run(&run.id, owner, "failed", Some(&error), now_ms())
                .await?;
            if ended {
                shared
                    .metrics
                    .run_finished(&run.trigger_type, RunEndStatus::Failed);
            }
            return Ok(());
        }
    };
    // Renew the lease in the background; `lost` turns true when renewal fails (lost or cancelled).
    let (lost_tx, lost) = watch::channel(false);
    let renewer = {
        let store = shared.store.clone();
        let (run_id, owner, lease_ms) = (run.id.clone(), owner.to_owned(), shared.lease_ms);
        tokio::spawn(async move {
            let every = Duration::from_millis((lease_ms / 3).max(50) as u64);
            loop {
                tokio::time::sleep(every).await;
                match store.renew_lease(&run_id, &owner, now_ms() + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(run_id = %run_id, error = %e, "lease renewal failed; retrying"),
                }
            }
        })
    };
    let result = if super::batch::is_batch(&run) {
        super::batch::execute_rows(shared, owner, &run, &def, lost).await
    } else {
        execute_steps(shared, owner, &run, &def, lost, fresh, first).await
    };
    renewer.abort();
    match result {
        Ok(()) | Err(Outcome::Lost) => Ok(()),
        Err(Outcome::Store(e)) => Err(e),
    }
}

/// Why step execution stopped early.
pub(super) enum Outcome {
    /// The lease was lost or the run was cancelled: write nothing more.
    Lost,
    Store(StoreError),
}

impl From<StoreError> for Outcome {
    fn from(e: StoreError) -> Self {
        Outcome::Store(e)
    }
}

pub(super) fn guard(saved: bool) -> Result<(), Outcome> {
    if saved {
        Ok(())
    } else {
        Err(Outcome::Lost)
    }
}

async fn execute_steps(
    shared: &Shared,
    owner: &str,
    run: &RunRecord,
    def: &Definition,
    mut lost: watch::Receiver<bool>,
    fresh: bool,
    first: Option<FirstSend>,
) -> Result<(), Outcome> {
    // A run handed off as it was created has nothing recorded yet: skip the read.
    let recorded = if fresh {
        Vec::new()
    } else {
        shared.store.run_steps(&run.id).await?
    };
    let mut ctx = fresh_context(shared, run);
    for step in recorded.iter().filter(|s| s.status == "completed") {
        if let Some(out) = &step.output {
            ctx.outputs.insert(step.step_id.clone(), out.clone());
        }
    }
    let mut tally = RunTally::new(shared.limits.run_bytes, &recorded);
    // A fresh run's every committed step, so its end can be announced with the record.
    let mut committed: Vec<StepRecord> = Vec::new();
    // The first step made ready before the insert brings the redactor its secrets are in.
    let (mut redactor, mut first_ready) = match first {
        Some(first) => (first.redactor, Some(first.ready)),
        None => (Redactor::new(), None),
    };
    // Removed from the log writer's set when this run stops executing, however it stops.
    let live = shared.live.slot();
    let mut idx = run.next_step as usize;
    while idx < def.steps.len() {
        if *lost.borrow() {
            return Err(Outcome::Lost);
        }
        let step = &def.steps[idx];
        let started = now_ms();
        let clock = std::time::Instant::now();
        let mut record = StepRecord {
            idx: idx as i64,
            step_id: step.id.clone(),
            step_type: step.step_type.as_str().to_owned(),
            status: "completed".into(),
            output: None,
            error: None,
            attempts: 1,
            started_at: Some(started),
            completed_at: None,
        };
        let mut next = idx + 1;
        // The outcomes of the step's secret uses, written with its result.
        let mut audit = Vec::new();
        match &step.config {
            StepConfig::Delay(delay) => {
                let parked = recorded
                    .iter()
                    .find(|s| s.idx == idx as i64 && s.status == "running");
                // The wake-up time is kept on the step itself, so a worker that died between
                // recording the step and parking the run cannot cut the wait short.
                let wake_at = parked
                    .and_then(|p| p.output.as_ref()?.get("wake_at_ms")?.as_i64())
                    .unwrap_or(started + (delay.seconds as i64) * 1000);
                if parked.is_some() && wake_at <= started {
                    record.started_at = parked.and_then(|p| p.started_at);
                    record.output = Some(json!({ "waited_seconds": delay.seconds }));
                } else {
                    record.status = "running".into();
                    record.started_at = parked.and_then(|p| p.started_at).or(Some(started));
                    record.output = Some(json!({ "wake_at_ms": wake_at }));
                    guard(
                        shared
                            .store
                            .save_step(&run.id, owner, &record, idx as i64)
                            .await?,
                    )?;
                    guard(shared.store.park_run(&run.id, owner, wake_at).await?)?;
                    return Ok(());
                }
            }
            StepConfig::Transform(_) => match condition::transform(step, &ctx) {
                Ok(output) => record.output = Some(output),
                Err(e) => {
                    record.status = "failed".into();
                    record.error = Some(e);
                }
            },
            StepConfig::Condition(c) => match condition::branch(def, idx, c, &ctx) {
                Ok((result, target)) => {
                    record.output = Some(json!({ "result": result }));
                    next = target;
                }
                Err(e) => {
                    record.status = "failed".into();
                    record.error = Some(e);
                }
            },
            StepConfig::Webhook(w) => {
                // Nothing is written before the send: a crash mid-send leaves the step unrecorded,
                // so it runs again with the same delivery id (and counts as an attempt that made
                // no progress, see `StoreOptions::max_run_attempts`).
                let send = WebhookStep {
                    workspace_id: &run.workspace_id,
                    run_id: &run.id,
                    step_id: &step.id,
                    config: w,
                    ctx: &ctx,
                    secrets: &shared.secrets,
                    egress: &shared.egress,
                    redactor: &mut redactor,
                    live: &live,
                    metrics: &shared.metrics,
                    audit: AuditSite {
                        store: shared.store.as_ref(),
                        run_id: &run.id,
                        row: None,
                    },
                    recorded: first_ready.take().filter(|_| idx == 0),
                }
                .run();
                let outcome = tokio::select! {
                    o = send => o,
                    // Cancelled or lease lost: abort the in-flight request.
                    _ = lost.wait_for(|l| *l) => return Err(Outcome::Lost),
                };
                record.status = if outcome.ok { "completed" } else { "failed" }.into();
                record.output = outcome.output;
                record.error = outcome.error;
                record.attempts = outcome.attempts;
                audit = outcome.audit;
            }
        }
        shared.metrics.step(step.step_type, clock.elapsed());
        tally.charge(&mut record);
        let finished = now_ms();
        record.completed_at = Some(finished);
        // Webhook steps mask what they return; a transform may join masked pieces back into a
        // secret, and every error text goes through the same masking.
        if let (StepConfig::Transform(_), Some(out)) = (&step.config, record.output.as_mut()) {
            redactor.redact_json(out);
        }
        if let Some(error) = record.error.as_mut() {
            *error = redactor.redact_str(error).into_owned();
        }
        if record.status == "failed" {
            let error = format!(
                "step {:?} failed: {}",
                step.id,
                record.error.as_deref().unwrap_or("unknown error")
            );
            let error = redactor.redact_str(&error).into_owned();
            let end = RunEnd {
                status: "failed",
                error: Some(&error),
                at_ms: finished,
            };
            guard(
                shared
                    .store
                    .save_steps_audited(
                        &run.id,
                        owner,
                        std::slice::from_ref(&record),
                        idx as i64,
                        Some(end),
                        audit,
                    )
                    .await?,
            )?;
            shared
                .metrics
                .run_finished(&run.trigger_type, RunEndStatus::Failed);
            if fresh {
                committed.push(record);
                shared.ends.ended_with(ended_run(run, committed, idx as i64, end));
            }
            return Ok(());
        }
        if let Some(out) = &record.output {
            ctx.outputs.insert(step.id.clone(), out.clone());
        }
        // The step, the steps a condition jumped over (recorded as skipped) and, after the last
        // step, the run's end: one write.
        let mut records = vec![record];
        for (skip_idx, skipped) in def.steps.iter().enumerate().take(next).skip(idx + 1) {
            records.push(StepRecord {
                idx: skip_idx as i64,
                step_id: skipped.id.clone(),
                step_type: skipped.step_type.as_str().to_owned(),
                status: "skipped".into(),
                output: None,
                error: None,
                attempts: 0,
                started_at: None,
                completed_at: Some(finished),
            });
        }
        let end = (next >= def.steps.len()).then_some(RunEnd {
            status: "completed",
            error: None,
            at_ms: finished,
        });
        guard(
            shared
                .store
                .save_steps_audited(&run.id, owner, &records, next as i64, end, audit)
                .await?,
        )?;
        if fresh {
            committed.extend(records);
        }
        if let Some(end) = end {
            shared
                .metrics
                .run_finished(&run.trigger_type, RunEndStatus::Completed);
            if fresh {
                shared
                    .ends
                    .ended_with(ended_run(run, committed, next as i64, end));
            }
            return Ok(());
        }
        idx = next;
    }
    // Reached only when there was no step left to run (e.g. resumed after the last one).
    guard(
        shared
            .store
            .finish_run(&run.id, owner, "completed", None, now_ms())
            .await?,
    )?;
    shared
        .metrics
        .run_finished(&run.trigger_type, RunEndStatus::Completed);
    Ok(())
}

/// What a run's steps see before any step has run: its input.
pub(super) fn fresh_context(shared: &Shared, run: &RunRecord) -> RunContext {
    RunContext {
        input: run.input.clone(),
        outputs: HashMap::new(),
        run_id: run.id.clone(),
        workflow_id: run.workflow_id.clone(),
        step_bytes: shared.limits.step_bytes,
    }
}

/// A fresh run as its last commit left it: what reading it back would return.
fn ended_run(run: &RunRecord, mut steps: Vec<StepRecord>, next_step: i64, end: RunEnd<'_>) -> EndedRun {
    steps.sort_by_key(|s| s.idx);
    let mut run = run.clone();
    run.status = end.status.to_owned();
    run.error = end.error.map(str::to_owned);
    run.completed_at = Some(end.at_ms);
    run.next_step = next_step;
    run.steps_completed = steps.iter().filter(|s| s.status == "completed").count() as i64;
    EndedRun { run, steps }
}
