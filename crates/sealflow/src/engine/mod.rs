//! The run engine: a pool of workers that claim due runs from the database under a lease and
//! execute their steps, writing every step result back before moving on.
//!
//! Durability: the database is the only source of truth. A worker renews its lease while it
//! works; if it dies, the lease expires and any worker (of any instance) takes the run over at
//! its `next_step`. A step whose result was not recorded runs again, so webhook sends are
//! at-least-once and carry a delivery id (`Idempotency-Key`) that is stable for a step of a run.
//! A `delay` step parks the run with a wake-up time and releases the worker.
//!
//! Hot path: a run started on this instance is inserted already claimed and handed straight to a
//! local worker slot ([`Engine::reserve`]); the poller claims runs from the database only for
//! recovery, parked delays and runs other instances created. Each claim gets its own lease
//! owner, so two executions of one run can never both write.

mod batch;
mod condition;
mod context;
mod ends;
mod limits;
mod response;
pub mod scheduler;
mod webhook;
mod webhook_request;
mod webhook_url;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sealflow_egress::{EgressClient, EgressOptions};
use sealflow_redact::{LiveRedactors, Redactor};
use sealflow_workflow::Limits;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub use ends::{EndedRun, RunEnds, Watch};

use crate::domain::secrets::SecretsService;
use crate::metrics::Metrics;
use crate::store::{AuditEvent, RunRecord, Store};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Concurrent runs per instance.
    pub workers: usize,
    /// How long a claim lasts without renewal; a dead worker's runs resume after this.
    pub lease: Duration,
    /// How often idle workers look for due runs (they are also woken when a run is created).
    pub poll: Duration,
    /// How often the scheduler looks for due schedule ticks.
    pub schedule_every: Duration,
    pub egress: EgressOptions,
    /// Where runs publish their redactors for the log writer (see `telemetry`); a fresh,
    /// unobserved set by default.
    pub live_secrets: LiveRedactors,
    /// Definition, step-render and run-record size limits (the definition one is applied by the
    /// workflows service when saving).
    pub limits: Limits,
    /// Where runs, steps and webhook sends are counted; a fresh registry nothing serves by
    /// default (the application puts its own here).
    pub metrics: Metrics,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            schedule_every: Duration::from_secs(1),
            egress: EgressOptions::default(),
            live_secrets: LiveRedactors::default(),
            limits: Limits::default(),
            metrics: Metrics::default(),
        }
    }
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<worker::Shared>,
}

