//! Runs, step results, leases and rate-limit windows on PostgreSQL.
//!
//! The SQLite statements, except where instances race: the claim locks its candidate row with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different runs instead of queueing on one,
//! and `seq` comes from the identity column. Idempotency keys and schedule ticks rely on unique
//! constraints plus `ON CONFLICT DO NOTHING`: a conflicting insert waits for the other
//! transaction, and the READ COMMITTED select that follows sees its committed row.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::store::{
    CancelRun, InsertRun, PageRequest, RunRecord, RunRepo, StepRecord, StoreError, StoreResult,
};

const COLUMNS: &str = "id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, status, \
                       trigger_type, input_json, error, next_step, wake_at, idempotency_key, request_hash, \
                       created_at, started_at, completed_at, \
                       (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = runs.id AND s.status = 'completed') \
                       AS steps_completed";

fn json_column(row: &PgRow, name: &str) -> StoreResult<serde_json::Value> {
    let text: String = row.try_get(name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

fn run_from_row(row: &PgRow) -> StoreResult<RunRecord> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        workflow_id: row.try_get("workflow_id")?,
        workflow_name: row.try_get("workflow_name")?,
        workflow_version: row.try_get("workflow_version")?,
        definition: json_column(row, "definition_json")?,
        status: row.try_get("status")?,
        trigger_type: row.try_get("trigger_type")?,
        input: json_column(row, "input_json")?,
        error: row.try_get("error")?,
        next_step: row.try_get("next_step")?,
        wake_at: row.try_get("wake_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_hash: row.try_get("request_hash")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        steps_completed: row.try_get("steps_completed")?,
    })
}

fn step_from_row(row: &PgRow) -> StoreResult<StepRecord> {
    let output: Option<String> = row.try_get("output_json")?;
    Ok(StepRecord {
        idx: row.try_get("idx")?,
        step_id: row.try_get("step_id")?,
        step_type: row.try_get("step_type")?,
        status: row.try_get("status")?,
        output: output
            .map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("output_json: {e}"))))
            .transpose()?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// Inserts a queued run unless its idempotency key is taken (then nothing is inserted).
async fn insert_run_row(
    conn: &mut sqlx::PgConnection,
    run: &RunRecord,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                           status, trigger_type, input_json, next_step, wake_at, idempotency_key, \
                           request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, 0, $9, $10, $11, $12) \
         ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING",
    )
    .bind(&run.id)
    .bind(&run.workspace_id)
    .bind(&run.workflow_id)
    .bind(&run.workflow_name)
    .bind(run.workflow_version)
    .bind(run.definition.to_string())
    .bind(&run.trigger_type)
    .bind(run.input.to_string())
    .bind(run.wake_at)
    .bind(&run.idempotency_key)
    .bind(&run.request_hash)
    .bind(run.created_at)
    .execute(conn)
    .await
}

