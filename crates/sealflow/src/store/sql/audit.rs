//! The audit trail, written once for both backends.
//!
//! A write that records audit entries leaves them in its writer batch ([`super::writer::Batch`]),
//! and the writer appends every job's entries just before the commit ([`append_entries!`]): each
//! chain's head row is read and moved once per batch, in the same transaction as the changes the
//! entries describe, so a change and its entry commit together or not at all. A use entry
//! appended on its own ([`AuditRepo::append_audit`], before a secret is sent) is a job with no
//! statements and shares the next batch's commit. The head is serialized per chain: on SQLite by
//! the single writer, on PostgreSQL by locking the head row `FOR UPDATE`, which also holds
//! across instances. Heads are locked in chain order and after every other row of the batch, so
//! two instances' batches cannot deadlock on them.

use async_trait::async_trait;

use super::rows::SqlRow;
use super::{on_db, write_db, SqlStore};
use crate::store::{
    AuditChain, AuditEntry, AuditEvent, AuditFilter, AuditRepo, PageRequest, StoreError, StoreResult,
    GENESIS_HASH,
};

/// Appends `$events` (a `Vec<AuditEvent>` or slice) to their chains on `$conn` inside an open
/// transaction, and moves each chain's head past them; `$pg` is the dialect flag. Each chain's
/// head is read (locked, on PostgreSQL) once, in chain order, its entries hashed in order and
/// stored by one statement per chunk (a statement is a round trip, or a hand-off to SQLite's
/// connection thread), and its head moved. The head's move rides with the last chunk (on
/// PostgreSQL in a data-modifying `WITH`, on SQLite as a second statement of the same text): one
/// wait fewer per batch on the writer.
/// Writer jobs do not call this: they leave their entries in the batch (see the module's
/// comment). Uses `?`.
macro_rules! append_entries {
    ($conn:ident, $pg:expr, $events:expr) => {{
        let given = &$events;
        let mut events: Vec<&$crate::store::AuditEvent> = given.iter().collect();
        // Heads are locked in chain order (a stable sort keeps each chain's events in order).
        events.sort_by(|a, b| a.chain.cmp(&b.chain));
        let mut events = events.into_iter().peekable();
        while let Some(first) = events.peek().copied() {
            let chain = first.chain.clone();
            let head = if $pg {
                "SELECT head_seq, head_hash FROM audit_chains WHERE chain = $1 FOR UPDATE"
            } else {
                "SELECT head_seq, head_hash FROM audit_chains WHERE chain = $1"
            };
            // The chain's first append creates its head; every later one only reads it.
            let found: Option<(i64, String)> = sqlx::query_as(head)
                .bind(&chain)
                .fetch_optional(&mut *$conn)
                .await?;
            let (mut seq, mut prev_hash) = match found {
                Some(head) => head,
                None => {
                    sqlx::query(
                        "INSERT INTO audit_chains (chain, head_seq, head_hash, checkpoint_seq, checkpoint_hash) \
                         VALUES ($1, 0, $2, 0, $2) ON CONFLICT (chain) DO NOTHING",
                    )
                    .bind(&chain)
                    .bind($crate::store::GENESIS_HASH)
                    .execute(&mut *$conn)
                    .await?;
                    sqlx::query_as(head).bind(&chain).fetch_one(&mut *$conn).await?
                }
            };
            let mut rows = Vec::new();
            while let Some(ev) = events.next_if(|e| e.chain == chain) {
                seq += 1;
                let hash = ev.hash(seq, &prev_hash);
                rows.push((ev, seq, std::mem::replace(&mut prev_hash, hash.clone()), hash));
            }
            let chunks: Vec<_> = rows.chunks($crate::store::sql::audit::INSERT_CHUNK).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut insert = sqlx::QueryBuilder::new("");
                if $pg && i + 1 == chunks.len() {
                    insert
                        .push("WITH moved AS (UPDATE audit_chains SET head_seq = ")
                        .push_bind(seq)
                        .push(", head_hash = ")
                        .push_bind(&prev_hash)
                        .push(" WHERE chain = ")
                        .push_bind(&chain)
                        .push(") ");
                }
                insert.push(
                    "INSERT INTO audit_entries (chain, seq, at, kind, actor, secret_name, secret_version, \
                                                run_id, step_id, host, outcome, subject, detail, prev_hash, hash) ",
                );
                insert.push_values(chunk.iter(), |mut row, (ev, seq, prev, hash)| {
                    row.push_bind(&ev.chain)
                        .push_bind(*seq)
                        .push_bind(ev.at)
                        .push_bind(&ev.kind)
                        .push_bind(&ev.actor)
                        .push_bind(&ev.secret_name)
                        .push_bind(ev.secret_version)
                        .push_bind(&ev.run_id)
                        .push_bind(&ev.step_id)
                        .push_bind(&ev.host)
                        .push_bind(&ev.outcome)
                        .push_bind(&ev.subject)
                        .push_bind(&ev.detail)
                        .push_bind(prev)
                        .push_bind(hash);
                });
                if !$pg && i + 1 == chunks.len() {
                    // SQLite has no data-modifying `WITH`, but runs both statements of one text
                    // in one hand-off to its connection thread.
                    insert
                        .push("; UPDATE audit_chains SET head_seq = ")
                        .push_bind(seq)
                        .push(", head_hash = ")
                        .push_bind(&prev_hash)
                        .push(" WHERE chain = ")
                        .push_bind(&chain);
                }
                insert.build().execute(&mut *$conn).await?;
            }
        }
    }};
}
pub(crate) use append_entries;

