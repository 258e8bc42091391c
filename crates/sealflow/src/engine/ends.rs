//! Run-end announcements inside one process, so a `?wait=` caller wakes when its run ends instead
//! of polling the database. The database stays the truth: a woken caller re-reads the run, and a
//! caller also re-reads now and then, for runs ended by another instance (or announced through
//! PostgreSQL `NOTIFY`, which the engine forwards here).
//!
//! A run executed here from its start can be announced with its ended record
//! ([`RunEnds::ended_with`]): the worker holds every row it committed, so the waiter is answered
//! from memory after the commit, without reading the run back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::store::{RunRecord, StepRecord};

/// A run as committed at its end, with its step results (what `GET` of the run returns).
#[derive(Debug, Clone)]
pub struct EndedRun {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
}

/// One run's waiters.
#[derive(Debug, Default)]
pub struct Watch {
    notify: Notify,
    /// `None` until the run ends; then its record when the announcer had it (else re-read it).
    ended: Mutex<Option<Option<Arc<EndedRun>>>>,
}

impl Watch {
    /// Waits until the run is announced ended, or `until`; returns whether it was.
    pub async fn ended(&self, until: tokio::time::Instant) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so an end announced in between is heard.
        notified.as_mut().enable();
        if self.is_ended() {
            return true;
        }
        tokio::select! {
            () = notified => true,
            () = tokio::time::sleep_until(until) => self.is_ended(),
        }
    }

    fn is_ended(&self) -> bool {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The run's ended record, when its end was announced with one.
    pub fn record(&self) -> Option<Arc<EndedRun>> {
        self.ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .flatten()
    }
}

/// Who is waiting for which run.
#[derive(Debug, Default)]
pub struct RunEnds {
    waiting: Mutex<HashMap<String, Arc<Watch>>>,
}

impl RunEnds {
    /// The watch for `run_id`; wait on it ([`Watch::ended`]) after reading the run, so an end
    /// between the read and the wait is not missed.
    pub fn watch(&self, run_id: &str) -> Arc<Watch> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.entry(run_id.to_owned()).or_default().clone()
    }

    /// Drops the entry of a caller that stops waiting, unless someone else still waits on it.
    pub fn unwatch(&self, run_id: &str, watch: Arc<Watch>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Two holders: the map and this caller.
        if Arc::strong_count(&watch) <= 2 && waiting.get(run_id).is_some_and(|w| Arc::ptr_eq(w, &watch)) {
            waiting.remove(run_id);
        }
    }

    /// Wakes everyone waiting for `run_id` (they re-read the run).
    pub fn ended(&self, run_id: &str) {
        self.announce(run_id, None);
    }

    /// Wakes everyone waiting for `run_id` with its ended record; call only after the commit
    /// that holds it has returned.
    pub fn ended_with(&self, ended: EndedRun) {
        let id = ended.run.id.clone();
        self.announce(&id, Some(Arc::new(ended)));
    }

    fn announce(&self, run_id: &str, record: Option<Arc<EndedRun>>) {
        let watch = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
        if let Some(watch) = watch {
            *watch.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
            watch.notify.notify_waiters();
        }
    }
}
