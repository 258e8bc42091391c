//! Row mapping, written once for both backends: [`SqlRow::col`] reads a column from a SQLite or a
//! PostgreSQL row alike, and each `*_from_row` turns a row into its record.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Sqlite};

use crate::store::{
    ApiKeyRecord, Role, RunRecord, SecretMeta, SecretRecord, StepRecord, StoreError, StoreResult,
    WorkflowRecord, WorkflowVersion, Workspace,
};
use crate::vault::SealedSecret;

/// A column type both drivers decode (`String`, `i64`, `Vec<u8>` and their `Option`s).
pub(crate) trait Col:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}
impl<T> Col for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// A row of either backend.
pub(crate) trait SqlRow {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T>;

    /// A JSON document stored as text.
    fn json(&self, name: &str) -> StoreResult<serde_json::Value> {
        let text: String = self.col(name)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    }

    fn opt_json(&self, name: &str) -> StoreResult<Option<serde_json::Value>> {
        let text: Option<String> = self.col(name)?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
            .transpose()
    }
}

impl SqlRow for SqliteRow {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

impl SqlRow for PgRow {
    fn col<T: Col>(&self, name: &str) -> StoreResult<T> {
        Ok(self.try_get(name)?)
    }
}

pub(crate) fn workspace_from_row(row: &impl SqlRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: row.col("id")?,
        slug: row.col("slug")?,
        created_at: row.col("created_at")?,
    })
}

pub(crate) fn api_key_from_row(row: &impl SqlRow) -> StoreResult<ApiKeyRecord> {
    let role: String = row.col("role")?;
    Ok(ApiKeyRecord {
        id: row.col("id")?,
        workspace_id: row.col("workspace_id")?,
        name: row.col("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        key_hash: row.col("key_hash")?,
        key_preview: row.col("key_preview")?,
        created_at: row.col("created_at")?,
        last_used: row.col("last_used")?,
        total_requests: row.col("total_requests")?,
        revoked_at: row.col("revoked_at")?,
        credit_limit: row.col("credit_limit")?,
        credits_used: row.col("credits_used")?,
    })
}

pub(crate) fn hosts_from_column(text: Option<String>) -> StoreResult<Option<Vec<String>>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("allowed_hosts: {e}"))))
        .transpose()
}

pub(crate) fn hosts_to_column(hosts: &Option<Vec<String>>) -> Option<String> {
    hosts
        .as_ref()
        .map(|h| serde_json::Value::from(h.clone()).to_string())
}

pub(crate) fn secret_meta_from_row(row: &impl SqlRow) -> StoreResult<SecretMeta> {
    Ok(SecretMeta {
        name: row.col("name")?,
        allowed_hosts: hosts_from_column(row.col("allowed_hosts")?)?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(crate) fn secret_from_row(row: &impl SqlRow) -> StoreResult<SecretRecord> {
    Ok(SecretRecord {
        workspace_id: row.col("workspace_id")?,
        name: row.col("name")?,
        version: row.col("version")?,
        sealed: SealedSecret {
            kek_id: row.col("kek_id")?,
            wrapped_dek: row.col("wrapped_dek")?,
            ciphertext: row.col("ciphertext")?,
        },
        allowed_hosts: hosts_from_column(row.col("allowed_hosts")?)?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(crate) fn workflow_from_row(row: &impl SqlRow) -> StoreResult<WorkflowRecord> {
    Ok(WorkflowRecord {
        id: row.col("id")?,
        workspace_id: row.col("workspace_id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        status: row.col("status")?,
        trigger: row.json("trigger_json")?,
        steps: row.json("steps_json")?,
        template_id: row.col("template_id")?,
        version: row.col("version")?,
        webhook_token: row.col("webhook_token")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

pub(crate) fn workflow_version_from_row(row: &impl SqlRow) -> StoreResult<WorkflowVersion> {
    Ok(WorkflowVersion {
        version: row.col("version")?,
        name: row.col("name")?,
        description: row.col("description")?,
        status: row.col("status")?,
        trigger: row.json("trigger_json")?,
        steps: row.json("steps_json")?,
        created_at: row.col("created_at")?,
    })
}

pub(crate) fn run_from_row(row: &impl SqlRow) -> StoreResult<RunRecord> {
    Ok(RunRecord {
        id: row.col("id")?,
        workspace_id: row.col("workspace_id")?,
        workflow_id: row.col("workflow_id")?,
        workflow_name: row.col("workflow_name")?,
        workflow_version: row.col("workflow_version")?,
        definition: std::sync::Arc::new(row.json("definition_json")?),
        status: row.col("status")?,
        trigger_type: row.col("trigger_type")?,
        input: row.json("input_json")?,
        error: row.col("error")?,
        next_step: row.col("next_step")?,
        wake_at: row.col("wake_at")?,
        idempotency_key: row.col("idempotency_key")?,
        request_hash: row.col("request_hash")?,
        created_at: row.col("created_at")?,
        started_at: row.col("started_at")?,
        completed_at: row.col("completed_at")?,
        steps_completed: row.col("steps_completed")?,
    })
}

pub(crate) fn step_from_row(row: &impl SqlRow) -> StoreResult<StepRecord> {
    Ok(StepRecord {
        idx: row.col("idx")?,
        step_id: row.col("step_id")?,
        step_type: row.col("step_type")?,
        status: row.col("status")?,
        output: row.opt_json("output_json")?,
        error: row.col("error")?,
        attempts: row.col("attempts")?,
        started_at: row.col("started_at")?,
        completed_at: row.col("completed_at")?,
    })
}

pub(crate) fn user_from_row(row: &impl SqlRow) -> StoreResult<crate::store::UserRecord> {
    Ok(crate::store::UserRecord {
        id: row.col("id")?,
        email: row.col("email")?,
        password_hash: row.col("password_hash")?,
        created_at: row.col("created_at")?,
    })
}

pub(crate) fn master_key_from_row(row: &impl SqlRow) -> StoreResult<crate::store::MasterKeyRecord> {
    Ok(crate::store::MasterKeyRecord {
        id: row.col("id")?,
        check_value: row.col("check_value")?,
        created_at: row.col("created_at")?,
        retired_at: row.col("retired_at")?,
    })
}

pub(crate) fn wrapped_dek_from_row(row: &impl SqlRow) -> StoreResult<crate::store::WrappedDek> {
    Ok(crate::store::WrappedDek {
        workspace_id: row.col("workspace_id")?,
        name: row.col("name")?,
        version: row.col("version")?,
        kek_id: row.col("kek_id")?,
        wrapped_dek: row.col("wrapped_dek")?,
    })
}
