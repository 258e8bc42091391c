//! The run queue as a whole, read at scrape time for the queue gauges.
//!
//! The condition is the claim's (`runs.rs`), and `status IN ('queued', 'running')` is the
//! predicate of the partial index `runs_claimable_idx (wake_at)`, so both backends answer from a
//! range of that index: the due runs plus the runs in flight, never the finished history.

use async_trait::async_trait;

use super::{on_db, SqlStore};
use crate::store::{DueRuns, QueueRepo, StoreResult};

#[async_trait]
impl QueueRepo for SqlStore {
    async fn due_runs(&self, now_ms: i64) -> StoreResult<DueRuns> {
        let (count, oldest_wake_at): (i64, Option<i64>) = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(wake_at) FROM runs \
                 WHERE status IN ('queued', 'running') AND wake_at <= $1 \
                   AND (lease_expires_at IS NULL OR lease_expires_at < $1)",
            )
            .bind(now_ms)
            .fetch_one(pool)
            .await
        })?;
        Ok(DueRuns {
            count,
            oldest_wake_at,
        })
    }
}