#[async_trait]
impl RunRepo for PgStore {
    async fn insert_run(&self, run: &RunRecord, key_ttl_ms: i64) -> StoreResult<InsertRun> {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &run.idempotency_key {
            // An expired key no longer binds: release it so the unique index admits the new run.
            sqlx::query(
                "UPDATE runs SET idempotency_key = NULL \
                 WHERE workspace_id = $1 AND workflow_id = $2 AND idempotency_key = $3 AND created_at < $4",
            )
            .bind(&run.workspace_id)
            .bind(&run.workflow_id)
            .bind(key)
            .bind(run.created_at - key_ttl_ms)
            .execute(&mut *tx)
            .await?;
        }
        let done = insert_run_row(&mut tx, run).await?;
        let outcome = if done.rows_affected() == 1 {
            InsertRun::Inserted
        } else {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND workflow_id = $2 AND idempotency_key = $3"
            ))
            .bind(&run.workspace_id)
            .bind(&run.workflow_id)
            .bind(&run.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            InsertRun::Existing(Box::new(run_from_row(&row)?))
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn get_run(&self, workspace_id: &str, id: &str) -> StoreResult<Option<RunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(
        &self,
        workspace_id: &str,
        workflow_id: Option<&str>,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<RunRecord>, i64)> {
        let filter = "workspace_id = $1 AND ($2 IS NULL OR workflow_id = $2) AND ($3 IS NULL OR status = $3)";
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM runs WHERE {filter} ORDER BY seq DESC LIMIT $4 OFFSET $5"
        ))
        .bind(workspace_id)
        .bind(workflow_id)
        .bind(status)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM runs WHERE {filter}"))
            .bind(workspace_id)
            .bind(workflow_id)
            .bind(status)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(run_from_row).collect::<StoreResult<_>>()?, total))
    }

    async fn run_steps(&self, run_id: &str) -> StoreResult<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT idx, step_id, step_type, status, output_json, error, attempts, started_at, completed_at \
             FROM run_steps WHERE run_id = $1 ORDER BY idx",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(step_from_row).collect()
    }

    async fn claim_run(&self, owner: &str, now_ms: i64, lease_ms: i64) -> StoreResult<Option<RunRecord>> {
        let row = sqlx::query(&format!(
            "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
                             started_at = COALESCE(started_at, $3) \
             WHERE id = (SELECT id FROM runs \
                         WHERE status IN ('queued', 'running') AND wake_at <= $3 \
                           AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                         ORDER BY wake_at, seq LIMIT 1 \
                         FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}"
        ))
        .bind(owner)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn renew_lease(&self, run_id: &str, owner: &str, until_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn save_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        next_step: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let guard = sqlx::query(
            "UPDATE runs SET next_step = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(next_step)
        .execute(&mut *tx)
        .await?;
        if guard.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO run_steps (run_id, idx, step_id, step_type, status, output_json, error, attempts, \
                                    started_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (run_id, idx) DO UPDATE SET status = $5, output_json = $6, error = $7, \
                 attempts = $8, started_at = COALESCE(run_steps.started_at, $9), completed_at = $10",
        )
        .bind(run_id)
        .bind(step.idx)
        .bind(&step.step_id)
        .bind(&step.step_type)
        .bind(&step.status)
        .bind(step.output.as_ref().map(|o| o.to_string()))
        .bind(&step.error)
        .bind(step.attempts)
        .bind(step.started_at)
        .bind(step.completed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn park_run(&self, run_id: &str, owner: &str, wake_at: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs SET wake_at = $3, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(wake_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: &str,
        error: Option<&str>,
        at_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE runs SET status = $3, error = $4, completed_at = $5, lease_owner = NULL, \
                             lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(status)
        .bind(error)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn cancel_run(&self, workspace_id: &str, id: &str, at_ms: i64) -> StoreResult<CancelRun> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE runs SET status = 'cancelled', completed_at = $3, lease_owner = NULL, lease_expires_at = NULL \
             WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'running')",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?;
        let outcome = if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE run_steps SET status = 'cancelled', completed_at = $2 WHERE run_id = $1 AND status = 'running'",
            )
            .bind(id)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
            CancelRun::Cancelled
        } else {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM runs WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            status.map_or(CancelRun::NotFound, CancelRun::AlreadyFinished)
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn insert_scheduled_run(&self, run: &RunRecord, tick_at: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let fired = sqlx::query(
            "INSERT INTO schedule_firings (workflow_id, tick_at, run_id, fired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workflow_id, tick_at) DO NOTHING",
        )
        .bind(&run.workflow_id)
        .bind(tick_at)
        .bind(&run.id)
        .bind(run.created_at)
        .execute(&mut *tx)
        .await?;
        if fired.rows_affected() != 1 {
            return Ok(false);
        }
        insert_run_row(&mut tx, run).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn last_schedule_tick(&self, workflow_id: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(tick_at) FROM schedule_firings WHERE workflow_id = $1")
                .bind(workflow_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn hit_rate_window(&self, bucket: &str, window_start_ms: i64) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        let hits: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1 \
             RETURNING hits",
        )
        .bind(bucket)
        .bind(window_start_ms)
        .fetch_one(&mut *tx)
        .await?;
        // Old windows of this caller are never read again.
        sqlx::query("DELETE FROM rate_limit_windows WHERE bucket = $1 AND window_start < $2")
            .bind(bucket)
            .bind(window_start_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(hits)
    }
}
