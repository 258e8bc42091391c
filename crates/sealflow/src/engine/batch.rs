//! Batch runs: a run started with an uploaded file (`file_id`) runs the workflow once per row,
//! the row's cells (by column name) as `input`, inside the one parent run.
//!
//! Rows are read in pages of [`PAGE`]; after each page the results and the row cursor (kept in
//! the run's `next_step`) are written together under the worker's lease. A worker that dies
//! loses at most one page of work: the next owner resumes at the cursor. Rows run through the
//! same step evaluators and webhook sender as any run, with one redactor for the whole batch,
//! so every secret a row resolved is masked in every row's record. Delay steps are refused when
//! the batch is started (a parked row would park every other row behind it).

use std::collections::HashMap;

use sealflow_redact::{LiveSlot, Redactor};
use sealflow_workflow::{Definition, StepConfig};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::condition;
use super::context::RunContext;
use super::limits::recorded_bytes;
use super::webhook::{AuditSite, WebhookStep};
use super::worker::{guard, Outcome, Shared};
use crate::ids::now_ms;
use crate::metrics::RunEndStatus;
use crate::store::{AuditEvent, BatchItem, RunRecord};

/// Rows processed between two durable writes.
const PAGE: i64 = 500;

/// True for a run started with a file (its pinned definition names the file).
pub fn is_batch(run: &RunRecord) -> bool {
    run.definition.get("batch").is_some()
}

/// The row's cells as an input object, keyed by the file's column names.
fn row_input(columns: &[String], cells: Vec<String>) -> Value {
    let mut input = Map::new();
    for (name, cell) in columns.iter().zip(cells) {
        input.insert(name.clone(), Value::String(cell));
    }
    Value::Object(input)
}

pub(super) async fn execute_rows(
    shared: &Shared,
    owner: &str,
    run: &RunRecord,
    def: &Definition,
    mut lost: watch::Receiver<bool>,
) -> Result<(), Outcome> {
    let batch = &run.definition["batch"];
    let file_id = batch["file_id"].as_str().unwrap_or_default();
    let columns: Vec<String> = serde_json::from_value(batch["columns"].clone()).unwrap_or_default();
    let mut masking = Masking {
        redactor: Redactor::new(),
        live: shared.live.slot(),
    };
    let mut cursor = run.next_step;
    loop {
        if *lost.borrow() {
            return Err(Outcome::Lost);
        }
        let rows = shared.store.file_rows(file_id, cursor, PAGE).await?;
        let Some(next) = rows.last().map(|(idx, _)| idx + 1) else {
            break;
        };
        let mut items = Vec::with_capacity(rows.len());
        // Outcomes of the rows' secret uses, written with the rows' results.
        let mut audit = Vec::new();
        let mut held = 0usize;
        for (idx, cells) in rows {
            let input = row_input(&columns, cells);
            let (item, used) = run_row(shared, run, def, idx, input, &mut masking, &mut lost).await?;
            audit.extend(used);
            held = held.saturating_add(recorded_bytes(item.output.as_ref(), item.error.as_deref()));
            items.push(item);
            // Each row may render up to the step limit: write early rather than hold a page of
            // them (500 × 1 MiB), so a batch holds about one run's worth of results at a time.
            if held >= shared.limits.run_bytes {
                guard(
                    shared
                        .store
                        .save_batch_items(&run.id, owner, &items, idx + 1, std::mem::take(&mut audit))
                        .await?,
                )?;
                items.clear();
                held = 0;
            }
        }
        guard(
            shared
                .store
                .save_batch_items(&run.id, owner, &items, next, std::mem::take(&mut audit))
                .await?,
        )?;
        cursor = next;
    }
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

/// The batch's one redactor, and where it is published for the log writer while rows run.
struct Masking {
    redactor: Redactor,
    live: LiveSlot,
}

/// Runs every step for one row; the result is the last step's output, or the first failure,
/// with the outcomes of the row's secret uses.
async fn run_row(
    shared: &Shared,
    run: &RunRecord,
    def: &Definition,
    idx: i64,
    input: Value,
    masking: &mut Masking,
    lost: &mut watch::Receiver<bool>,
) -> Result<(BatchItem, Vec<AuditEvent>), Outcome> {
    // The outcomes of the row's secret uses, returned to be written with its result.
    let mut audit = Vec::new();
    let Masking { redactor, live } = masking;
    // Each row is its own delivery: `<run>-<row>` keeps webhook delivery ids unique per row.
    let mut ctx = RunContext {
        input,
        outputs: HashMap::new(),
        run_id: format!("{}-{idx}", run.id),
        workflow_id: run.workflow_id.clone(),
        step_bytes: shared.limits.step_bytes,
    };
    let mut last = Value::Null;
    let mut i = 0;
    while i < def.steps.len() {
        let step = &def.steps[i];
        let mut next = i + 1;
        let clock = std::time::Instant::now();
        let result = match &step.config {
            StepConfig::Delay(_) => Err("delay steps do not run in batch runs".to_owned()),
            StepConfig::Transform(_) => condition::transform(step, &ctx),
            StepConfig::Condition(c) => condition::branch(def, i, c, &ctx).map(|(result, target)| {
                next = target;
                json!({ "result": result })
            }),
            StepConfig::Webhook(w) => {
                let send = WebhookStep {
                    workspace_id: &run.workspace_id,
                    run_id: &ctx.run_id,
                    step_id: &step.id,
                    config: w,
                    ctx: &ctx,
                    secrets: &shared.secrets,
                    egress: &shared.egress,
                    redactor: &mut *redactor,
                    live,
                    metrics: &shared.metrics,
                    audit: AuditSite {
                        store: shared.store.as_ref(),
                        run_id: &run.id,
                        row: Some(idx),
                    },
                    recorded: None,
                }
                .run();
                let outcome = tokio::select! {
                    o = send => o,
                    _ = lost.wait_for(|l| *l) => return Err(Outcome::Lost),
                };
                audit.extend(outcome.audit);
                if outcome.ok {
                    Ok(outcome.output.unwrap_or(Value::Null))
                } else {
                    Err(outcome.error.unwrap_or_else(|| "unknown error".into()))
                }
            }
        };
        shared.metrics.step(step.step_type, clock.elapsed());
        match result {
            Ok(output) => {
                ctx.outputs.insert(step.id.clone(), output.clone());
                last = output;
            }
            Err(e) => {
                let error = format!("step {:?} failed: {e}", step.id);
                let item = BatchItem {
                    idx,
                    status: "failed".into(),
                    output: None,
                    error: Some(redactor.redact_str(&error).into_owned()),
                };
                return Ok((item, audit));
            }
        }
        i = next;
    }
    // Webhook outputs are masked as they are made; a later transform may have copied one, so
    // the row's result is masked once more as a whole.
    redactor.redact_json(&mut last);
    let item = BatchItem {
        idx,
        status: "completed".into(),
        output: Some(last),
        error: None,
    };
    Ok((item, audit))
}
