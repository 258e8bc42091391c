//! Uploaded files (one row per line of the file) and the per-row results of batch runs.
//!
//! Implemented once for both backends in `sql/files.rs`. Rows are read and written in pages so
//! neither an upload nor a batch run nor a download ever holds a whole file.

use async_trait::async_trait;

use super::StoreResult;

/// An uploaded file's header; its rows are in `run_file_rows`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: String,
    pub workspace_id: String,
    pub workflow_id: Option<String>,
    pub filename: String,
    pub columns: Vec<String>,
    pub identifier_type: String,
    pub identifier_column: String,
    pub row_count: i64,
    pub created_at: i64,
}

/// One processed row of a batch run.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    pub idx: i64,
    pub status: String,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// A file row with its batch result, if it has one yet (for downloads).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub idx: i64,
    /// The row's cells, aligned with the file's columns.
    pub values: Vec<String>,
    pub item: Option<BatchItem>,
}

#[async_trait]
pub trait FileRepo {
    /// Inserts the file header (with `row_count` as given; rows follow).
    async fn insert_file(&self, file: &FileRecord) -> StoreResult<()>;
    /// Appends rows `first_idx..` (each a JSON array of cells) in one transaction.
    async fn insert_file_rows(&self, file_id: &str, first_idx: i64, rows: &[String]) -> StoreResult<()>;
    async fn set_file_row_count(&self, file_id: &str, row_count: i64) -> StoreResult<()>;
    async fn delete_file(&self, file_id: &str) -> StoreResult<()>;
    async fn get_file(&self, workspace_id: &str, id: &str) -> StoreResult<Option<FileRecord>>;
    /// Up to `limit` rows with `idx >= from`, in order.
    async fn file_rows(&self, file_id: &str, from: i64, limit: i64) -> StoreResult<Vec<(i64, Vec<String>)>>;
    /// Records results and moves the run's row cursor to `next_row`, under the worker's lease;
    /// false (nothing written) if the lease was lost or the run is no longer running. `audit`
    /// (the outcomes of the rows' secret uses) is appended in the same commit either way.
    async fn save_batch_items(
        &self,
        run_id: &str,
        owner: &str,
        items: &[BatchItem],
        next_row: i64,
        audit: Vec<crate::store::AuditEvent>,
    ) -> StoreResult<bool>;
    /// Up to `limit` file rows with `idx >= from`, each with its result in run `run_id`.
    async fn batch_rows(
        &self,
        run_id: &str,
        file_id: &str,
        from: i64,
        limit: i64,
    ) -> StoreResult<Vec<BatchRow>>;
    /// How many rows of the run have a result, and how many of those failed.
    async fn batch_counts(&self, run_id: &str) -> StoreResult<(i64, i64)>;
}

/// Parses a stored JSON array of cells.
pub(crate) fn cells(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| super::StoreError::Corrupt(format!("file cells: {e}")))
}

pub(crate) fn json(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| super::StoreError::Corrupt(format!("batch output: {e}")))
}
