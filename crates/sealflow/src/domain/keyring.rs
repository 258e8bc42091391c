//! Master-key rotation: which key seals new data, rewrapping data keys under it, and retiring the
//! key it replaced.
//!
//! Design (both backends, any number of instances):
//! - The database names the current key (`key_ring.current_key_id`), so every instance agrees:
//!   a secret write reads it just before sealing, and each server re-reads it every few seconds
//!   (to report it and to know what to rewrap). An instance holding both keys therefore keeps
//!   working through a rotation; one holding only the old key cannot seal once the new key is
//!   current.
//! - A rewrap reads a batch of data keys not wrapped by the current key, opens each data key with
//!   the key that wrapped it, wraps it again with the current key, and stores the batch in one
//!   commit, each row only if it still holds what was read (a replace in between sealed afresh).
//!   Values' ciphertexts are never read or written. There is no cursor to lose: progress is the
//!   data itself, so after a crash or a restart the next rewrap simply continues with what is left.
//! - One process rewraps at a time, under a lease in `key_ring`: `sealflow key rotate` takes it at
//!   once and renews it every batch; a server with the keys takes it over only when it has lapsed
//!   (`--rewrap-takeover-ms` without progress), so a killed `key rotate` is finished by the fleet,
//!   and a second `key rotate` finishes it too.
//! - The derivation root is rewrapped like a data key, so keys derived from it do not change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::RewrapConfig;
use crate::ids;
use crate::store::{AuditEvent, MasterKeyEvent, RetireKey, Store, StoreError, WrappedRoot};
use crate::vault::{SecretAad, Vault, VaultError};

#[derive(Debug, Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A master-key event, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub enum KeyEvent<'a> {
    Added { id: &'a str },
    Rotated { from: &'a str, to: &'a str },
    Retired { id: &'a str },
}

/// Appends a master-key event to the audit trail's global chain. The actor is `cli`: these
/// events come from the operator's `sealflow key` commands. Never given key material, only ids.
pub async fn record_key_event(store: &Arc<dyn Store>, event: KeyEvent<'_>) -> Result<(), KeyRingError> {
    let (kind, id, detail) = match event {
        KeyEvent::Added { id } => (MasterKeyEvent::Added, id, None),
        KeyEvent::Rotated { from, to } => (MasterKeyEvent::Rotated, to, Some(format!("from {from}"))),
        KeyEvent::Retired { id } => (MasterKeyEvent::Retired, id, None),
    };
    let mut entry = AuditEvent::master_key(kind, id, "cli");
    entry.detail = detail;
    store.append_audit(vec![entry]).await?;
    Ok(())
}

/// One registered key, as `sealflow key status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyState {
    pub id: String,
    pub current: bool,
    /// Secrets whose data key this key wraps.
    pub data_keys: i64,
    /// Whether it wraps the derivation root.
    pub derivation_root: bool,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// The key ring as the database records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    pub current: Option<String>,
    pub keys: Vec<KeyState>,
    /// Data keys not yet under the current key.
    pub pending: i64,
    /// Whether the derivation root is not yet under the current key.
    pub derivation_root_pending: bool,
}

