//! Size limits on what a workflow may make the server hold, so that no definition can grow the
//! server's memory, its database or a response without bound:
//!
//! - **definition**: the trigger and steps together, as compact JSON, when saved;
//! - **step**: what one step renders (a transform's output; a webhook's URL, headers and body
//!   together; a condition's operands), charged *while* rendering, so a template that copies an
//!   earlier output ten times per step fails at the limit instead of building gigabytes;
//! - **run**: what a run records, all its step outputs and errors together.
//!
//! The server makes each configurable (`SEALFLOW_MAX_DEFINITION_BYTES`, `SEALFLOW_MAX_STEP_BYTES`,
//! `SEALFLOW_MAX_RUN_BYTES`); these are the defaults.

use serde_json::Value;

use crate::validate::Invalid;

/// Default largest definition: 256 KiB (50 steps of about 5 KB).
pub const DEFAULT_MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Default largest rendering of one step: 1 MiB (the default request body limit, so a transform
/// can pass on a whole run input).
pub const DEFAULT_MAX_STEP_BYTES: usize = 1024 * 1024;
/// Default most bytes one run records: 4 MiB.
pub const DEFAULT_MAX_RUN_BYTES: usize = 4 * 1024 * 1024;

/// The three limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest definition (trigger and steps as compact JSON).
    pub definition_bytes: usize,
    /// Largest rendering of one step.
    pub step_bytes: usize,
    /// Most a run records (step outputs and errors).
    pub run_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            definition_bytes: DEFAULT_MAX_DEFINITION_BYTES,
            step_bytes: DEFAULT_MAX_STEP_BYTES,
            run_bytes: DEFAULT_MAX_RUN_BYTES,
        }
    }
}

/// Refuses a definition whose trigger and steps are together larger than `max` bytes of compact
/// JSON (measured without serializing, stopping at `max`). `setting` names where `max` is
/// configured, for the message.
pub fn check_definition_size(
    trigger: Option<&Value>,
    steps: Option<&Value>,
    max: usize,
    setting: &str,
) -> Result<(), Invalid> {
    let size = |v: Option<&Value>, max: usize| v.map_or(Some(0), |v| sealflow_template::json_size(v, max));
    let fits = size(trigger, max).and_then(|t| size(steps, max - t)).is_some();
    if fits {
        Ok(())
    } else {
        Err(Invalid::root(
            "steps",
            format!(
                "the definition (trigger and steps as compact JSON) is larger than {max} bytes, \
                 the most allowed ({setting})"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_definition_size_is_trigger_plus_steps() {
        let steps = json!([{"id": "a", "type": "transform", "config": {"output": "x".repeat(100)}}]);
        let trigger = json!({"type": "manual"});
        let total = serde_json::to_vec(&steps).unwrap().len() + serde_json::to_vec(&trigger).unwrap().len();
        assert!(check_definition_size(Some(&trigger), Some(&steps), total, "S").is_ok());
        let err = check_definition_size(Some(&trigger), Some(&steps), total - 1, "S").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("steps"));
        assert!(
            err.message.contains(&format!("larger than {} bytes", total - 1)),
            "{}",
            err.message
        );
        assert!(check_definition_size(None, None, 0, "S").is_ok());
    }
}
