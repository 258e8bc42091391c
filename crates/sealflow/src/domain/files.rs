//! Uploaded files for batch runs: parsing (CSV with a header row, or TXT with one value a line),
//! the identifier guess, the limits, and what a batch run pins about its file.
//!
//! An upload is spooled to a temporary file by the HTTP layer and parsed here on a blocking
//! thread that hands rows over in pages, so no whole file is ever held in memory.

use std::path::Path;

use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::mpsc;

use super::runs::RunsError;
use crate::ids::{new_id, now_ms};
use crate::store::{FileRecord, Store, StoreError, WorkflowRecord};

/// Largest upload (bytes); 413 above.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;
/// Most data rows in one file; 422 above.
pub const MAX_FILE_ROWS: i64 = 1_000_000;
/// Most columns in a CSV header; 422 above.
pub const MAX_COLUMNS: usize = 100;
/// Rows handed from the parser to the database at a time.
const ROWS_PER_PAGE: usize = 1000;

#[derive(Debug, Error)]
pub enum FileError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Csv,
    Txt,
}

/// The file's kind by its name; XLSX is refused with what to do instead.
pub fn kind_of(filename: &str) -> Result<Kind, FileError> {
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Ok(Kind::Csv)
    } else if lower.ends_with(".txt") {
        Ok(Kind::Txt)
    } else if lower.ends_with(".xlsx") || lower.ends_with(".xls") {
        Err(FileError::Unsupported(
            "XLSX files are not supported: save the sheet as CSV and upload that".into(),
        ))
    } else {
        Err(FileError::Unsupported(format!(
            "{filename:?} is neither .csv nor .txt; upload a CSV with a header row or a TXT with one value a line"
        )))
    }
}

/// What a column holds, guessed from its name: email, domain, phone, else the name itself.
fn identifier_type(column: &str) -> Option<&'static str> {
    let c = column.to_ascii_lowercase();
    if c.contains("email") || c.contains("e-mail") {
        Some("email")
    } else if c.contains("domain") || c.contains("website") || c == "url" {
        Some("domain")
    } else if c.contains("phone") || c.contains("mobile") || c == "tel" {
        Some("phone")
    } else {
        None
    }
}

/// The identifier column and its type: the first email, domain or phone column (in that
/// order of preference), else the first column.
pub fn identify(columns: &[String]) -> (String, String) {
    for wanted in ["email", "domain", "phone"] {
        if let Some(c) = columns.iter().find(|c| identifier_type(c) == Some(wanted)) {
            return (wanted.to_owned(), c.clone());
        }
    }
    let first = columns.first().cloned().unwrap_or_else(|| "value".into());
    (first.to_ascii_lowercase(), first)
}

/// What the parser hands over: the header once, then pages of rows (JSON arrays of cells).
enum Parsed {
    Header(Vec<String>),
    Rows(Vec<String>),
}

