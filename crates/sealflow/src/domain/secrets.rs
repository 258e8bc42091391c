//! Secrets: write-only, per-workspace values sealed by the vault.
//!
//! Rules (spec §3): names match `^[A-Za-z_][A-Za-z0-9_]{0,127}$`; values are 4 bytes (the spec
//! says 1; issue 9 raised it: shorter values cannot be masked) to 64 KiB of UTF-8; a workspace holds at most 1,000 secrets (configurable). Creating an existing name
//! replaces its value under a new version (so its ciphertext is bound to that version).
//! `allowed_hosts` (ours): omitted on a replace keeps the current list, `null` removes it.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use super::redactors::RedactorCache;
use crate::ids;
use crate::metrics::Metrics;
use crate::store::{InsertSecret, SecretMeta, SecretRecord, Store, StoreError};
use crate::vault::{SecretAad, Vault, VaultError};

/// Values shorter than this are refused: the redactor cannot mask them in free text.
pub const MIN_VALUE_BYTES: usize = sealflow_redact::MIN_FREE_TEXT_LEN;

/// Configurable limits on secrets.
#[derive(Debug, Clone, Copy)]
pub struct SecretLimits {
    pub max_value_bytes: usize,
    pub max_per_workspace: i64,
}

impl Default for SecretLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024,
            max_per_workspace: 1000,
        }
    }
}

const MAX_ALLOWED_HOSTS: usize = 50;
/// Concurrent replaces of one name retry this often before giving up with a conflict.
const REPLACE_ATTEMPTS: usize = 32;

#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("{0}")]
    Invalid(String),
    #[error("secret {0:?} not found")]
    NotFound(String),
    #[error("secret {0:?} is being changed by another request; try again")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A create-or-replace request.
pub struct PutSecret {
    pub name: String,
    pub value: SecretString,
    /// `None`: not sent; `Some(None)`: sent as null; `Some(Some(list))`: set.
    pub allowed_hosts: Option<Option<Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
}

pub struct SecretsService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    limits: SecretLimits,
    metrics: Metrics,
    /// Runs' redactors by secret values (see `redactors`); a replace or delete drops the
    /// entries holding the old value.
    redactors: RedactorCache,
}

impl SecretsService {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, limits: SecretLimits) -> Self {
        Self {
            store,
            vault,
            limits,
            metrics: Metrics::default(),
            redactors: RedactorCache::default(),
        }
    }

    /// Counts decryptions in `metrics` (the application's) instead of an unserved registry.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Built redactors for the engine, shared between runs that resolve the same values.
    pub fn redactors(&self) -> &RedactorCache {
        &self.redactors
    }

    pub async fn list(&self, workspace_id: &str) -> Result<Vec<SecretMeta>, SecretsError> {
        Ok(self.store.list_secrets(workspace_id).await?)
    }

    /// Creates or replaces a secret; the change is audited as done by `actor`.
    pub async fn put(
        &self,
        workspace_id: &str,
        actor: &str,
        mut req: PutSecret,
    ) -> Result<PutOutcome, SecretsError> {
        validate_name(&req.name)?;
        validate_value(req.value.expose_secret(), self.limits.max_value_bytes)?;
        let hosts = req
            .allowed_hosts
            .take()
            .map(|h| h.map(normalize_hosts).transpose())
            .transpose()?;
        // Seal with the key the database names current, not the one this instance last saw, so
        // that no instance keeps sealing with a key being rotated out.
        if let Some(current) = self.store.current_master_key().await? {
            self.vault.follow_current(&current)?;
        }
        for _ in 0..REPLACE_ATTEMPTS {
            let now = ids::now_ms();
            match self.store.get_secret(workspace_id, &req.name).await? {
                None => {
                    let row = self.sealed_row(workspace_id, &req, 1, hosts.clone().flatten(), now, now)?;
                    match self
                        .store
                        .insert_secret(&row, self.limits.max_per_workspace, actor)
                        .await?
                    {
                        InsertSecret::Inserted => return Ok(PutOutcome::Created),
                        InsertSecret::NameExists => continue,
                        InsertSecret::LimitReached => {
                            return Err(SecretsError::Invalid(format!(
                                "a workspace may hold at most {} secrets; delete one first",
                                self.limits.max_per_workspace
                            )))
                        }
                    }
                }
                Some(current) => {
                    let kept = hosts.clone().unwrap_or(current.allowed_hosts);
                    let row = self.sealed_row(
                        workspace_id,
                        &req,
                        current.version + 1,
                        kept,
                        current.created_at,
                        now.max(current.updated_at),
                    )?;
                    if self.store.replace_secret(&row, current.version, actor).await? {
                        self.redactors.forget(workspace_id, &req.name);
                        return Ok(PutOutcome::Replaced);
                    }
                }
            }
        }
        Err(SecretsError::Busy(req.name))
    }

    fn sealed_row(
        &self,
        workspace_id: &str,
        req: &PutSecret,
        version: i64,
        allowed_hosts: Option<Vec<String>>,
        created_at: i64,
        updated_at: i64,
    ) -> Result<SecretRecord, SecretsError> {
        let aad = SecretAad {
            workspace_id,
            name: &req.name,
            version,
        };
        Ok(SecretRecord {
            workspace_id: workspace_id.to_owned(),
            name: req.name.clone(),
            version,
            sealed: self.vault.seal(&aad, &req.value)?,
            allowed_hosts,
            created_at,
            updated_at,
        })
    }

    /// Deletes a secret; audited as done by `actor`.
    pub async fn delete(&self, workspace_id: &str, actor: &str, name: &str) -> Result<(), SecretsError> {
        validate_name(name)?;
        if self.store.delete_secret(workspace_id, name, actor).await? {
            self.redactors.forget(workspace_id, name);
            Ok(())
        } else {
            Err(SecretsError::NotFound(name.to_owned()))
        }
    }

    /// Decrypts a secret's current value (for the engine at send time; never for a response).
    pub async fn reveal(&self, workspace_id: &str, name: &str) -> Result<SecretString, SecretsError> {
        self.reveal_with_hosts(workspace_id, name)
            .await
            .map(|revealed| revealed.value)
    }

    /// Decrypts a secret and returns it with the hosts it may be sent to and its version.
    pub async fn reveal_with_hosts(&self, workspace_id: &str, name: &str) -> Result<Revealed, SecretsError> {
        let row = self
            .store
            .get_secret(workspace_id, name)
            .await?
            .ok_or_else(|| SecretsError::NotFound(name.to_owned()))?;
        let aad = SecretAad {
            workspace_id,
            name,
            version: row.version,
        };
        let opened = self.vault.open(&aad, &row.sealed);
        self.metrics.secret_decryption(opened.is_ok());
        Ok(Revealed {
            value: opened?,
            allowed_hosts: row.allowed_hosts,
            version: row.version,
        })
    }
}

