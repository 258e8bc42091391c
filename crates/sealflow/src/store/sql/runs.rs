//! Runs, step results, leases, schedule firings and rate-limit windows.
//!
//! Idempotency keys and schedule ticks rely on unique constraints plus `ON CONFLICT DO NOTHING`:
//! on PostgreSQL a conflicting insert waits for the other transaction, and the READ COMMITTED
//! select that follows sees its committed row; SQLite has one writer at a time anyway.

use async_trait::async_trait;

use super::rows::{run_from_row, step_from_row, SqlRow};
use super::{on_db, write_db, SqlStore};
use crate::store::{
    AuditEvent, CancelRun, InsertRun, PageRequest, RateHit, RunEnd, RunRecord, RunRepo, StepRecord,
    StoreResult,
};

const COLUMNS: &str = "id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, status, \
                       trigger_type, input_json, error, next_step, wake_at, idempotency_key, request_hash, \
                       created_at, started_at, completed_at, \
                       (SELECT COUNT(*) FROM run_steps s WHERE s.run_id = runs.id AND s.status = 'completed') \
                       AS steps_completed";

/// The columns a run's insert sets, and what it sets them to (`$1`…`$17`, see [`insert_run_row!`]).
const INSERT_RUN_COLUMNS: &str =
    "id, workspace_id, workflow_id, workflow_name, workflow_version, definition_json, \
     status, trigger_type, input_json, next_step, wake_at, idempotency_key, request_hash, created_at, \
     lease_owner, lease_expires_at, started_at, claims";
const INSERT_RUN_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $13, $7, $8, 0, $9, $10, $11, $12, $14, $15, $16, $17";

/// The insert of a run, queued or already claimed (nothing is inserted when its idempotency key
/// is taken). `seq`: SQLite serializes writers, so `MAX(seq) + 1` is strictly increasing;
/// PostgreSQL's identity column hands concurrent instances distinct values.
fn insert_run_sql(pg: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [sqlite, postgres] = SQL.get_or_init(|| {
        [
            format!(
                "INSERT INTO runs ({INSERT_RUN_COLUMNS}, seq) \
                 SELECT {INSERT_RUN_VALUES}, COALESCE((SELECT MAX(seq) FROM runs WHERE workspace_id = $2), 0) + 1 \
                 WHERE true \
                 ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING"
            ),
            format!(
                "INSERT INTO runs ({INSERT_RUN_COLUMNS}) VALUES ({INSERT_RUN_VALUES}) \
                 ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING"
            ),
        ]
    });
    if pg {
        postgres
    } else {
        sqlite
    }
}

/// The rate-limit hit ([`count_hit!`]'s upsert; `$18` bucket, `$19` window start) and, within
/// the limit (`$20`), the run's insert, as one statement text answering one row: the window's
/// hits and the runs inserted. The writer sends every job's statements in turn and each waits
/// for its answer (a round trip to PostgreSQL, a hand-off to SQLite's connection thread and
/// back), so these waits are what a batch, and every caller in it, waits on: at c=16 a SQLite
/// batch spent 2.2 of its 2.6 ms in them and 0.4 in its fsync. PostgreSQL takes both in one
/// data-modifying `WITH`. SQLite has none, but runs the statements of one text in one hand-off,
/// binding the same numbered parameters in each, and its `changes()` is what the statement
/// before it changed (not counting what triggers did).
fn counted_insert_sql(pg: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [sqlite, postgres] = SQL.get_or_init(|| {
        const HIT: &str = "INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($18, $19, 1) \
                           ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1";
        const HITS: &str = "SELECT hits FROM rate_limit_windows WHERE bucket = $18 AND window_start = $19";
        let within = insert_run_sql(false).replace(" WHERE true ", &format!(" WHERE ({HITS}) <= $20 "));
        [
            format!("{HIT}; {within}; SELECT hits, changes() FROM rate_limit_windows WHERE bucket = $18 AND window_start = $19"),
            format!(
                "WITH hit AS ({HIT} RETURNING hits), \
                 inserted AS (\
                     INSERT INTO runs ({INSERT_RUN_COLUMNS}) SELECT {INSERT_RUN_VALUES} FROM hit WHERE hit.hits <= $20 \
                     ON CONFLICT (workspace_id, workflow_id, idempotency_key) DO NOTHING RETURNING 1) \
                 SELECT hits, (SELECT COUNT(*) FROM inserted) FROM hit"
            ),
        ]
    });
    if pg {
        postgres
    } else {
        sqlite
    }
}

