//! The audit trail as the operator sees it: listing with checked filters, verifying every chain
//! from its checkpoint, and pruning old entries while moving the checkpoint.
//!
//! Verification needs nothing but the database: each chain row holds its checkpoint (the seq
//! and hash of the last entry pruned) and its head, so a copy of the database verifies exactly
//! like the original. What it proves: no entry after the checkpoint was edited, deleted,
//! inserted or moved, and none was cut off the end, unless whoever did it also rewrote every
//! later hash and the head row. To catch that too, keep the heads `sealflow audit verify`
//! prints somewhere the database's writers cannot reach, and compare.

use std::sync::Arc;

use thiserror::Error;

use crate::domain::secrets::validate_name;
use crate::store::{AuditChain, AuditEntry, AuditFilter, PageRequest, Store, StoreError};

/// Entries read per round trip while verifying.
const VERIFY_PAGE: i64 = 1000;
/// Entries deleted per transaction while pruning (bounds how long one prune holds the writer).
pub const PRUNE_BATCH: i64 = 10_000;
/// Longest `run_id` filter.
const MAX_RUN_ID: usize = 64;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The raw filters of a listing, as a caller sent them.
#[derive(Debug, Default)]
pub struct ListAudit<'a> {
    pub secret: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub since: Option<&'a str>,
}

/// Parses an RFC 3339 time (`2026-01-31T12:00:00Z`) or a date (`2026-01-31`, midnight UTC) into
/// epoch milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    /// Where verification started (the checkpoint) and the head it ended at.
    pub from_seq: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub entries: i64,
}

/// The first entry found bad, with why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("audit chain {chain}: entry {seq} {problem}")]
pub struct BadEntry {
    pub chain: String,
    pub seq: i64,
    pub problem: String,
}

pub struct AuditService {
    store: Arc<dyn Store>,
}

impl AuditService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A workspace's entries, newest first, filtered; a bad filter is [`AuditError::Invalid`].
    pub async fn list(
        &self,
        workspace_id: &str,
        query: ListAudit<'_>,
        page: PageRequest,
    ) -> Result<(Vec<AuditEntry>, i64), AuditError> {
        let filter = AuditFilter {
            secret: query
                .secret
                .map(|s| {
                    validate_name(s).map(|()| s.to_owned()).map_err(|_| {
                        AuditError::Invalid(
                            "secret must be a secret name (^[A-Za-z_][A-Za-z0-9_]{0,127}$)".into(),
                        )
                    })
                })
                .transpose()?,
            run_id: query
                .run_id
                .map(|r| {
                    let ok = !r.is_empty()
                        && r.len() <= MAX_RUN_ID
                        && r.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if ok {
                        Ok(r.to_owned())
                    } else {
                        Err(AuditError::Invalid(format!(
                            "run_id must be a run id (1 to {MAX_RUN_ID} letters, digits, _ or -)"
                        )))
                    }
                })
                .transpose()?,
            since_ms: query
                .since
                .map(|s| {
                    parse_time(s).ok_or_else(|| {
                        AuditError::Invalid(
                            "since must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)"
                                .into(),
                        )
                    })
                })
                .transpose()?,
        };
        Ok(self.store.list_audit(workspace_id, &filter, page).await?)
    }

    /// Verifies every chain from its checkpoint to its head; the first bad entry found is the
    /// error (chains are checked in name order, each from its start).
    pub async fn verify(&self) -> Result<Result<Vec<ChainReport>, BadEntry>, StoreError> {
        let mut reports = Vec::new();
        for chain in self.store.audit_chains().await? {
            match self.verify_chain(&chain).await? {
                Ok(report) => reports.push(report),
                Err(bad) => return Ok(Err(bad)),
            }
        }
        Ok(Ok(reports))
    }

    async fn verify_chain(&self, chain: &AuditChain) -> Result<Result<ChainReport, BadEntry>, StoreError> {
        let bad = |seq: i64, problem: &str| BadEntry {
            chain: chain.chain.clone(),
            seq,
            problem: problem.to_owned(),
        };
        let (mut seq, mut prev) = (chain.checkpoint_seq, chain.checkpoint_hash.clone());
        let mut entries = 0;
        loop {
            let page = self
                .store
                .audit_entries_after(&chain.chain, seq, VERIFY_PAGE)
                .await?;
            let done = (page.len() as i64) < VERIFY_PAGE;
            for entry in page {
                let expected = seq + 1;
                if entry.seq != expected {
                    return Ok(Err(bad(expected, "is missing (deleted, or its seq was changed)")));
                }
                if entry.event.chain != chain.chain {
                    return Ok(Err(bad(expected, "belongs to another chain")));
                }
                if entry.prev_hash != prev {
                    return Ok(Err(bad(
                        expected,
                        "does not follow the entry before it (reordered, or an entry before it was replaced)",
                    )));
                }
                if !entry.hash_matches() {
                    return Ok(Err(bad(
                        expected,
                        "was edited (its hash does not match its fields)",
                    )));
                }
                seq = entry.seq;
                prev = entry.hash;
                entries += 1;
            }
            if done {
                break;
            }
        }
        if chain.head_seq < 0 {
            return Ok(Err(bad(
                chain.checkpoint_seq + 1,
                "has no chain head row (the audit_chains row was deleted)",
            )));
        }
        if seq < chain.head_seq {
            return Ok(Err(bad(
                seq + 1,
                "is missing (entries were cut off the end of the chain)",
            )));
        }
        if seq > chain.head_seq || prev != chain.head_hash {
            return Ok(Err(bad(
                seq,
                "does not match the chain's head (the head row was changed)",
            )));
        }
        Ok(Ok(ChainReport {
            chain: chain.chain.clone(),
            from_seq: chain.checkpoint_seq,
            head_seq: chain.head_seq,
            head_hash: chain.head_hash.clone(),
            entries,
        }))
    }

    /// Deletes every chain's entries older than `before_ms` (the longest prefix of each chain
    /// that is older), in transactions of [`PRUNE_BATCH`] entries that each move the chain's
    /// checkpoint; returns how many were deleted per chain (chains with none left out).
    pub async fn prune(&self, before_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let mut pruned = Vec::new();
        for chain in self.store.audit_chains().await? {
            let mut total = 0;
            loop {
                let n = self
                    .store
                    .prune_audit(&chain.chain, before_ms, PRUNE_BATCH)
                    .await?;
                total += n;
                if n < PRUNE_BATCH {
                    break;
                }
            }
            if total > 0 {
                pruned.push((chain.chain, total));
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        for bad in ["", "yesterday", "2026-13-01", "2026-01-01 00:00", "1700000000"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
