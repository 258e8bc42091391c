//! The audit trail's records, their hash chain, and the repository that appends, lists, reads
//! back and prunes them (implemented once for both backends in `sql/audit.rs`).
//!
//! Every entry belongs to a chain (a workspace id, or [`GLOBAL_CHAIN`] for master-key events),
//! has the next sequence number of that chain, the previous entry's hash, and its own hash:
//! SHA-256 over [`AuditEvent::canonical`], which encodes every field with its length, so no two
//! different entries encode alike. An entry never holds a secret value nor anything derived
//! from one; the host of a destination that a secret chose is recorded as [`HIDDEN_HOST`].

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{PageRequest, StoreResult};

/// The chain of events that belong to no workspace (master keys).
pub const GLOBAL_CHAIN: &str = "global";
/// The `prev_hash` of a chain's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Recorded instead of a destination host that was (partly) made of a secret.
pub const HIDDEN_HOST: &str = "[from a secret]";

/// Event kinds.
pub mod kinds {
    pub const SECRET_CREATED: &str = "secret.created";
    pub const SECRET_REPLACED: &str = "secret.replaced";
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// Written and committed before a request carrying the secret is sent.
    pub const SECRET_USED: &str = "secret.used";
    /// What became of that request, written with the step's result.
    pub const SECRET_USE_OUTCOME: &str = "secret.use_outcome";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_RENAMED: &str = "api_key.renamed";
    pub const API_KEY_DISABLED: &str = "api_key.disabled";
    pub const API_KEY_ENABLED: &str = "api_key.enabled";
    pub const API_KEY_DELETED: &str = "api_key.deleted";
    pub const API_KEY_LIMIT_SET: &str = "api_key.limit_set";
    pub const MASTER_KEY_ADDED: &str = "master_key.added";
    pub const MASTER_KEY_ROTATED: &str = "master_key.rotated";
    pub const MASTER_KEY_RETIRED: &str = "master_key.retired";
}

/// A master-key event (in the global chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeyEvent {
    Added,
    Rotated,
    Retired,
}