/// Binds a run to `$sql` ([`insert_run_sql`] or [`counted_insert_sql`]); `$claim` is
/// `Option<(String owner, i64 lease_until)>`. Evaluates to the query, for more binds.
macro_rules! insert_run_row {
    // First: `sql = …` would also parse as the first arm's `$pg` (an assignment expression).
    (sql = $sql:expr, $run:expr, $claim:expr) => {
        sqlx::query($sql)
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
            .bind(if $claim.is_some() { "running" } else { "queued" })
            .bind($claim.as_ref().map(|c: &(String, i64)| c.0.clone()))
            .bind($claim.as_ref().map(|c: &(String, i64)| c.1))
            .bind($claim.as_ref().map(|_| $run.created_at))
            .bind(i64::from($claim.is_some()))
    };
    ($pg:expr, $run:expr, $claim:expr) => {
        insert_run_row!(sql = insert_run_sql($pg), $run, $claim)
    };
}

/// Counts one hit in `$bucket`'s window starting at `$window_start` on `$conn` (inside a write
/// job) and evaluates to the window's hits so far.
macro_rules! count_hit {
    ($conn:expr, $bucket:expr, $window_start:expr) => {{
        let hits: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1 \
             RETURNING hits",
        )
        .bind($bucket)
        .bind($window_start)
        .fetch_one(&mut *$conn)
        .await?;
        if hits == 1 {
            drop_older_windows!($conn, $bucket, $window_start);
        }
        hits
    }};
}

/// After the first hit of a window: `$bucket`'s older windows are never read again.
macro_rules! drop_older_windows {
    ($conn:expr, $bucket:expr, $window_start:expr) => {
        sqlx::query("DELETE FROM rate_limit_windows WHERE bucket = $1 AND window_start < $2")
            .bind($bucket)
            .bind($window_start)
            .execute(&mut *$conn)
            .await?;
    };
}

/// Announces a run's end to other instances (PostgreSQL: queued in the batch, sent by one
/// `NOTIFY` statement before the commit, delivered when it lands). The payload is the run id,
/// then a space and the lease owner when a worker ended the run: that worker's instance
/// announces the end in process, with the committed record, and skips its own notification
/// (see `engine::mod`). The end is counted for the run list's `total` by the triggers of
/// `0012_run_counts.sql`.
macro_rules! notify_ended {
    ($pg:expr, $batch:ident, $payload:expr) => {
        if $pg {
            $batch.notices.push($payload);
        }
    };
}

/// The page query and the exact-total query of `list_runs`, for the filters given (bound in
/// order: workspace, then workflow and status when given, then limit and offset for the page).
pub(super) fn list_sql(by_workflow: bool, by_status: bool) -> (String, String) {
    // Only the filters given, so the planner can use `runs_workflow_seq_idx` or
    // `runs_status_seq_idx` (an `$n IS NULL OR …` filter hides them from it). The page's
    // first `seq` is found by skipping `offset` entries of that index alone (no row is read
    // for a skipped one), then one page of rows is read from there.
    let mut filter = String::from("workspace_id = $1");
    let mut n = 1;
    if by_workflow {
        n += 1;
        filter.push_str(&format!(" AND workflow_id = ${n}"));
    }
    if by_status {
        n += 1;
        filter.push_str(&format!(" AND status = ${n}"));
    }
    let (limit, offset) = (n + 1, n + 2);
    let list = format!(
        "SELECT {COLUMNS} FROM runs WHERE {filter} \
           AND seq <= (SELECT seq FROM runs WHERE {filter} ORDER BY seq DESC LIMIT 1 OFFSET ${offset}) \
         ORDER BY seq DESC LIMIT ${limit}"
    );
    // The exact total without walking the history: the finished runs are counted as they
    // end, by triggers (`run_counts`, see `0012_run_counts.sql`), the unfinished ones live
    // from `runs_active_idx`, a range of the runs in flight. One statement, so both halves
    // read one snapshot; a status filter simply finds nothing on the other half.
    // PostgreSQL's SUM of a BIGINT is NUMERIC, hence the cast.
    let count = format!(
        "SELECT CAST((SELECT COALESCE(SUM(n), 0) FROM run_counts WHERE {filter}) AS BIGINT) \
            + (SELECT COUNT(*) FROM runs WHERE {filter} AND status IN ('queued', 'running'))"
    );
    (list, count)
}

