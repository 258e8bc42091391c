//! The key ring's records: registered master keys, which one is current, the rewrap lease, the
//! wrapped derivation root, and the data keys to rewrap.
//!
//! Implemented once for both backends in `sql/keyring.rs`. Only wrapped data keys are read and
//! written here; a value's ciphertext is never touched by a rewrap.

use async_trait::async_trait;

use super::StoreResult;

/// A registered master key. `check_value` is a constant sealed under it (see `master_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyRecord {
    pub id: String,
    pub check_value: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// The derivation root as stored: 32 random bytes wrapped by master key `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedRoot {
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

/// A secret's wrapped data key, with the context it is bound to (its AAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDek {
    pub workspace_id: String,
    pub name: String,
    pub version: i64,
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
}

/// Why a key could not be retired (or that it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireKey {
    Retired,
    NotFound,
    AlreadyRetired,
    /// It seals new data; rotate to another key first.
    Current,
    /// Data keys (and perhaps the derivation root) are still wrapped by it.
    InUse {
        data_keys: i64,
        derivation_root: bool,
    },
}

#[async_trait]
pub trait KeyRingRepo {
    /// Every registered key, oldest first.
    async fn master_keys(&self) -> StoreResult<Vec<MasterKeyRecord>>;
    /// The key that seals new data; `None` on a database that never held a key.
    async fn current_master_key(&self) -> StoreResult<Option<String>>;
    /// Registers the first key of a new database and makes it current, unless a key ring exists
    /// already (another instance got there first): returns the current key either way.
    async fn init_key_ring(&self, id: &str, check: &[u8], at_ms: i64) -> StoreResult<String>;
    /// Makes a registered, unretired key current; false if there is no such key.
    async fn set_current_master_key(&self, id: &str, at_ms: i64) -> StoreResult<bool>;
    /// How many secrets' data keys each master key wraps, by key id.
    async fn data_keys_per_master_key(&self) -> StoreResult<Vec<(String, i64)>>;
    /// The wrapped derivation root, if one was created.
    async fn derivation_root(&self) -> StoreResult<Option<WrappedRoot>>;
    /// Stores the derivation root unless one exists (two instances starting together keep the
    /// first); the caller re-reads it.
    async fn insert_derivation_root(&self, root: &WrappedRoot, at_ms: i64) -> StoreResult<()>;
    /// Replaces the root's wrap if it is still `old_kek_id`'s; false if it changed meanwhile.
    async fn rewrap_derivation_root(&self, old_kek_id: &str, root: &WrappedRoot) -> StoreResult<bool>;
    /// Up to `limit` data keys not wrapped by `current`.
    async fn data_keys_to_rewrap(&self, current: &str, limit: i64) -> StoreResult<Vec<WrappedDek>>;
    /// Stores rewrapped data keys in one commit. Each row changes only if it still holds the
    /// version and key it was read with (a replace in between wrote a fresh one); returns how
    /// many changed.
    async fn store_rewrapped(&self, rows: Vec<(WrappedDek, String, Vec<u8>)>) -> StoreResult<u64>;
    /// Takes or renews the rewrap lease for `owner` until `until_ms`; with `force` even while
    /// someone else holds it (an operator's `key rotate`). False: another holder's lease is live.
    async fn claim_rewrap(&self, owner: &str, now_ms: i64, until_ms: i64, force: bool) -> StoreResult<bool>;
    /// Retires a key that nothing uses any more, checked and marked in one transaction.
    async fn retire_master_key(&self, id: &str, at_ms: i64) -> StoreResult<RetireKey>;
}
