//! Built redactors kept for reuse: a run's redactor, with its search automaton, is built once per
//! distinct set of secret values instead of once per run (building it was the largest CPU cost of
//! a run that sends one secret).
//!
//! An entry is keyed by a keyed hash (HMAC-SHA256 under a random per-process key) of the
//! workspace, names and values it masks, so a hit is exact by construction: a replaced or deleted
//! and re-created secret has a different value and therefore a different key, on every instance,
//! without any invalidation message. The key is never stored or shown, and without the process
//! key it says nothing about the values. Entries are also dropped on this instance when a secret
//! they hold is replaced or deleted, so a retired value does not stay in memory until it is
//! evicted. The values live in the redactor's zeroizing patterns, wiped when the last run using
//! an entry drops it. Bounded: least recently used entries go first.

use std::sync::Mutex;

use hashlink::LruCache;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sealflow_redact::Redactor;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Distinct secret sets kept (each a few hundred patterns of its values' encodings).
const MAX_ENTRIES: usize = 256;

struct Entry {
    redactor: Redactor,
    /// (workspace, secret name) of each value, so a replace or delete can drop the entry.
    names: Vec<(String, String)>,
}

/// See the module docs.
pub struct RedactorCache {
    key: Zeroizing<[u8; 32]>,
    entries: Mutex<LruCache<[u8; 32], Entry>>,
}

impl Default for RedactorCache {
    fn default() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        Self {
            key,
            entries: Mutex::new(LruCache::new(MAX_ENTRIES)),
        }
    }
}

impl std::fmt::Debug for RedactorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactorCache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl RedactorCache {
    /// A redactor masking exactly `values` (secrets of `workspace_id`, by name), built (automaton
    /// included) and shared with every other caller asking for the same values.
    pub fn get(&self, workspace_id: &str, values: &[(&str, &SecretString)]) -> Redactor {
        let key = self.key_of(workspace_id, values);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get(&key) {
            return entry.redactor.clone();
        }
        drop(entries);
        let mut redactor = Redactor::new();
        for (_, value) in values {
            redactor.add(value.expose_secret());
        }
        // Build the automaton now, once, rather than in every run that clones it.
        redactor.prepare();
        let names = values
            .iter()
            .map(|(name, _)| (workspace_id.to_owned(), (*name).to_owned()))
            .collect();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            key,
            Entry {
                redactor: redactor.clone(),
                names,
            },
        );
        redactor
    }

    /// Drops every entry holding secret `name` of `workspace_id` (replaced or deleted).
    pub fn forget(&self, workspace_id: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let stale: Vec<[u8; 32]> = entries
            .iter()
            .filter(|(_, e)| e.names.iter().any(|(w, n)| w == workspace_id && n == name))
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            entries.remove(&key);
        }
    }

    /// How many sets are kept.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for these names and values of `workspace_id`: names are part of the key so that
    /// [`Self::forget`] finds every entry a secret is in.
    fn key_of(&self, workspace_id: &str, values: &[(&str, &SecretString)]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_slice()).expect("HMAC takes any key");
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_le_bytes());
            mac.update(bytes);
        };
        field(workspace_id.as_bytes());
        for (name, value) in values {
            field(name.as_bytes());
            field(value.expose_secret().as_bytes());
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn one_entry_per_value_set_and_exact_masking() {
        let cache = RedactorCache::default();
        let (a, b) = (secret("alpha-value-1"), secret("bravo-value-2"));
        let first = cache.get("ws", &[("A", &a)]);
        let again = cache.get("ws", &[("A", &a)]);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            first.redact_str("x alpha-value-1 y"),
            again.redact_str("x alpha-value-1 y")
        );
        assert!(!first.redact_str("alpha-value-1").contains("alpha"));
        // A different value under the same name is another set: never served the old redactor.
        let replaced = cache.get("ws", &[("A", &b)]);
        assert_eq!(cache.len(), 2);
        assert!(!replaced.redact_str("bravo-value-2").contains("bravo"));
        assert!(replaced.redact_str("alpha-value-1").contains("alpha"));
    }

    #[test]
    fn forget_drops_the_sets_holding_a_secret() {
        let cache = RedactorCache::default();
        let (a, b) = (secret("alpha-value-1"), secret("bravo-value-2"));
        cache.get("ws", &[("A", &a)]);
        cache.get("ws", &[("A", &a), ("B", &b)]);
        cache.get("ws", &[("B", &b)]);
        cache.get("other", &[("A", &b)]);
        cache.forget("ws", "A");
        assert_eq!(cache.len(), 2, "only the sets holding ws/A are dropped");
        cache.forget("ws", "B");
        cache.forget("other", "A");
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded() {
        let cache = RedactorCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            let v = secret(&format!("value-number-{i}"));
            cache.get("ws", &[("A", &v)]);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
    }
}