/// One event, before the chain gives it a place (seq, hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// A workspace id, or [`GLOBAL_CHAIN`].
    pub chain: String,
    /// Epoch milliseconds.
    pub at: i64,
    /// One of [`kinds`].
    pub kind: String,
    /// Who acted: `api_key:<id>`, `user:<id>`, `cli`, or `engine` for a run's use of a secret.
    pub actor: String,
    pub secret_name: Option<String>,
    pub secret_version: Option<i64>,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    /// The destination host of a secret use.
    pub host: Option<String>,
    /// A use's outcome: `http_2xx`…`http_5xx`, or `error:<kind>`.
    pub outcome: Option<String>,
    /// What else the event is about: an API key id, a master key id.
    pub subject: Option<String>,
    /// A short note without values (a batch row, attempts, a key's new name or role).
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` in `chain` by `actor`, now.
    pub fn new(chain: &str, kind: &str, actor: &str) -> Self {
        Self {
            chain: chain.to_owned(),
            at: crate::ids::now_ms(),
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            ..Self::default()
        }
    }

    /// A secret event (created, replaced, deleted) in the workspace's chain.
    pub fn secret(workspace_id: &str, kind: &str, actor: &str, name: &str, version: i64) -> Self {
        Self {
            secret_name: Some(name.to_owned()),
            secret_version: Some(version),
            ..Self::new(workspace_id, kind, actor)
        }
    }

    /// An API-key event in the workspace's chain.
    pub fn api_key(workspace_id: &str, kind: &str, actor: &str, key_id: &str) -> Self {
        Self {
            subject: Some(key_id.to_owned()),
            ..Self::new(workspace_id, kind, actor)
        }
    }

    /// A master-key event in the global chain; append it with [`AuditRepo::append_audit`].
    pub fn master_key(event: MasterKeyEvent, key_id: &str, actor: &str) -> Self {
        let kind = match event {
            MasterKeyEvent::Added => kinds::MASTER_KEY_ADDED,
            MasterKeyEvent::Rotated => kinds::MASTER_KEY_ROTATED,
            MasterKeyEvent::Retired => kinds::MASTER_KEY_RETIRED,
        };
        Self {
            subject: Some(key_id.to_owned()),
            ..Self::new(GLOBAL_CHAIN, kind, actor)
        }
    }

    /// The bytes hashed for this event at `seq` after `prev_hash`: a version tag, then every
    /// field in a fixed order, each text as a presence byte, its length (u32, big-endian) and
    /// its bytes, each number as a presence byte and 8 big-endian bytes.
    pub fn canonical(&self, seq: i64, prev_hash: &str) -> Vec<u8> {
        fn text(out: &mut Vec<u8>, s: Option<&str>) {
            match s {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        fn number(out: &mut Vec<u8>, n: Option<i64>) {
            match n {
                None => out.push(0),
                Some(n) => {
                    out.push(1);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"sealflow-audit-v1");
        text(&mut out, Some(&self.chain));
        number(&mut out, Some(seq));
        number(&mut out, Some(self.at));
        text(&mut out, Some(&self.kind));
        text(&mut out, Some(&self.actor));
        text(&mut out, self.secret_name.as_deref());
        number(&mut out, self.secret_version);
        text(&mut out, self.run_id.as_deref());
        text(&mut out, self.step_id.as_deref());
        text(&mut out, self.host.as_deref());
        text(&mut out, self.outcome.as_deref());
        text(&mut out, self.subject.as_deref());
        text(&mut out, self.detail.as_deref());
        text(&mut out, Some(prev_hash));
        out
    }

    /// The entry's hash (lowercase hex SHA-256 of [`canonical`](Self::canonical)).
    pub fn hash(&self, seq: i64, prev_hash: &str) -> String {
        hex::encode(Sha256::digest(self.canonical(seq, prev_hash)))
    }
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub event: AuditEvent,
}

impl AuditEntry {
    /// True if the stored hash is the hash of the stored fields.
    pub fn hash_matches(&self) -> bool {
        self.event.hash(self.seq, &self.prev_hash) == self.hash
    }
}

/// A chain's head and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChain {
    pub chain: String,
    pub head_seq: i64,
    pub head_hash: String,
    /// The last pruned entry (0 and [`GENESIS_HASH`] before any prune).
    pub checkpoint_seq: i64,
    pub checkpoint_hash: String,
}

/// Filters of a listing; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub secret: Option<String>,
    pub run_id: Option<String>,
    /// Entries at or after this time (epoch milliseconds).
    pub since_ms: Option<i64>,
}

#[async_trait]
pub trait AuditRepo {
    /// Appends the events to their chains in one transaction of the group-commit writer, shared
    /// with other callers' pending events; returns once that transaction has committed (an error:
    /// none of them is stored).
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()>;
    /// A chain's entries matching `filter`, newest first, and how many match.
    async fn list_audit(
        &self,
        chain: &str,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<AuditEntry>, i64)>;
    /// Every chain's head and checkpoint, plus chains that have entries but lost their head row
    /// (reported with head seq -1).
    async fn audit_chains(&self) -> StoreResult<Vec<AuditChain>>;
    /// Up to `limit` entries of `chain` with seq above `after_seq`, in seq order.
    async fn audit_entries_after(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Deletes up to `max_rows` of the oldest entries of `chain`, stopping at the first entry at
    /// or after `before_ms`, and moves the chain's checkpoint to the last one deleted, in one
    /// transaction; returns how many were deleted.
    async fn prune_audit(&self, chain: &str, before_ms: i64, max_rows: i64) -> StoreResult<i64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_hash_and_fields_cannot_run_together() {
        let base = AuditEvent {
            secret_name: Some("A".into()),
            ..AuditEvent::new("ws_1", kinds::SECRET_CREATED, "cli")
        };
        let h = base.hash(1, GENESIS_HASH);
        assert_eq!(h.len(), 64);
        assert_ne!(h, base.hash(2, GENESIS_HASH));
        assert_ne!(h, base.hash(1, &"1".repeat(64)));
        let mut other = base.clone();
        other.at += 1;
        assert_ne!(h, other.hash(1, GENESIS_HASH));
        // "A" + None vs None + "A" in neighbouring fields.
        let mut moved = base.clone();
        moved.secret_name = None;
        moved.run_id = Some("A".into());
        assert_ne!(h, moved.hash(1, GENESIS_HASH));
        let mut split = base.clone();
        split.actor = "cl".into();
        split.secret_name = Some("iA".into());
        assert_ne!(h, split.hash(1, GENESIS_HASH));
    }
}