impl Engine {
    pub fn new(
        config: &EngineConfig,
        store: Arc<dyn Store>,
        secrets: Arc<SecretsService>,
    ) -> Result<Self, sealflow_egress::EgressError> {
        let egress = EgressClient::new(config.egress.clone())?;
        let instance = crate::ids::new_id("inst");
        Ok(Self {
            inner: Arc::new(worker::Shared {
                store,
                secrets,
                egress,
                instance,
                lease_ms: config.lease.as_millis() as i64,
                limits: config.limits,
                poll: config.poll,
                wake: Notify::new(),
                slots: Arc::new(Semaphore::new(config.workers)),
                workers: config.workers,
                claims: AtomicU64::new(0),
                ends: RunEnds::default(),
                definitions: worker::Definitions::default(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                live: config.live_secrets.clone(),
                metrics: config.metrics.clone(),
            }),
        })
    }

    /// Starts the poller (which stops when `shutdown` turns true, once the runs in progress have
    /// finished) and the forwarding of other instances' run ends. At most `workers` runs execute
    /// at once (set by [`EngineConfig::workers`]; the argument is kept for callers).
    pub fn start(&self, workers: usize, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        debug_assert_eq!(workers, self.inner.workers);
        let shared = self.inner.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let forward = tokio::spawn(async move {
            if let Err(e) = shared.store.listen_run_ends(tx).await {
                tracing::warn!(error = %e, "cannot listen for runs ended by other instances");
            }
            // A run this instance's worker ended is announced by the worker, with its record;
            // waking its waiters here first would make them read the run back.
            let own = format!("{}/", shared.instance);
            while let Some(payload) = rx.recv().await {
                match payload.split_once(' ') {
                    Some((_, owner)) if owner.starts_with(&own) => {}
                    Some((id, _)) => shared.ends.ended(id),
                    None => shared.ends.ended(&payload),
                }
            }
        });
        let shared = self.inner.clone();
        let poller = tokio::spawn(async move { worker::run_poller(shared, shutdown).await });
        // The forwarder lives as long as the store; only the poller is awaited at shutdown.
        drop(forward);
        vec![poller]
    }

    /// Reserves a worker slot for a run about to be created here: `Some` with the lease owner to
    /// insert the run claimed by, or `None` when every slot is busy (insert it queued instead).
    pub fn reserve(&self) -> Option<Reservation> {
        if self.inner.stopping.load(Ordering::Relaxed) {
            return None;
        }
        let permit = self.inner.slots.clone().try_acquire_owned().ok()?;
        Some(Reservation {
            owner: self.inner.next_owner(),
            lease_until: crate::ids::now_ms() + self.inner.lease_ms,
            permit,
        })
    }

    /// Executes a run inserted claimed under `reservation` (after its commit returned), with its
    /// first step as [`Engine::first_send`] made it ready, if it did.
    pub fn hand_off(&self, run: RunRecord, reservation: Reservation, first: Option<FirstSend>) {
        let shared = self.inner.clone();
        tokio::spawn(async move {
            worker::execute_claimed(&shared, &reservation.owner, run, true, first).await;
            drop(reservation.permit);
        });
    }

    /// Makes a fresh run's first step ready before the run is inserted, when it is a webhook step
    /// that carries secrets: renders it and resolves its secrets now, so that its `secret.used`
    /// entries ([`FirstSend::uses`]) commit with the insert and the worker sends at once. Without
    /// this, every such run waited for a commit of its own between its insert and its send.
    /// `None` when there is nothing to record, or the step cannot be sent: its worker then
    /// prepares it as any other step and records why.
    pub async fn first_send(&self, run: &RunRecord) -> Option<FirstSend> {
        if batch::is_batch(run) {
            return None;
        }
        let shared = &self.inner;
        let def = shared.definitions.get(run).ok()?;
        let step = def.steps.first()?;
        let sealflow_workflow::StepConfig::Webhook(config) = &step.config else {
            return None;
        };
        let ctx = worker::fresh_context(shared, run);
        let mut redactor = Redactor::new();
        let site = webhook::UseSite {
            run_id: &run.id,
            step_id: &step.id,
            row: None,
        };
        let ready = webhook::ready(
            &run.workspace_id,
            config,
            &ctx,
            &shared.secrets,
            &mut redactor,
            site,
        )
        .await
        .ok()?;
        (!ready.uses().is_empty()).then_some(FirstSend { ready, redactor })
    }

    /// Run-end announcements, for `?wait=`.
    pub fn ends(&self) -> &RunEnds {
        &self.inner.ends
    }

    /// The store the engine works on (for the scheduler).
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// Where the engine and the services that start runs record their metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Wakes idle workers (after a run was created).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// A fresh run's first step, rendered with its secrets resolved (see [`Engine::first_send`]).
pub struct FirstSend {
    ready: webhook::Ready,
    /// Masks the secrets resolved for it; becomes the run's redactor.
    redactor: Redactor,
}

impl FirstSend {
    /// The `secret.used` entries to commit with the run's insert.
    pub fn uses(&self) -> &[AuditEvent] {
        self.ready.uses()
    }
}

/// A worker slot held for a run about to be inserted claimed.
#[derive(Debug)]
pub struct Reservation {
    pub owner: String,
    pub lease_until: i64,
    permit: OwnedSemaphorePermit,
}
