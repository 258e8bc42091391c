//! Workflow definitions and their versions.

use async_trait::async_trait;

use super::rows::{workflow_from_row, workflow_version_from_row};
use super::{on_db, SqlStore};
use crate::store::{PageRequest, StoreResult, WorkflowRecord, WorkflowRepo, WorkflowVersion};

const COLUMNS: &str = "id, workspace_id, name, description, status, trigger_json, steps_json, template_id, \
                       version, webhook_token, created_at, updated_at";

/// The version-row insert shared by create and update, as a query on any executor.
macro_rules! insert_version {
    ($wf:expr) => {
        sqlx::query(
            "INSERT INTO workflow_versions (workflow_id, version, name, description, status, trigger_json, \
                                            steps_json, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&$wf.id)
        .bind($wf.version)
        .bind(&$wf.name)
        .bind(&$wf.description)
        .bind(&$wf.status)
        .bind($wf.trigger.to_string())
        .bind($wf.steps.to_string())
        .bind($wf.updated_at)
    };
}

/// The workflow a webhook token belongs to (every incoming webhook call looks it up).
pub(super) fn by_token_sql() -> String {
    format!("SELECT {COLUMNS} FROM workflows WHERE webhook_token = $1")
}

#[async_trait]
impl WorkflowRepo for SqlStore {
    async fn insert_workflow(&self, wf: &WorkflowRecord) -> StoreResult<()> {
        on_db!(self, |pool, pg| {
            let sql = if pg {
                // `seq` is the identity column's default: MAX(seq)+1 would hand concurrent
                // instances the same value, a sequence never does.
                format!("INSERT INTO workflows ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            } else {
                // SQLite serializes writers, so MAX(seq)+1 inside the insert is strictly increasing.
                format!(
                    "INSERT INTO workflows ({COLUMNS}, seq) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                            COALESCE((SELECT MAX(seq) FROM workflows WHERE workspace_id = $2), 0) + 1"
                )
            };
            let mut tx = pool.begin().await?;
            sqlx::query(&sql)
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
            insert_version!(wf).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn get_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM workflows WHERE workspace_id = $1 AND id = $2");
        on_db!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(workflow_from_row).transpose()
        })
    }

    async fn list_workflows(
        &self,
        workspace_id: &str,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<WorkflowRecord>, i64)> {
        let filter = "workspace_id = $1 AND ($2 IS NULL OR status = $2)";
        let list =
            format!("SELECT {COLUMNS} FROM workflows WHERE {filter} ORDER BY seq DESC LIMIT $3 OFFSET $4");
        let count = format!("SELECT COUNT(*) FROM workflows WHERE {filter}");
        on_db!(self, |pool| {
            let rows = sqlx::query(&list)
                .bind(workspace_id)
                .bind(status)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(workspace_id)
                .bind(status)
                .fetch_one(pool)
                .await?;
            let items = rows.iter().map(workflow_from_row).collect::<StoreResult<_>>()?;
            Ok((items, total))
        })
    }

    async fn update_workflow(&self, wf: &WorkflowRecord, expected_version: i64) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
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
            insert_version!(wf).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn delete_workflow(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
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
        })
    }

    async fn find_workflow_by_webhook_token(&self, token: &str) -> StoreResult<Option<WorkflowRecord>> {
        let sql = by_token_sql();
        on_db!(self, |pool| {
            let row = sqlx::query(&sql).bind(token).fetch_optional(pool).await?;
            row.as_ref().map(workflow_from_row).transpose()
        })
    }

    async fn rotate_webhook_token(
        &self,
        workspace_id: &str,
        id: &str,
        token: &str,
        at_ms: i64,
    ) -> StoreResult<bool> {
        // A CASE rather than MAX/GREATEST, which each exist in only one of the dialects.
        let done = on_db!(self, |pool| {
            sqlx::query(
                "UPDATE workflows SET webhook_token = $3, \
                                  updated_at = CASE WHEN updated_at > $4 THEN updated_at ELSE $4 END \
             WHERE workspace_id = $1 AND id = $2 AND webhook_token IS NOT NULL",
            )
            .bind(workspace_id)
            .bind(id)
            .bind(token)
            .bind(at_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    async fn list_active_schedules(&self) -> StoreResult<Vec<WorkflowRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM workflows WHERE status = 'active' AND trigger_json LIKE '%\"type\":\"schedule\"%'"
        );
        on_db!(self, |pool| {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter()
                .map(workflow_from_row)
                .filter(|w| w.as_ref().map_or(true, |w| w.trigger["type"] == "schedule"))
                .collect()
        })
    }

    async fn list_workflow_versions(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> StoreResult<Vec<WorkflowVersion>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT v.version, v.name, v.description, v.status, v.trigger_json, v.steps_json, v.created_at \
                 FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id \
                 WHERE w.workspace_id = $1 AND w.id = $2 ORDER BY v.version",
            )
            .bind(workspace_id)
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(workflow_version_from_row).collect()
        })
    }
}
