//! What templates render against during a run: input, earlier outputs, run and workflow ids,
//! and how many bytes one step may render (`SEALFLOW_MAX_STEP_BYTES`). Secrets are not here:
//! webhook steps resolve them at the moment of sending (see `webhook_request`).

use std::collections::HashMap;

use serde_json::Value;

pub struct RunContext {
    pub input: Value,
    pub outputs: HashMap<String, Value>,
    pub run_id: String,
    pub workflow_id: String,
    /// The render budget of each step (transform output, condition operands, webhook request).
    pub step_bytes: usize,
}

impl sealflow_template::Resolve for RunContext {
    fn input(&self) -> &Value {
        &self.input
    }
    fn step_output(&self, step_id: &str) -> Option<&Value> {
        self.outputs.get(step_id)
    }
    fn run_id(&self) -> Option<&str> {
        Some(&self.run_id)
    }
    fn workflow_id(&self) -> Option<&str> {
        Some(&self.workflow_id)
    }
    fn secret(&self, _name: &str) -> Option<&str> {
        None
    }
}