/// Parses the spooled file on the calling (blocking) thread.
fn parse(path: &Path, kind: Kind, tx: &mpsc::Sender<Parsed>) -> Result<i64, FileError> {
    let invalid = |e: csv::Error| FileError::Invalid(format!("the file is not valid {kind:?}: {e}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(kind == Kind::Csv)
        .flexible(true)
        // A TXT line is one value, commas and all: split on a byte text never holds.
        .delimiter(if kind == Kind::Csv { b',' } else { 0x1f })
        .quoting(kind == Kind::Csv)
        .from_path(path)
        .map_err(invalid)?;
    let columns: Vec<String> = match kind {
        Kind::Csv => reader
            .headers()
            .map_err(invalid)?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect(),
        Kind::Txt => Vec::new(),
    };
    let mut columns = columns;
    if kind == Kind::Csv {
        check_header(&columns)?;
    }
    let mut page = Vec::with_capacity(ROWS_PER_PAGE);
    let mut count: i64 = 0;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(invalid)? {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if kind == Kind::Txt && columns.is_empty() {
            // One value a line, no header: name the column by what its first value looks like.
            let first = record.get(0).unwrap_or_default();
            columns = vec![guess_txt_column(first).to_owned()];
        }
        if count == 0 && page.is_empty() && tx.blocking_send(Parsed::Header(columns.clone())).is_err() {
            return Ok(0);
        }
        count += 1;
        if count > MAX_FILE_ROWS {
            return Err(FileError::Invalid(format!(
                "the file has more than {MAX_FILE_ROWS} rows"
            )));
        }
        let cells: Vec<Value> = (0..columns.len())
            .map(|i| Value::String(record.get(i).unwrap_or_default().trim().to_owned()))
            .collect();
        page.push(Value::Array(cells).to_string());
        if page.len() == ROWS_PER_PAGE && tx.blocking_send(Parsed::Rows(std::mem::take(&mut page))).is_err() {
            return Ok(count);
        }
    }
    if count == 0 {
        return Err(FileError::Invalid("the file has no data rows".into()));
    }
    if !page.is_empty() {
        let _ = tx.blocking_send(Parsed::Rows(page));
    }
    Ok(count)
}

fn check_header(columns: &[String]) -> Result<(), FileError> {
    if columns.is_empty() || columns.iter().all(|c| c.is_empty()) {
        return Err(FileError::Invalid("the CSV has no header row".into()));
    }
    if columns.len() > MAX_COLUMNS {
        return Err(FileError::Invalid(format!(
            "the CSV has more than {MAX_COLUMNS} columns"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for c in columns {
        if c.is_empty() || c.len() > 200 || !seen.insert(c) {
            return Err(FileError::Invalid(format!(
                "column names must be unique and 1 to 200 characters (column {c:?})"
            )));
        }
    }
    Ok(())
}

fn guess_txt_column(value: &str) -> &'static str {
    let v = value.trim();
    if v.contains('@') {
        "email"
    } else if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || "+-() .".contains(c)) {
        "phone"
    } else if v.contains('.') && !v.contains(' ') {
        "domain"
    } else {
        "value"
    }
}

/// Parses a spooled upload and stores it as a file of the workspace; on any failure nothing
/// of it is kept.
pub async fn store_upload(
    store: &dyn Store,
    workspace_id: &str,
    workflow_id: Option<String>,
    filename: &str,
    spooled: &Path,
) -> Result<FileRecord, FileError> {
    let kind = kind_of(filename)?;
    let (tx, mut rx) = mpsc::channel(4);
    let path = spooled.to_owned();
    let parser = tokio::task::spawn_blocking(move || parse(&path, kind, &tx));
    let mut file: Option<FileRecord> = None;
    let mut written: i64 = 0;
    let mut failure: Option<FileError> = None;
    while let Some(msg) = rx.recv().await {
        let step = async {
            match msg {
                Parsed::Header(columns) => {
                    let (identifier_type, identifier_column) = identify(&columns);
                    let record = FileRecord {
                        id: new_id("file"),
                        workspace_id: workspace_id.to_owned(),
                        workflow_id: workflow_id.clone(),
                        filename: filename.to_owned(),
                        columns,
                        identifier_type,
                        identifier_column,
                        row_count: 0,
                        created_at: now_ms(),
                    };
                    store.insert_file(&record).await?;
                    file = Some(record);
                }
                Parsed::Rows(rows) => {
                    let id = &file.as_ref().expect("the header comes first").id;
                    store.insert_file_rows(id, written, &rows).await?;
                    written += rows.len() as i64;
                }
            }
            Ok::<(), StoreError>(())
        };
        if let Err(e) = step.await {
            failure = Some(e.into());
            break;
        }
    }
    drop(rx); // a parser still sending stops
    let parsed = parser
        .await
        .map_err(|e| FileError::Invalid(format!("the parser stopped: {e}")))?;
    let outcome = match (failure, parsed) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(_)) => match file {
            Some(mut record) => {
                store.set_file_row_count(&record.id, written).await?;
                record.row_count = written;
                return Ok(record);
            }
            None => Err(FileError::Invalid("the file has no data rows".into())),
        },
    };
    if let Some(record) = &file {
        store.delete_file(&record.id).await?;
    }
    outcome
}

/// What a batch run pins about its file (in its definition, beside the steps): checked here
/// once, so the engine needs no lookups. The workflow may not have delay steps.
pub async fn batch_of(store: &dyn Store, wf: &WorkflowRecord, file_id: &str) -> Result<Value, RunsError> {
    let file = store
        .get_file(&wf.workspace_id, file_id)
        .await?
        .ok_or_else(|| RunsError::NotFound(format!("file {file_id:?}")))?;
    let has_delay = wf
        .steps
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["type"] == "delay");
    if has_delay {
        return Err(RunsError::BadRequest(
            "workflows with delay steps cannot run over a file (a parked row would hold up every other row)"
                .into(),
        ));
    }
    Ok(json!({
        "file_id": file.id,
        "filename": file.filename,
        "columns": file.columns,
        "row_count": file.row_count,
    }))
}
