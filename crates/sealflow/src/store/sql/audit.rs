//! The audit trail, written once for both backends.
//!
//! A write that records audit entries leaves them in its writer batch ([`super::writer::Batch`]),
//! and the writer appends every job's entries just before the commit ([`append_entries!`]): each
//! chain's head row is moved once per batch, in the same transaction as the changes the entries
//! describe, so a change and its entry commit together or not at all. A use entry appended on its
//! own ([`AuditRepo::append_audit`], before a secret is sent) is a job with no statements and
//! shares the next batch's commit. The head is serialized per chain: on SQLite by the single
//! writer, on PostgreSQL by the row lock its move (or its read `FOR UPDATE`) takes, which also
//! holds across instances. The writer remembers the heads its commits left and moves a head only
//! from where it remembers it (`head_seq = …`), storing the entries only if it moved; a head that
//! another instance, or a command run beside the server, moved since is read and the entries
//! hashed after it. Heads are locked in chain order and after every other row of the batch, so
//! two instances' batches cannot deadlock on them.

use async_trait::async_trait;

use super::rows::SqlRow;
use super::{on_db, write_db, SqlStore};
use crate::store::{
    AuditChain, AuditEntry, AuditEvent, AuditFilter, AuditRepo, PageRequest, StoreError, StoreResult,
    GENESIS_HASH,
};

/// Appends `$events` (a `Vec<AuditEvent>` or slice) to their chains on `$conn` inside an open
/// transaction, and moves each chain's head past them; `$pg` is the dialect flag. Chain by
/// chain, in order: the head is taken from `$heads` (`Option<&mut HashMap<chain, (seq, hash)>>`,
/// the writer's memory of them, updated here) when the chain's entries fit in one statement, or
/// else read (locked, on PostgreSQL); the entries are hashed in order and stored by one
/// statement per chunk (a statement is a round trip, or a hand-off to SQLite's connection
/// thread). The head's move rides with the last chunk (on PostgreSQL in a data-modifying `WITH`,
/// on SQLite as the statement before it in the same text), and that chunk is stored only if the
/// head moved from where it was taken; if not (a remembered head moved by another writer),
/// nothing was stored, and the head is read and the entries hashed again. So a batch's audit
/// entries usually cost one statement, not three. `$notices` (`&mut Vec<String>`, PostgreSQL):
/// run-end notifications to send in the same round trip, if the head moves; those sent are
/// removed.
/// Writer jobs do not call this: they leave their entries in the batch (see the module's
/// comment). Uses `?`.
macro_rules! append_entries {
    ($conn:ident, $pg:expr, $events:expr) => {
        $crate::store::sql::audit::append_entries!($conn, $pg, $events, &mut Vec::new(), None)
    };
    ($conn:ident, $pg:expr, $events:expr, $notices:expr, $heads:expr) => {{
        let given = &$events;
        let notices: &mut Vec<String> = $notices;
        let mut heads: Option<&mut std::collections::HashMap<String, (i64, String)>> = $heads;
        let mut events: Vec<&$crate::store::AuditEvent> = given.iter().collect();
        // Heads are locked in chain order (a stable sort keeps each chain's events in order).
        events.sort_by(|a, b| a.chain.cmp(&b.chain));
        let mut events = events.into_iter().peekable();
        while let Some(first) = events.peek().copied() {
            let chain = first.chain.clone();
            let mut entries = Vec::new();
            while let Some(ev) = events.next_if(|e| e.chain == chain) {
                entries.push(ev);
            }
            // The head as the writer left it, when the entries fit in one statement: that
            // statement moves the head only if it is still there, and stores the entries only
            // if it moved, so a head another writer moved since costs a read and a retry.
            let mut cached = match heads.as_deref() {
                Some(known) if entries.len() <= $crate::store::sql::audit::INSERT_CHUNK => known.get(&chain).cloned(),
                _ => None,
            };
            loop {
                let from_cache = cached.is_some();
                let (start, mut prev_hash) = match cached.take() {
                    Some(head) => head,
                    None => $crate::store::sql::audit::read_head!($conn, $pg, &chain, notices),
                };
                let mut seq = start;
                let mut rows = Vec::new();
                for ev in &entries {
                    seq += 1;
                    let hash = ev.hash(seq, &prev_hash);
                    rows.push((*ev, seq, std::mem::replace(&mut prev_hash, hash.clone()), hash));
                }
                let chunks: Vec<_> = rows.chunks($crate::store::sql::audit::INSERT_CHUNK).collect();
                let mut moved = true;
                let mut notified = false;
                for (i, chunk) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    let mut insert = sqlx::QueryBuilder::new("");
                    // The last chunk moves the head, from `start`, in its own statement text (on
                    // PostgreSQL in a data-modifying `WITH`, on SQLite as the statement before).
                    if last {
                        insert
                            .push(if $pg { "WITH moved AS (" } else { "" })
                            .push("UPDATE audit_chains SET head_seq = ")
                            .push_bind(seq)
                            .push(", head_hash = ")
                            .push_bind(&prev_hash)
                            .push(" WHERE chain = ")
                            .push_bind(&chain)
                            .push(" AND head_seq = ")
                            .push_bind(start);
                        if $pg && !notices.is_empty() {
                            // The batch's run-end notifications, sent only if the head moved.
                            notified = true;
                            insert
                                .push(" RETURNING (SELECT COUNT(pg_notify(")
                                .push_bind($crate::store::sql::RUN_ENDED_CHANNEL)
                                .push(", n)) FROM json_array_elements_text(")
                                .push_bind(serde_json::to_string(&*notices).expect("strings serialize"))
                                .push("::json) AS n)");
                        } else if $pg {
                            insert.push(" RETURNING 1");
                        }
                        insert.push(if $pg { ") " } else { "; " });
                    }
                    insert.push(
                        "INSERT INTO audit_entries (chain, seq, at, kind, actor, secret_name, secret_version, \
                                                    run_id, step_id, host, outcome, subject, detail, prev_hash, hash) ",
                    );
                    if last {
                        insert.push("SELECT * FROM (");
                    }
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
                    if last {
                        insert.push(if $pg {
                            ") AS v WHERE EXISTS (SELECT 1 FROM moved)"
                        } else {
                            ") WHERE changes() = 1"
                        });
                    }
                    let done = insert.build().execute(&mut *$conn).await?;
                    if last {
                        moved = done.rows_affected() > 0;
                    }
                }
                if moved {
                    if notified {
                        notices.clear();
                    }
                    if let Some(known) = heads.as_deref_mut() {
                        known.insert(chain.clone(), (seq, prev_hash));
                    }
                    break;
                }
                if !from_cache {
                    // Read (on PostgreSQL locked) a moment ago: nothing else may have moved it.
                    return Err(sqlx::Error::Protocol(format!("the audit chain {chain:?} moved under its lock")).into());
                }
            }
        }
    }};
}
pub(crate) use append_entries;