/// Reads the key ring's state (no key needed).
pub async fn status(store: &Arc<dyn Store>) -> Result<KeyStatus, KeyRingError> {
    let current = store.current_master_key().await?;
    let counts = store.data_keys_per_master_key().await?;
    let root = store.derivation_root().await?;
    let mut keys: Vec<KeyState> = store
        .master_keys()
        .await?
        .into_iter()
        .map(|k| KeyState {
            current: current.as_deref() == Some(k.id.as_str()),
            data_keys: counts.iter().find(|(id, _)| *id == k.id).map_or(0, |(_, n)| *n),
            derivation_root: root.as_ref().is_some_and(|r| r.kek_id == k.id),
            id: k.id,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect();
    // Data under a key that is not registered (it should not happen) is shown, not hidden.
    for (id, n) in &counts {
        if !keys.iter().any(|k| &k.id == id) {
            keys.push(KeyState {
                id: id.clone(),
                current: false,
                data_keys: *n,
                derivation_root: false,
                created_at: 0,
                retired_at: None,
            });
        }
    }
    let pending = keys.iter().filter(|k| !k.current).map(|k| k.data_keys).sum();
    let derivation_root_pending = keys.iter().any(|k| !k.current && k.derivation_root);
    Ok(KeyStatus {
        current,
        keys,
        pending,
        derivation_root_pending,
    })
}

/// Retires a key nothing uses any more.
pub async fn retire(store: &Arc<dyn Store>, id: &str) -> Result<RetireKey, KeyRingError> {
    let outcome = store.retire_master_key(id, ids::now_ms()).await?;
    if outcome == RetireKey::Retired {
        record_key_event(store, KeyEvent::Retired { id }).await?;
    }
    Ok(outcome)
}

/// How a rewrap ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrapped {
    /// Nothing is left under another key; this many data keys were rewrapped here.
    Done { data_keys: u64 },
    /// Another process holds the rewrap lease.
    HeldElsewhere,
    /// Asked to stop before the end.
    Stopped { data_keys: u64 },
}

/// Rewraps data keys under the vault's current key, in batches (see the module notes).
pub struct Rewrapper {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    config: RewrapConfig,
    owner: String,
}

impl Rewrapper {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, config: RewrapConfig, owner: &str) -> Self {
        Self {
            store,
            vault,
            config,
            owner: format!("{owner}-{}", ids::random_base62(10)),
        }
    }

    /// True if the derivation root or any data key is under another key than the current one.
    async fn pending(&self, current: &str) -> Result<bool, KeyRingError> {
        let root = self.store.derivation_root().await?;
        Ok(root.is_some_and(|r| r.kek_id != current)
            || !self.store.data_keys_to_rewrap(current, 1).await?.is_empty())
    }

    /// Follows the database's current key; fails if this process does not hold it.
    async fn follow(&self) -> Result<String, KeyRingError> {
        if let Some(current) = self.store.current_master_key().await? {
            self.vault.follow_current(&current)?;
        }
        Ok(self.vault.current_key_id())
    }

    /// Rewraps until nothing is left, reporting `(rewrapped in this batch, so far)` after each
    /// batch. `force` takes the lease even while another process holds it (an operator's
    /// command); a server passes false. `stop` is checked between batches.
    pub async fn run(
        &self,
        force: bool,
        stop: impl Fn() -> bool,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Rewrapped, KeyRingError> {
        let mut done = 0u64;
        let takeover = i64::try_from(self.config.takeover.as_millis()).unwrap_or(i64::MAX);
        if !self.pending(&self.follow().await?).await? {
            return Ok(Rewrapped::Done { data_keys: 0 });
        }
        loop {
            if stop() {
                return Ok(Rewrapped::Stopped { data_keys: done });
            }
            let now = ids::now_ms();
            if !self
                .store
                .claim_rewrap(&self.owner, now, now + takeover, force)
                .await?
            {
                return Ok(Rewrapped::HeldElsewhere);
            }
            let current = self.follow().await?;
            if let Some(root) = self.store.derivation_root().await? {
                if root.kek_id != current {
                    let (kek_id, wrapped) = self.vault.rewrap_root(&root.kek_id, &root.wrapped)?;
                    let new = WrappedRoot { kek_id, wrapped };
                    self.store.rewrap_derivation_root(&root.kek_id, &new).await?;
                }
            }
            let rows = self
                .store
                .data_keys_to_rewrap(&current, self.config.batch)
                .await?;
            if rows.is_empty() {
                // Let the lease lapse at once, so nobody waits for it.
                self.store.claim_rewrap(&self.owner, now, 0, false).await?;
                return Ok(Rewrapped::Done { data_keys: done });
            }
            let mut batch = Vec::with_capacity(rows.len());
            for row in rows {
                let aad = SecretAad {
                    workspace_id: &row.workspace_id,
                    name: &row.name,
                    version: row.version,
                };
                let (kek_id, wrapped) = self.vault.rewrap(&aad, &row.kek_id, &row.wrapped_dek)?;
                batch.push((row, kek_id, wrapped));
            }
            let changed = self.store.store_rewrapped(batch).await?;
            done += changed;
            progress(changed, done);
            if !self.config.pause.is_zero() {
                tokio::time::sleep(self.config.pause).await;
            }
        }
    }
}

/// A server's part in rotations: follows the database's current key and, holding it, finishes a
/// pending rewrap whose lease has lapsed. Runs until `stop` turns true.
pub async fn watch(
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    config: RewrapConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = (config.takeover / 2).min(Duration::from_secs(5));
    let rewrapper = Rewrapper::new(store.clone(), vault.clone(), config, "server");
    let mut reported_missing = None::<String>;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        let current = match store.current_master_key().await {
            Ok(Some(current)) => current,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the current master key");
                continue;
            }
        };
        if !vault.holds(&current) {
            if reported_missing.as_deref() != Some(current.as_str()) {
                tracing::error!(
                    current_key_id = %current,
                    loaded_key_ids = ?vault.key_ids(),
                    "the database's current master key is not loaded here: secret writes fail until \
                     this instance is restarted with it (SEALFLOW_MASTER_KEY or SEALFLOW_MASTER_KEY_NEXT)"
                );
                reported_missing = Some(current);
            }
            continue;
        }
        let before = vault.current_key_id();
        let started = Instant::now();
        let stopping = stop.clone();
        match rewrapper.run(false, || *stopping.borrow(), |_, _| {}).await {
            Ok(Rewrapped::Done { data_keys }) if data_keys > 0 => tracing::info!(
                master_key_id = %vault.current_key_id(),
                data_keys,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "finished rewrapping data keys under the current master key"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rewrapping data keys failed; retrying later"),
        }
        if before != vault.current_key_id() {
            tracing::info!(master_key_id = %vault.current_key_id(), "now sealing with the current master key");
        }
    }
}
