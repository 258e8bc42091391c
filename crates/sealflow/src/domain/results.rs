//! The results of a batch run as CSV: the file's columns, then the last step's output of each
//! row flattened into columns (`a.b` for nested objects, JSON text for arrays), then `error`.
//!
//! Built page by page from the store and streamed: one pass finds the output columns, a second
//! writes the rows, so a million-row run is never held in memory. Outputs are the masked
//! records the engine wrote; nothing is unmasked here.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use serde_json::{Map, Value};

use crate::store::{BatchRow, RunRecord, Store, StoreError};

/// Rows read from the store at a time.
const PAGE: i64 = 1000;
/// Most output columns; further keys are left out of the CSV (the run records keep them).
pub const MAX_OUTPUT_COLUMNS: usize = 200;

/// `output` flattened into (column, text) pairs in key order.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Null if prefix.is_empty() => {}
        other => {
            let key = if prefix.is_empty() {
                "output".to_owned()
            } else {
                prefix.to_owned()
            };
            let text = match other {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            };
            out.push((key, text));
        }
    }
}

fn flat_output(row: &BatchRow) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(output) = row.item.as_ref().and_then(|i| i.output.as_ref()) {
        flatten("", output, &mut out);
    }
    out
}

/// The output columns of the whole run, in first-seen order (first pass).
async fn output_columns(
    store: &dyn Store,
    run_id: &str,
    file_id: &str,
    inputs: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut columns: Vec<String> = Vec::new();
    let mut from = 0;
    loop {
        let rows = store.batch_rows(run_id, file_id, from, PAGE).await?;
        let Some(last) = rows.last() else { break };
        from = last.idx + 1;
        for row in &rows {
            for (key, _) in flat_output(row) {
                let key = output_name(&key, inputs);
                if columns.len() < MAX_OUTPUT_COLUMNS && !columns.contains(&key) {
                    columns.push(key);
                }
            }
        }
    }
    Ok(columns)
}

/// An output column that would repeat an input column's name is prefixed `output.`.
fn output_name(key: &str, inputs: &[String]) -> String {
    if inputs.iter().any(|c| c == key) || key == "error" {
        format!("output.{key}")
    } else {
        key.to_owned()
    }
}

fn csv_line(cells: &[String]) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(cells).expect("writing to memory cannot fail");
    Bytes::from(writer.into_inner().expect("writing to memory cannot fail"))
}

/// The CSV of a batch run, as a stream of chunks (header first).
pub async fn results_csv(
    store: Arc<dyn Store>,
    run: &RunRecord,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, StoreError> {
    let batch = &run.definition["batch"];
    let file_id = batch["file_id"].as_str().unwrap_or_default().to_owned();
    let inputs: Vec<String> = serde_json::from_value(batch["columns"].clone()).unwrap_or_default();
    let outputs = output_columns(store.as_ref(), &run.id, &file_id, &inputs).await?;
    let mut header = inputs.clone();
    header.extend(outputs.iter().cloned());
    header.push("error".into());
    let head = csv_line(&header);
    struct State {
        store: Arc<dyn Store>,
        run_id: String,
        file_id: String,
        inputs: Vec<String>,
        outputs: Vec<String>,
        from: Option<i64>,
    }
    let state = State {
        store,
        run_id: run.id.clone(),
        file_id,
        inputs,
        outputs,
        from: Some(0),
    };
    let body = stream::unfold(state, |mut st| async move {
        let from = st.from?;
        let rows = match st.store.batch_rows(&st.run_id, &st.file_id, from, PAGE).await {
            Ok(rows) => rows,
            Err(e) => {
                st.from = None;
                return Some((Err(std::io::Error::other(e)), st));
            }
        };
        let last = rows.last()?.idx;
        st.from = Some(last + 1);
        let mut chunk = Vec::new();
        for row in &rows {
            let mut by_name = Map::new();
            for (key, text) in flat_output(row) {
                by_name.insert(output_name(&key, &st.inputs), Value::String(text));
            }
            let mut cells = row.values.clone();
            cells.resize(st.inputs.len(), String::new());
            cells.extend(st.outputs.iter().map(|c| {
                by_name
                    .get(c)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            }));
            let error = match &row.item {
                Some(item) => item.error.clone().unwrap_or_default(),
                None => "not processed".into(),
            };
            cells.push(error);
            chunk.extend_from_slice(&csv_line(&cells));
        }
        Some((Ok(Bytes::from(chunk)), st))
    });
    Ok(stream::once(async move { Ok(head) }).chain(body))
}
