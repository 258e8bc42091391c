//! Runs, step results, leases, schedule firings and rate-limit windows.
//!
//! Idempotency keys and schedule ticks rely on unique constraints plus `ON CONFLICT DO NOTHING`:
//! on PostgreSQL a conflicting insert waits for the other transaction, and the READ COMMITTED
//! select that follows sees its committed row; SQLite has one writer at a time anyway.

use async_trait::async_trait;

use super::rows::{run_from_row, step_from_row};
use super::{on_db, SqlStore};
use crate::store::{CancelRun, InsertRun, PageRequest, RunRecord, RunRepo, StepRecord, StoreResult};

const COLUMNS: &str = "id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, status, \
                       trigger_type, input_json, error, next_step, wake_at, idempotency_key, request_hash, \
                       created_at, started_at, completed_at, \
                       (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = runs.id AND s.status = 'completed') \
                       AS steps_completed";

/// The insert of a queued run (nothing is inserted when its idempotency key is taken). `seq`:
/// SQLite serializes writers, so `MAX(seq) + 1` is strictly increasing; PostgreSQL's identity
/// column hands concurrent instances distinct values.
fn insert_run_sql(pg: bool) -> &'static str {
    if pg {
        "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                           status, trigger_type, input_json, next_step, wake_at, idempotency_key, \
                           request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, 0, $9, $10, $11, $12) \
         ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING"
    } else {
        "INSERT INTO runs (id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
                           status, trigger_type, input_json, next_step, wake_at, idempotency_key, \
                           request_hash, created_at, seq) \
         SELECT $1, $2, $3, $4, $5, $6, 'queued', $7, $8, 0, $9, $10, $11, $12, \
                COALESCE((SELECT MAX(seq) FROM runs WHERE workspace_id = $2), 0) + 1 \
         WHERE true \
         ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING"
    }
}

macro_rules! insert_run_row {
    ($pg:expr, $run:expr) => {
        sqlx::query(insert_run_sql($pg))
            .bind(&$run.id)
            .bind(&$run.workspace_id)
            .bind(&$run.workflow_id)
            .bind(&$run.workflow_name)
            .bind($run.workflow_version)
            .bind($run.definition.to_string())
            .bind(&$run.trigger_type)
            .bind($run.input.to_string())
            .bind($run.wake_at)
            .bind(&$run.idempotency_key)
            .bind(&$run.request_hash)
            .bind($run.created_at)
    };
}

#[async_trait]
impl RunRepo for SqlStore {
    async fn insert_run(&self, run: &RunRecord, key_ttl_ms: i64) -> StoreResult<InsertRun> {
        let existing = format!(
            "SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND workflow_id = $2 AND idempotency_key = $3"
        );
        on_db!(self, |pool, pg| {
            let mut tx = pool.begin().await?;
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
            let done = insert_run_row!(pg, run).execute(&mut *tx).await?;
            let outcome = if done.rows_affected() == 1 {
                InsertRun::Inserted
            } else {
                let row = sqlx::query(&existing)
                    .bind(&run.workspace_id)
                    .bind(&run.workflow_id)
                    .bind(&run.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
                InsertRun::Existing(Box::new(run_from_row(&row)?))
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    async fn get_run(&self, workspace_id: &str, id: &str) -> StoreResult<Option<RunRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2");
        on_db!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(workspace_id)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    async fn list_runs(
        &self,
        workspace_id: &str,
        workflow_id: Option<&str>,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<RunRecord>, i64)> {
        let filter = "workspace_id = $1 AND ($2 IS NULL OR workflow_id = $2) AND ($3 IS NULL OR status = $3)";
        let list = format!("SELECT {COLUMNS} FROM runs WHERE {filter} ORDER BY seq DESC LIMIT $4 OFFSET $5");
        let count = format!("SELECT COUNT(*) FROM runs WHERE {filter}");
        on_db!(self, |pool| {
            let rows = sqlx::query(&list)
                .bind(workspace_id)
                .bind(workflow_id)
                .bind(status)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(&count)
                .bind(workspace_id)
                .bind(workflow_id)
                .bind(status)
                .fetch_one(pool)
                .await?;
            Ok((rows.iter().map(run_from_row).collect::<StoreResult<_>>()?, total))
        })
    }

    async fn run_steps(&self, run_id: &str) -> StoreResult<Vec<StepRecord>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT idx, step_id, step_type, status, output_json, error, attempts, started_at, completed_at \
                 FROM run_steps WHERE run_id = $1 ORDER BY idx",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(step_from_row).collect()
        })
    }

    async fn claim_run(&self, owner: &str, now_ms: i64, lease_ms: i64) -> StoreResult<Option<RunRecord>> {
        // SQLite serializes writers, so the one UPDATE is atomic; on PostgreSQL the candidate row is
        // locked with SKIP LOCKED, so concurrent claimers take different runs instead of queueing.
        let lock = |pg: bool| if pg { "FOR UPDATE SKIP LOCKED" } else { "" };
        on_db!(self, |pool, pg| {
            let sql = format!(
                "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
                                 started_at = COALESCE(started_at, $3) \
                 WHERE id = (SELECT id FROM runs \
                             WHERE status IN ('queued', 'running') AND wake_at <= $3 \
                               AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                             ORDER BY wake_at, seq LIMIT 1 {}) \
                 RETURNING {COLUMNS}",
                lock(pg)
            );
            let row = sqlx::query(&sql)
                .bind(owner)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    async fn renew_lease(&self, run_id: &str, owner: &str, until_ms: i64) -> StoreResult<bool> {
        let done = on_db!(self, |pool| {
            sqlx::query(
            "UPDATE runs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(until_ms)
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(done == 1)
    }

    async fn save_step(
        &self,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
        next_step: i64,
    ) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
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
        })
    }

    async fn park_run(&self, run_id: &str, owner: &str, wake_at: i64) -> StoreResult<bool> {
        let done = on_db!(self, |pool| sqlx::query(
            "UPDATE runs SET wake_at = $3, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(wake_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    async fn finish_run(
        &self,
        run_id: &str,
        owner: &str,
        status: &str,
        error: Option<&str>,
        at_ms: i64,
    ) -> StoreResult<bool> {
        let done = on_db!(self, |pool| sqlx::query(
            "UPDATE runs SET status = $3, error = $4, completed_at = $5, lease_owner = NULL, \
                             lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(status)
        .bind(error)
        .bind(at_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    async fn cancel_run(&self, workspace_id: &str, id: &str, at_ms: i64) -> StoreResult<CancelRun> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
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
        })
    }

    async fn insert_scheduled_run(&self, run: &RunRecord, tick_at: i64) -> StoreResult<bool> {
        on_db!(self, |pool, pg| {
            let mut tx = pool.begin().await?;
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
            insert_run_row!(pg, run).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn last_schedule_tick(&self, workflow_id: &str) -> StoreResult<Option<i64>> {
        let tick: Option<i64> = on_db!(self, |pool| sqlx::query_scalar(
            "SELECT MAX(tick_at) FROM schedule_firings WHERE workflow_id = $1"
        )
        .bind(workflow_id)
        .fetch_one(pool)
        .await?);
        Ok(tick)
    }

    async fn hit_rate_window(&self, bucket: &str, window_start_ms: i64) -> StoreResult<i64> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
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
        })
    }
}
