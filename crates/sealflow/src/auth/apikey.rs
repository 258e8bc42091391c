//! API keys: `sf_live_` + 40 base62 characters (~238 bits), stored as SHA-256 only.
//!
//! A fast hash is right here: the keys are random and long, so there is nothing to brute-force,
//! and a lookup by hash keeps authentication a single indexed read.

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids;
use crate::store::{ApiKeyRecord, Role};

pub const KEY_PREFIX: &str = "sf_live_";
const KEY_RANDOM_LEN: usize = 40;

/// A newly issued key: the record to store and the full key, to show once.
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub key: SecretString,
}

/// Hex SHA-256 of a presented key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Constant-time equality of two hashes.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Makes a new key for a workspace. The caller stores `record` and shows `key` once.
pub fn issue_api_key(workspace_id: &str, name: &str, role: Role) -> IssuedKey {
    let key = format!("{KEY_PREFIX}{}", ids::random_base62(KEY_RANDOM_LEN));
    let preview = format!("{}…{}", &key[..KEY_PREFIX.len() + 4], &key[key.len() - 4..]);
    let record = ApiKeyRecord {
        id: ids::new_id("key"),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        role,
        key_hash: hash_key(&key),
        key_preview: preview,
        created_at: ids::now_ms(),
        last_used: None,
        total_requests: 0,
        revoked_at: None,
        credit_limit: None,
        credits_used: 0,
    };
    IssuedKey {
        record,
        key: SecretString::from(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn issued_keys_have_the_format_and_only_their_hash_is_kept() {
        let issued = issue_api_key("ws_x", "ci", Role::Member);
        let key = issued.key.expose_secret();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + KEY_RANDOM_LEN);
        assert!(key[KEY_PREFIX.len()..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(issued.record.key_hash, hash_key(key));
        assert!(!issued.record.key_preview.contains(&key[12..key.len() - 4]));
    }
}