/// One run by workspace and id.
pub(super) fn get_run_sql() -> String {
    format!("SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2")
}

/// The claim of the next due run: `$1` owner, `$2` lease end, `$3` now. SQLite serializes
/// writers, so the one UPDATE is atomic; on PostgreSQL the candidate row is locked with SKIP
/// LOCKED, so concurrent claimers take different runs.
pub(super) fn claim_sql(pg: bool) -> String {
    format!(
        "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
                         started_at = COALESCE(started_at, $3), claims = claims + 1 \
         WHERE id = (SELECT id FROM runs \
                     WHERE status IN ('queued', 'running') AND wake_at <= $3 \
                       AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
                     ORDER BY wake_at, seq LIMIT 1 {}) \
         RETURNING {COLUMNS}, claims",
        if pg { "FOR UPDATE SKIP LOCKED" } else { "" }
    )
}

/// A run's step results, in order.
pub(super) const RUN_STEPS_SQL: &str =
    "SELECT idx, step_id, step_type, status, output_json, error, attempts, started_at, completed_at \
     FROM run_steps WHERE run_id = $1 ORDER BY idx";

/// The guard of a worker's write (its lease still holds, the run is still running) and the run's
/// new state, in one statement: `$1` run, `$2` owner, `$3` next step (< 0: unchanged), `$4`
/// whether a step is recorded (progress resets the claim count), `$5`…`$7` the end (status,
/// error, time) or NULLs. Recording any step counts as progress.
const GUARD_SQL: &str = "UPDATE runs SET next_step = CASE WHEN $3 < 0 THEN next_step ELSE $3 END, \
                                 claims = CASE WHEN $4 THEN 0 ELSE claims END, \
                                 status = COALESCE($5, status), \
                                 error = CASE WHEN $5 IS NULL THEN error ELSE $6 END, \
                                 completed_at = COALESCE($7, completed_at), \
                                 lease_owner = CASE WHEN $5 IS NULL THEN lease_owner ELSE NULL END, \
                                 lease_expires_at = CASE WHEN $5 IS NULL THEN lease_expires_at ELSE NULL END \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'";

/// A step's result (`$1` run, then [`bind_step!`]'s nine values as `$2`…`$10`), replacing what a
/// running step or an earlier attempt left.
const STEP_SQL: &str =
    "INSERT INTO run_steps (run_id, idx, step_id, step_type, status, output_json, error, attempts, \
                                              started_at, completed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (run_id, idx) DO UPDATE SET status = $5, output_json = $6, error = $7, \
         attempts = $8, started_at = COALESCE(run_steps.started_at, $9), completed_at = $10";

