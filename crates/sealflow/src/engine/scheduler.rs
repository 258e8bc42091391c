//! The scheduler: fires `schedule` triggers of active workflows.
//!
//! Each pass finds, per workflow, the latest cron tick that is due (after the last tick fired,
//! or after the workflow was last saved) and fires only that one: after downtime, the missed
//! ticks fire once in total, as the latest of them. A firing is a row keyed by (workflow, tick),
//! inserted in the same transaction as its run, so instances sharing a database never fire one
//! tick twice. Time comes from a [`Clock`], so tests drive it without sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::Engine;
use crate::domain::runs::new_run;
use crate::ids::rfc3339;
use crate::store::{Store, StoreError};

/// Upper bound on ticks walked for one workflow in one pass (a week of minutes is ~10k).
const MAX_TICKS_WALKED: usize = 1_000_000;

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::ids::now_ms()
    }
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    engine: Engine,
}

fn to_dt(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, engine: Engine) -> Self {
        Self { store, clock, engine }
    }

    /// One pass: fires every due schedule once; returns how many runs this pass created.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let mut fired = 0;
        for wf in self.store.list_active_schedules().await? {
            let trigger = match sealflow_workflow::validate_trigger(Some(&wf.trigger)) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(workflow_id = %wf.id, error = %e, "stored schedule is invalid; skipped");
                    continue;
                }
            };
            let anchor = self
                .store
                .last_schedule_tick(&wf.id)
                .await?
                .unwrap_or(wf.updated_at);
            let Some(mut due) = trigger
                .next_after(to_dt(anchor))
                .filter(|t| t.timestamp_millis() <= now)
            else {
                continue;
            };
            for _ in 0..MAX_TICKS_WALKED {
                match trigger.next_after(due) {
                    Some(next) if next.timestamp_millis() <= now => due = next,
                    _ => break,
                }
            }
            let tick = due.timestamp_millis();
            let run = new_run(
                &wf,
                "schedule",
                json!({ "scheduled_for": rfc3339(tick) }),
                None,
                now,
            );
            if self.store.insert_scheduled_run(&run, tick).await? {
                self.engine.metrics().run_started(&run.trigger_type);
                fired += 1;
                tracing::info!(workflow_id = %wf.id, run_id = %run.id, scheduled_for = %rfc3339(tick), "schedule fired");
            }
        }
        if fired > 0 {
            self.engine.wake();
        }
        Ok(fired)
    }

    /// Passes every `every` until `shutdown` turns true.
    pub async fn run(self, every: Duration, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "scheduler pass failed");
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {},
                _ = shutdown.changed() => {},
            }
        }
    }
}
