//! [`LiveRedactors`]: the redactors of the runs in flight, for masking text
//! that belongs to no run in particular (log lines).
//!
//! A log line is written by whichever code emits it (our own, or the HTTP
//! client's) and knows nothing of runs, so each run publishes its redactor in
//! a [`LiveSlot`] while it executes, and the log writer masks every line with
//! all of them. A slot is removed when its run's worker drops it.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::search::{self, Span};
use crate::{Redactor, MARKER};

/// A shared set of redactors; cheap to clone (clones share the set).
#[derive(Clone, Default)]
pub struct LiveRedactors {
    inner: Arc<RwLock<Slots>>,
}

#[derive(Default)]
struct Slots {
    next: u64,
    live: Vec<(u64, Arc<Redactor>)>,
}

/// One run's place in a [`LiveRedactors`]; removed when dropped.
pub struct LiveSlot {
    set: LiveRedactors,
    id: u64,
}

impl LiveRedactors {
    /// An empty set: masks nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty slot for one run.
    pub fn slot(&self) -> LiveSlot {
        let mut slots = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let id = slots.next;
        slots.next = slots.next.wrapping_add(1);
        slots.live.push((id, Arc::new(Redactor::new())));
        LiveSlot {
            set: self.clone(),
            id,
        }
    }

    /// How many slots hold a redactor with at least one value.
    pub fn active(&self) -> usize {
        let slots = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        slots.live.iter().filter(|(_, r)| !r.is_empty()).count()
    }

    /// Masks `text` with every live redactor at once: the union of their
    /// matches becomes one marker per contiguous run, as within one
    /// redactor. Borrowed when nothing matched; the marker alone when a
    /// search failed (fail closed).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let slots = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut spans: Vec<Span> = Vec::new();
        for (_, redactor) in &slots.live {
            match redactor.spans(text) {
                Some(found) => spans.extend(found),
                None => return Cow::Owned(MARKER.to_owned()),
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(search::mask(text, &search::merge(spans)).0)
    }
}

impl LiveSlot {
    /// Publishes `redactor` (a snapshot: later additions need another call).
    /// Its automaton is built here, off the logging path.
    pub fn update(&self, redactor: &Redactor) {
        let snapshot = Arc::new(redactor.clone());
        let _ = snapshot.spans("");
        let mut slots = self.set.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.live.iter_mut().find(|(id, _)| *id == self.id) {
            slot.1 = snapshot;
        }
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut slots = self.set.inner.write().unwrap_or_else(PoisonError::into_inner);
        slots.live.retain(|(id, _)| *id != self.id);
    }
}

impl fmt::Debug for LiveRedactors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LiveRedactors")
            .field("slots", &slots.live.len())
            .finish()
    }
}

impl fmt::Debug for LiveSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSlot").field("id", &self.id).finish()
    }
}