/// [`GUARD_SQL`] and, if it matched, one [`STEP_SQL`] (its values as `$8`…`$16`) as one
/// statement text (why: see [`counted_insert_sql`]); it changed rows if and only if the guard
/// held. PostgreSQL: a data-modifying `WITH`; SQLite: two statements, the insert's condition the
/// guard's `changes()`.
fn guard_and_step_sql(pg: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [sqlite, postgres] = SQL.get_or_init(|| {
        let insert = STEP_SQL
            .split_once(" VALUES ")
            .map(|(insert, _)| insert)
            .expect("STEP_SQL has VALUES");
        let values = "$8, $9, $10, $11, $12, $13, $14, $15, $16";
        let upsert = "ON CONFLICT (run_id, idx) DO UPDATE SET status = $11, output_json = $12, error = $13, \
                      attempts = $14, started_at = COALESCE(run_steps.started_at, $15), completed_at = $16";
        [
            format!("{GUARD_SQL}; {insert} SELECT $1, {values} WHERE changes() = 1 {upsert}"),
            format!(
                "WITH guard AS ({GUARD_SQL} RETURNING id) {insert} SELECT id, {values} FROM guard {upsert}"
            ),
        ]
    });
    if pg {
        postgres
    } else {
        sqlite
    }
}

/// Binds [`GUARD_SQL`]'s seven values to `$query`; `$end` is `Option<(status, error, at_ms)>`.
macro_rules! bind_guard {
    ($query:expr, $run_id:expr, $owner:expr, $next_step:expr, $steps:expr, $end:expr) => {
        $query
            .bind(&$run_id)
            .bind(&$owner)
            .bind($next_step)
            .bind(!$steps.is_empty())
            .bind($end.as_ref().map(|e: &(String, Option<String>, i64)| e.0.clone()))
            .bind($end.as_ref().and_then(|e| e.1.clone()))
            .bind($end.as_ref().map(|e| e.2))
    };
}

/// Binds a step's nine values (index to completion time) to `$query`.
macro_rules! bind_step {
    ($query:expr, $step:expr) => {
        $query
            .bind($step.idx)
            .bind(&$step.step_id)
            .bind(&$step.step_type)
            .bind(&$step.status)
            .bind($step.output.as_ref().map(|o| o.to_string()))
            .bind(&$step.error)
            .bind($step.attempts)
            .bind($step.started_at)
            .bind($step.completed_at)
    };
}

#[async_trait]
impl RunRepo for SqlStore {
    async fn insert_counted_run(
        &self,
        run: &RunRecord,
        key_ttl_ms: i64,
        claim: Option<(&str, i64)>,
        rate: Option<RateHit<'_>>,
        uses: Vec<AuditEvent>,
    ) -> StoreResult<(Option<InsertRun>, Option<i64>)> {
        let existing = format!(
            "SELECT {COLUMNS} FROM runs WHERE workspace_id = $1 AND workflow_id = $2 AND idempotency_key = $3"
        );
        let run = run.clone();
        let claim = claim.map(|(owner, until)| (owner.to_owned(), until));
        let rate = rate.map(|r| (r.bucket.to_owned(), r.window_start, r.limit));
        let order = rate.as_ref().map(|r| r.0.clone());
        write_db!(self, order = order, |conn, pg, batch| {
            if let Some(key) = &run.idempotency_key {
                // An expired key no longer binds: release it so the unique index admits the new
                // run. (Before the rate hit: releasing an expired key changes no answer.)
                sqlx::query(
                    "UPDATE runs SET idempotency_key = NULL \
                     WHERE workspace_id = $1 AND workflow_id = $2 AND idempotency_key = $3 AND created_at < $4",
                )
                .bind(&run.workspace_id)
                .bind(&run.workflow_id)
                .bind(key)
                .bind(run.created_at - key_ttl_ms)
                .execute(&mut *conn)
                .await?;
            }
            let (inserted, hits) = match &rate {
                Some((bucket, window_start, limit)) => {
                    use sqlx::Row;
                    let row = insert_run_row!(sql = counted_insert_sql(pg), run, claim)
                        .bind(bucket)
                        .bind(*window_start)
                        .bind(*limit)
                        .fetch_one(&mut *conn)
                        .await?;
                    let (hits, inserted): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                    if hits == 1 {
                        drop_older_windows!(conn, bucket, *window_start);
                    }
                    if hits > *limit {
                        return Ok((None, Some(hits)));
                    }
                    (inserted == 1, Some(hits))
                }
                None => {
                    let done = insert_run_row!(pg, run, claim).execute(&mut *conn).await?;
                    (done.rows_affected() == 1, None)
                }
            };
            if inserted {
                batch.events.extend(uses);
                Ok((Some(InsertRun::Inserted), hits))
            } else {
                let row = sqlx::query(&existing)
                    .bind(&run.workspace_id)
                    .bind(&run.workflow_id)
                    .bind(&run.idempotency_key)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok((Some(InsertRun::Existing(Box::new(run_from_row(&row)?))), hits))
            }
        })
    }

