//! Workflow definitions and their versions on PostgreSQL (the SQLite statements, except `seq`).

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::{PageRequest, StoreError, StoreResult, WorkflowRecord, WorkflowRepo, WorkflowVersion};

const COLUMNS: &str = "id, workspace_id, name, description, status, trigger_json, steps_json, template_id, \
                       version, webhook_token, created_at, updated_at";

fn json_column(row: &PgRow, name: &str) -> StoreResult<serde_json::Value> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

fn workflow_from_row(row: &PgRow) -> StoreResult<WorkflowRecord> {
    Ok(WorkflowRecord {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        status: row.try_get("status")?,
        trigger: json_column(row, "trigger_json")?,
        steps: json_column(row, "steps_json")?,
        template_id: row.try_get("template_id")?,
        version: row.try_get("version")?,
        webhook_token: row.try_get("webhook_token")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn insert_version(conn: &mut sqlx::PgConnection, wf: &WorkflowRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO workflow_versions (workflow_id, version, name, description, status, trigger_json, \
                                        steps_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&wf.id)
    .bind(wf.version)
    .bind(&wf.name)
    .bind(&wf.description)
    .bind(&wf.status)
    .bind(wf.trigger.to_string())
    .bind(wf.steps.to_string())
    .bind(wf.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl WorkflowRepo for PgStore {
    async fn insert_workflow(&self, wf: &WorkflowRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // `seq` is the identity column's default: MAX(seq)+1 would hand concurrent instances the
        // same value, a sequence never does.
        sqlx::query(&format!(
            "INSERT INTO workflows ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&wf.id)
        .bind(&wf.workspace_id)
        .bind(&wf.name)
        .bind(&wf.description)
        .bind(&wf.status)
        .bind(wf.trigger.to_string())
        .bind(wf.steps.to_string())
        .bind(&wf.template_id)
        .bind(wf.version)
        .bind(&wf.webhook_token)
        .bind(wf.created_at)
        .bind(wf.updated_at)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, wf).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflows WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn list_workflows(
        &self,
        workspace_id: &str,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<WorkflowRecord>, i64)> {
        let filter = "workspace_id = $1 AND ($2 IS NULL OR status = $2)";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflows WHERE {filter} \
             ORDER BY seq DESC LIMIT $3 OFFSET $4"
        ))
        .bind(workspace_id)
        .bind(status)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM workflows WHERE {filter}"))
            .bind(workspace_id)
            .bind(status)
            .fetch_one(&self.pool)
            .await?;
        let items = rows.iter().map(workflow_from_row).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn update_workflow(&self, wf: &WorkflowRecord, expected_version: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE workflows SET name = $3, description = $4, status = $5, trigger_json = $6, \
                                  steps_json = $7, version = $8, webhook_token = $9, updated_at = $10 \
             WHERE workspace_id = $1 AND id = $2 AND version = $11",
        )
        .bind(&wf.workspace_id)
        .bind(&wf.id)
        .bind(&wf.name)
        .bind(&wf.description)
        .bind(&wf.status)
        .bind(wf.trigger.to_string())
        .bind(wf.steps.to_string())
        .bind(wf.version)
        .bind(&wf.webhook_token)
        .bind(wf.updated_at)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_version(&mut tx, wf).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM workflow_versions WHERE workflow_id IN \
             (SELECT id FROM workflows WHERE workspace_id = $1 AND id = $2)",
        )
        .bind(workspace_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM workflows WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn find_workflow_by_webhook_token(&self, token: &str) -> StoreResult<Option<WorkflowRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflows WHERE webhook_token = $1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn rotate_webhook_token(
        &self,
        workspace_id: &str,
        id: &str,
        token: &str,
        at_ms: i64,
    ) -> StoreResult<bool> {
        // GREATEST is PostgreSQL's two-argument MAX (SQLite's scalar MAX).
        let done = sqlx::query(
            "UPDATE workflows SET webhook_token = $3, updated_at = GREATEST(updated_at, $4) \
             WHERE workspace_id = $1 AND id = $2 AND webhook_token IS NOT NULL",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(token)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_active_schedules(&self) -> StoreResult<Vec<WorkflowRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workflows WHERE status = 'active' AND trigger_json LIKE '%\"type\":\"schedule\"%'"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(workflow_from_row)
            .filter(|w| w.as_ref().map_or(true, |w| w.trigger["type"] == "schedule"))
            .collect()
    }

    async fn list_workflow_versions(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> StoreResult<Vec<WorkflowVersion>> {
        let rows = sqlx::query(
            "SELECT v.version, v.name, v.description, v.status, v.trigger_json, v.steps_json, v.created_at \
             FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id \
             WHERE w.workspace_id = $1 AND w.id = $2 ORDER BY v.version",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WorkflowVersion {
                    version: row.try_get("version")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    status: row.try_get("status")?,
                    trigger: json_column(row, "trigger_json")?,
                    steps: json_column(row, "steps_json")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
