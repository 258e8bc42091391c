//! The engine's share of the size limits (`sealflow_workflow::Limits`): each step renders under
//! `step_bytes` (charged while rendering, see `sealflow_template::Budget`), and what a run
//! records, its step outputs and errors together, stays under `run_bytes`. A step over either
//! limit fails, naming the limit and its setting, and its output is not kept, so neither memory
//! nor the stored run nor a `GET` of it can be made to grow without bound by a definition.

use sealflow_template::json_size;
use serde_json::Value;

use crate::store::StepRecord;

/// A step's failure when what it renders would pass the step limit.
pub(super) fn step_too_large(what: &str, limit: usize) -> String {
    format!("the rendered {what} is over the step limit of {limit} bytes (SEALFLOW_MAX_STEP_BYTES)")
}

/// Bytes a run has recorded so far, against its limit.
pub(super) struct RunTally {
    used: usize,
    limit: usize,
}

impl RunTally {
    /// Starts from what is already recorded (a run resumed after a restart or a delay).
    pub(super) fn new(limit: usize, recorded: &[StepRecord]) -> Self {
        let used = recorded.iter().map(recorded_size).fold(0, usize::saturating_add);
        RunTally { used, limit }
    }

    /// Adds `record`; if that would pass the limit, the record becomes a failure naming the
    /// limit, without its output.
    pub(super) fn charge(&mut self, record: &mut StepRecord) {
        let size = recorded_size(record);
        match self.used.checked_add(size).filter(|total| *total <= self.limit) {
            Some(total) => self.used = total,
            None => {
                record.status = "failed".into();
                record.output = None;
                record.error = Some(format!(
                    "the run's recorded outputs would pass the run limit of {} bytes \
                     (SEALFLOW_MAX_RUN_BYTES)",
                    self.limit
                ));
                self.used = self.used.saturating_add(recorded_size(record));
            }
        }
    }
}

fn recorded_size(record: &StepRecord) -> usize {
    recorded_bytes(record.output.as_ref(), record.error.as_deref())
}

/// What a recorded result weighs: the compact-JSON bytes of its output plus those of its error.
pub(super) fn recorded_bytes(output: Option<&Value>, error: Option<&str>) -> usize {
    let output = output.map_or(0, |o| json_size(o, usize::MAX).unwrap_or(usize::MAX));
    output.saturating_add(error.map_or(0, str::len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(output: serde_json::Value) -> StepRecord {
        StepRecord {
            idx: 0,
            step_id: "s".into(),
            step_type: "transform".into(),
            status: "completed".into(),
            output: Some(output),
            error: None,
            attempts: 1,
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn a_step_that_would_pass_the_run_limit_fails_without_its_output() {
        let first = record(json!("x".repeat(60)));
        let mut tally = RunTally::new(100, std::slice::from_ref(&first));
        let mut fits = record(json!("y".repeat(20)));
        tally.charge(&mut fits);
        assert_eq!(fits.status, "completed");
        let mut over = record(json!("z".repeat(20)));
        tally.charge(&mut over);
        assert_eq!(over.status, "failed");
        assert_eq!(over.output, None);
        assert!(over
            .error
            .unwrap()
            .contains("run limit of 100 bytes (SEALFLOW_MAX_RUN_BYTES)"));
    }
}
