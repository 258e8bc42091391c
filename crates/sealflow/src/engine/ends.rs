//! Run-end announcements inside one process, so a `?wait=` caller wakes when its run ends instead
//! of polling the database. The database stays the truth: a woken caller re-reads the run, and a
//! caller also re-reads now and then, for runs ended by another instance (or announced through
//! PostgreSQL `NOTIFY`, which the engine forwards here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Who is waiting for which run.
#[derive(Debug, Default)]
pub struct RunEnds {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl RunEnds {
    /// The notifier for `run_id`; register (`Notified::enable`) before reading the run, so an end
    /// between the read and the wait is not missed.
    pub fn watch(&self, run_id: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.entry(run_id.to_owned()).or_default().clone()
    }

    /// Drops the entry of a caller that stops waiting, unless someone else still waits on it.
    pub fn unwatch(&self, run_id: &str, notify: Arc<Notify>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Two holders: the map and this caller.
        if Arc::strong_count(&notify) <= 2 {
            waiting.remove(run_id);
        }
    }

    /// Wakes everyone waiting for `run_id`.
    pub fn ended(&self, run_id: &str) {
        let notify = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id);
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}
