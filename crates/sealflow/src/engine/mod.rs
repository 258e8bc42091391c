//! The run engine: a pool of workers that claim due runs from the database under a lease and
//! execute their steps, writing every step result back before moving on.
//!
//! Durability: the database is the only source of truth. A worker renews its lease while it
//! works; if it dies, the lease expires and any worker (of any instance) takes the run over at
//! its `next_step`. A step whose result was not recorded runs again, so webhook sends are
//! at-least-once and carry a delivery id (`Idempotency-Key`) that is stable for a step of a run.
//! A `delay` step parks the run with a wake-up time and releases the worker.

mod condition;
mod context;
pub mod scheduler;
mod webhook;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use sealflow_egress::{EgressClient, EgressOptions};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::domain::secrets::SecretsService;
use crate::store::Store;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            schedule_every: Duration::from_secs(1),
            egress: EgressOptions::default(),
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
                poll: config.poll,
                wake: Notify::new(),
            }),
        })
    }

    /// Starts `workers` workers that stop when `shutdown` turns true.
    pub fn start(&self, workers: usize, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..workers)
            .map(|n| {
                let shared = self.inner.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { worker::run_worker(shared, n, shutdown).await })
            })
            .collect()
    }

    /// The store the engine works on (for the scheduler).
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    /// Wakes idle workers (after a run was created).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}