    async fn get_run(&self, workspace_id: &str, id: &str) -> StoreResult<Option<RunRecord>> {
        let sql = get_run_sql();
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
        let (list, count) = list_sql(workflow_id.is_some(), status.is_some());
        on_db!(self, |pool| {
            let mut rows = sqlx::query(&list).bind(workspace_id);
            let mut total = sqlx::query_scalar(&count).bind(workspace_id);
            if let Some(w) = workflow_id {
                rows = rows.bind(w);
                total = total.bind(w);
            }
            if let Some(s) = status {
                rows = rows.bind(s);
                total = total.bind(s);
            }
            let rows = rows.bind(page.limit).bind(page.offset).fetch_all(pool).await?;
            let total: i64 = total.fetch_one(pool).await?;
            Ok((rows.iter().map(run_from_row).collect::<StoreResult<_>>()?, total))
        })
    }

    async fn run_steps(&self, run_id: &str) -> StoreResult<Vec<StepRecord>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(RUN_STEPS_SQL).bind(run_id).fetch_all(pool).await?;
            rows.iter().map(step_from_row).collect()
        })
    }

    async fn claim_run(&self, owner: &str, now_ms: i64, lease_ms: i64) -> StoreResult<Option<RunRecord>> {
        let owner = owner.to_owned();
        let max_attempts = self.options.max_run_attempts;
        write_db!(self, |conn, pg, batch| {
            let sql = claim_sql(pg);
            let claimed = loop {
                let row = sqlx::query(&sql)
                    .bind(&owner)
                    .bind(now_ms + lease_ms)
                    .bind(now_ms)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else { break None };
                let claims: i64 = row.col("claims")?;
                let run = run_from_row(&row)?;
                if claims <= max_attempts {
                    break Some(run);
                }
                // Every earlier claim ended without recording a step: the run is what kills its
                // worker (or the worker's machine), so running it again would only loop.
                let error = format!(
                    "the run was started {} times and its worker stopped each time before a step \
                     result was recorded; it is failed instead of being retried (limit: {max_attempts} \
                     attempts, SEALFLOW_MAX_RUN_ATTEMPTS)",
                    claims - 1
                );
                sqlx::query(
                    "UPDATE runs SET status = 'failed', error = $2, completed_at = $3, lease_owner = NULL, \
                                     lease_expires_at = NULL WHERE id = $1",
                )
                .bind(&run.id)
                .bind(&error)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "UPDATE run_steps SET status = 'failed', error = $2, completed_at = $3 \
                     WHERE run_id = $1 AND status = 'running'",
                )
                .bind(&run.id)
                .bind(&error)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
                notify_ended!(pg, batch, run.id.clone());
            };
            Ok(claimed)
        })
    }

    async fn renew_lease(&self, run_id: &str, owner: &str, until_ms: i64) -> StoreResult<bool> {
        let (run_id, owner) = (run_id.to_owned(), owner.to_owned());
        write_db!(self, |conn, _pg| {
            let done = sqlx::query(
                "UPDATE runs SET lease_expires_at = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(&run_id)
            .bind(&owner)
            .bind(until_ms)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn save_steps_audited(
        &self,
        run_id: &str,
        owner: &str,
        steps: &[StepRecord],
        next_step: i64,
        end: Option<RunEnd<'_>>,
        audit: Vec<AuditEvent>,
    ) -> StoreResult<bool> {
        let (run_id, owner, steps) = (run_id.to_owned(), owner.to_owned(), steps.to_vec());
        let end = end.map(|e| (e.status.to_owned(), e.error.map(str::to_owned), e.at_ms));
        write_db!(self, |conn, pg, batch| {
            if !audit.is_empty() {
                batch.events.extend(audit);
            }
            let mut rest = steps.iter();
            let held = match rest.next() {
                // The guard and the first step in one statement text; the step is stored only
                // if the guard's update matched.
                Some(step) => {
                    let both = bind_guard!(
                        sqlx::query(guard_and_step_sql(pg)),
                        run_id,
                        owner,
                        next_step,
                        steps,
                        end
                    );
                    bind_step!(both, step).execute(&mut *conn).await?.rows_affected() >= 1
                }
                None => {
                    let guard = bind_guard!(sqlx::query(GUARD_SQL), run_id, owner, next_step, steps, end);
                    guard.execute(&mut *conn).await?.rows_affected() == 1
                }
            };
            if !held {
                return Ok(false);
            }
            for step in rest {
                bind_step!(sqlx::query(STEP_SQL).bind(&run_id), step)
                    .execute(&mut *conn)
                    .await?;
            }
            if end.is_some() {
                notify_ended!(pg, batch, format!("{run_id} {owner}"));
            }
            Ok(true)
        })
    }

    async fn park_run(&self, run_id: &str, owner: &str, wake_at: i64) -> StoreResult<bool> {
        let (run_id, owner) = (run_id.to_owned(), owner.to_owned());
        write_db!(self, |conn, _pg| {
            let done = sqlx::query(
                "UPDATE runs SET wake_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(&run_id)
            .bind(&owner)
            .bind(wake_at)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn cancel_run(&self, workspace_id: &str, id: &str, at_ms: i64) -> StoreResult<CancelRun> {
        let (workspace_id, id) = (workspace_id.to_owned(), id.to_owned());
        write_db!(self, |conn, pg, batch| {
            let done = sqlx::query(
                "UPDATE runs SET status = 'cancelled', completed_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'running')",
            )
            .bind(&workspace_id)
            .bind(&id)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                sqlx::query(
                    "UPDATE run_steps SET status = 'cancelled', completed_at = $2 WHERE run_id = $1 AND status = 'running'",
                )
                .bind(&id)
                .bind(at_ms)
                .execute(&mut *conn)
                .await?;
                notify_ended!(pg, batch, id.clone());
                Ok(CancelRun::Cancelled)
            } else {
                let status: Option<String> =
                    sqlx::query_scalar("SELECT status FROM runs WHERE workspace_id = $1 AND id = $2")
                        .bind(&workspace_id)
                        .bind(&id)
                        .fetch_optional(&mut *conn)
                        .await?;
                Ok(status.map_or(CancelRun::NotFound, CancelRun::AlreadyFinished))
            }
        })
    }

    async fn insert_scheduled_run(&self, run: &RunRecord, tick_at: i64) -> StoreResult<bool> {
        let run = run.clone();
        write_db!(self, |conn, pg| {
            let fired = sqlx::query(
                "INSERT INTO schedule_firings (workflow_id, tick_at, run_id, fired_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (workflow_id, tick_at) DO NOTHING",
            )
            .bind(&run.workflow_id)
            .bind(tick_at)
            .bind(&run.id)
            .bind(run.created_at)
            .execute(&mut *conn)
            .await?;
            if fired.rows_affected() != 1 {
                return Ok(false);
            }
            let claim: Option<(String, i64)> = None;
            insert_run_row!(pg, run, claim).execute(&mut *conn).await?;
            Ok(true)
        })
    }

    async fn last_schedule_tick(&self, workflow_id: &str) -> StoreResult<Option<i64>> {
        let tick: Option<i64> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(tick_at) FROM schedule_firings WHERE workflow_id = $1")
                .bind(workflow_id)
                .fetch_one(pool)
                .await?
        });
        Ok(tick)
    }

    async fn hit_rate_window(&self, bucket: &str, window_start_ms: i64) -> StoreResult<i64> {
        let bucket = bucket.to_owned();
        write_db!(self, order = Some(bucket.clone()), |conn, _pg, _batch| {
            Ok(count_hit!(conn, &bucket, window_start_ms))
        })
    }
}