/// Reads (on PostgreSQL locks) `$chain`'s head on `$conn`, creating it on the chain's first
/// append; evaluates to `(seq, hash)`. On PostgreSQL the batch's run-end notifications
/// (`$notices`) ride on the read, one round trip fewer (NOTIFY is delivered at the commit
/// whichever statement sends it); those sent are removed. Uses `?`.
macro_rules! read_head {
    ($conn:ident, $pg:expr, $chain:expr, $notices:expr) => {{
        let head = if $pg {
            "SELECT head_seq, head_hash FROM audit_chains WHERE chain = $1 FOR UPDATE"
        } else {
            "SELECT head_seq, head_hash FROM audit_chains WHERE chain = $1"
        };
        let notices: &mut Vec<String> = $notices;
        let found: Option<(i64, String)> = if $pg && !notices.is_empty() {
            // A head not there yet reads no row and sends nothing: they are sent later.
            let found: Option<(i64, String, i64)> = sqlx::query_as(
                "SELECT head_seq, head_hash, \
                        (SELECT COUNT(pg_notify($2, n)) FROM json_array_elements_text($3::json) AS n) \
                 FROM audit_chains WHERE chain = $1 FOR UPDATE",
            )
            .bind($chain)
            .bind($crate::store::sql::RUN_ENDED_CHANNEL)
            // JSON, not an array: this also compiles for SQLite, which has no arrays.
            .bind(serde_json::to_string(&*notices).expect("strings serialize"))
            .fetch_optional(&mut *$conn)
            .await?;
            found.map(|(seq, hash, _)| {
                notices.clear();
                (seq, hash)
            })
        } else {
            sqlx::query_as(head)
                .bind($chain)
                .fetch_optional(&mut *$conn)
                .await?
        };
        match found {
            Some(head) => head,
            None => {
                sqlx::query(
                    "INSERT INTO audit_chains (chain, head_seq, head_hash, checkpoint_seq, checkpoint_hash) \
                     VALUES ($1, 0, $2, 0, $2) ON CONFLICT (chain) DO NOTHING",
                )
                .bind($chain)
                .bind($crate::store::GENESIS_HASH)
                .execute(&mut *$conn)
                .await?;
                sqlx::query_as::<_, (i64, String)>(head)
                    .bind($chain)
                    .fetch_one(&mut *$conn)
                    .await?
            }
        }
    }};
}
pub(crate) use read_head;

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