/// A decrypted secret, for the engine at send time.
pub struct Revealed {
    pub value: SecretString,
    /// The hosts it may be sent to (`None`: any).
    pub allowed_hosts: Option<Vec<String>>,
    /// The version decrypted (what its use is audited as).
    pub version: i64,
}

/// The rule [`validate_name`] checks, as a regular expression (for the OpenAPI document).
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// Checks a secret name against [`NAME_PATTERN`].
pub fn validate_name(name: &str) -> Result<(), SecretsError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(SecretsError::Invalid(
            "name must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$ (letters, digits and _, not starting with a digit, at most 128 characters)"
                .into(),
        ))
    }
}

fn validate_value(value: &str, max: usize) -> Result<(), SecretsError> {
    if value.is_empty() {
        return Err(SecretsError::Invalid("value must not be empty".into()));
    }
    // A shorter value cannot be masked in free text (every "1" or "yes" would go), so a run
    // could not keep the promise that it is never recorded.
    if value.len() < MIN_VALUE_BYTES {
        return Err(SecretsError::Invalid(format!(
            "value must be at least {MIN_VALUE_BYTES} bytes of UTF-8 (got {} bytes): shorter values \
             cannot be masked in what runs record",
            value.len()
        )));
    }
    if value.len() > max {
        return Err(SecretsError::Invalid(format!(
            "value must be at most {max} bytes of UTF-8 (got {} bytes)",
            value.len()
        )));
    }
    Ok(())
}

/// Validates and lowercases `allowed_hosts`: hostnames, `*.suffix` wildcards or IP literals.
fn normalize_hosts(hosts: Vec<String>) -> Result<Vec<String>, SecretsError> {
    if hosts.is_empty() {
        return Err(SecretsError::Invalid(
            "allowed_hosts must list at least one host; send null to remove the restriction".into(),
        ));
    }
    if hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(SecretsError::Invalid(format!(
            "allowed_hosts may list at most {MAX_ALLOWED_HOSTS} hosts"
        )));
    }
    let mut out: Vec<String> = hosts
        .into_iter()
        .map(|h| {
            let h = h.trim().to_ascii_lowercase();
            if is_host_pattern(&h) {
                Ok(h)
            } else {
                Err(SecretsError::Invalid(format!(
                    "allowed_hosts entry {h:?} is not a hostname, *.domain wildcard or IP address"
                )))
            }
        })
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn is_host_pattern(h: &str) -> bool {
    if h.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        for ok in ["A", "_", "CRM_API_KEY", "a1", &"x".repeat(128)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "é", "A.B", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_hosts_are_checked_and_normalised() {
        let hosts = normalize_hosts(vec![
            "Hooks.Slack.com".into(),
            "*.example.com".into(),
            "10.0.0.1".into(),
        ]);
        assert_eq!(hosts.unwrap(), ["*.example.com", "10.0.0.1", "hooks.slack.com"]);
        for bad in ["", "https://x.com", "a..b", "-a.com", "*.", "x.com/path"] {
            assert!(normalize_hosts(vec![bad.into()]).is_err(), "{bad}");
        }
        assert!(normalize_hosts(vec![]).is_err());
    }
}