/// Entries per insert statement: 15 parameters each, well under either backend's limit on
/// parameters per statement (SQLite 32,766, PostgreSQL 65,535).
pub(crate) const INSERT_CHUNK: usize = 200;

const ENTRY_COLUMNS: &str =
    "chain, seq, at, kind, actor, secret_name, secret_version, run_id, step_id, host, \
                             outcome, subject, detail, prev_hash, hash";

fn entry_from_row(row: &impl SqlRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        seq: row.col("seq")?,
        prev_hash: row.col("prev_hash")?,
        hash: row.col("hash")?,
        event: AuditEvent {
            chain: row.col("chain")?,
            at: row.col("at")?,
            kind: row.col("kind")?,
            actor: row.col("actor")?,
            secret_name: row.col("secret_name")?,
            secret_version: row.col("secret_version")?,
            run_id: row.col("run_id")?,
            step_id: row.col("step_id")?,
            host: row.col("host")?,
            outcome: row.col("outcome")?,
            subject: row.col("subject")?,
            detail: row.col("detail")?,
        },
    })
}

#[async_trait]
impl AuditRepo for SqlStore {
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // A job with no statements: the entries join the next batch's, appended at its end.
        let count = events.len();
        write_db!(self, |_conn, _pg, batch| {
            batch.events.extend(events);
            Ok(())
        })
        .inspect_err(|e| {
            let cause = std::error::Error::source(e).map(ToString::to_string);
            tracing::error!(error = %e, cause = ?cause, count, "audit entries could not be written");
        })
    }

    async fn list_audit(
        &self,
        chain: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<AuditEntry>, i64)> {
        const WHERE: &str = "WHERE chain = $1 AND ($2 IS NULL OR secret_name = $2) \
                             AND ($3 IS NULL OR run_id = $3) AND ($4 IS NULL OR at >= $4)";
        let list =
            format!("SELECT {ENTRY_COLUMNS} FROM audit_entries {WHERE} ORDER BY seq DESC LIMIT $5 OFFSET $6");
        let count = format!("SELECT COUNT(*) FROM audit_entries {WHERE}");
        on_db!(self, |pool| {
            let rows = sqlx::query(&list)
                .bind(chain)
                .bind(&filter.secret)
                .bind(&filter.run_id)
                .bind(filter.since_ms)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?;
            let (total,): (i64,) = sqlx::query_as(&count)
                .bind(chain)
                .bind(&filter.secret)
                .bind(&filter.run_id)
                .bind(filter.since_ms)
                .fetch_one(pool)
                .await?;
            let entries = rows.iter().map(entry_from_row).collect::<StoreResult<Vec<_>>>()?;
            Ok((entries, total))
        })
    }

    async fn audit_chains(&self) -> StoreResult<Vec<AuditChain>> {
        let rows: Vec<(String, i64, String, i64, String)> = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT chain, head_seq, head_hash, checkpoint_seq, checkpoint_hash FROM audit_chains \
                 UNION ALL \
                 SELECT DISTINCT chain, -1, '', 0, $1 FROM audit_entries \
                 WHERE chain NOT IN (SELECT chain FROM audit_chains) \
                 ORDER BY 1",
            )
            .bind(GENESIS_HASH)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(chain, head_seq, head_hash, checkpoint_seq, checkpoint_hash)| AuditChain {
                    chain,
                    head_seq,
                    head_hash,
                    checkpoint_seq,
                    checkpoint_hash,
                },
            )
            .collect())
    }

    async fn audit_entries_after(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        on_db!(self, |pool| {
            let rows = sqlx::query(&sql)
                .bind(chain)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(entry_from_row).collect()
        })
    }

    async fn prune_audit(&self, chain: &str, before_ms: i64, max_rows: i64) -> StoreResult<i64> {
        let chain = chain.to_owned();
        write_db!(self, |conn, pg| {
            let head = if pg {
                "SELECT head_seq, checkpoint_seq FROM audit_chains WHERE chain = $1 FOR UPDATE"
            } else {
                "SELECT head_seq, checkpoint_seq FROM audit_chains WHERE chain = $1"
            };
            let Some((head_seq, checkpoint)): Option<(i64, i64)> = sqlx::query_as(head)
                .bind(&chain)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(0);
            };
            // Only a prefix of the chain goes: up to the first entry that is not old enough.
            let (first_kept,): (Option<i64>,) = sqlx::query_as(
                "SELECT MIN(seq) FROM audit_entries WHERE chain = $1 AND seq > $2 AND at >= $3",
            )
            .bind(&chain)
            .bind(checkpoint)
            .bind(before_ms)
            .fetch_one(&mut *conn)
            .await?;
            let cutoff = first_kept
                .map_or(head_seq, |s| s - 1)
                .min(checkpoint.saturating_add(max_rows));
            if cutoff <= checkpoint {
                return Ok(0);
            }
            let last: Option<(String, i64)> =
                sqlx::query_as("SELECT hash, at FROM audit_entries WHERE chain = $1 AND seq = $2")
                    .bind(&chain)
                    .bind(cutoff)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some((hash, at)) = last else {
                return Err(StoreError::Corrupt(format!(
                    "audit chain {chain}: entry {cutoff} is missing; run `sealflow audit verify`"
                )));
            };
            let deleted = sqlx::query("DELETE FROM audit_entries WHERE chain = $1 AND seq <= $2")
                .bind(&chain)
                .bind(cutoff)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            sqlx::query(
                "UPDATE audit_chains SET checkpoint_seq = $2, checkpoint_hash = $3, checkpoint_at = $4 \
                 WHERE chain = $1",
            )
            .bind(&chain)
            .bind(cutoff)
            .bind(&hash)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(deleted as i64)
        })
    }
}
