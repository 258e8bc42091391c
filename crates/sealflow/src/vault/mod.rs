//! The vault: master keys, envelope encryption of secret values, and the key check.
//!
//! Model (see `shared/design.md`): a 256-bit master key (KEK) comes from a [`MasterKeyProvider`].
//! Every secret version gets a fresh random data key (DEK); the value is sealed with the DEK and
//! the DEK is sealed ("wrapped") with the KEK, stored beside the KEK's id so that a rotation
//! rewraps DEKs without touching values. Several keys may be loaded during a rotation (see
//! [`Vault`]); any of them opens what it wrapped. The AEAD is XChaCha20-Poly1305: its 192-bit nonces
//! are safe to draw at random from the OS CSPRNG for every message. The associated data binds each
//! ciphertext to its workspace, name and version, so a blob moved to another row fails to open.
//!
//! Nothing here knows about HTTP or the database; plaintext only lives in `secrecy`/`zeroize`
//! types whose `Debug` prints nothing secret.

mod envelope;
mod master_key;

pub use envelope::{SealedSecret, SecretAad};
pub use master_key::{
    generate_master_key_base64, EnvKeyProvider, FileKeyProvider, MasterKey, MasterKeyProvider,
};

use std::sync::RwLock;

use secrecy::SecretString;
use thiserror::Error;
use zeroize::Zeroizing;

/// Failures of the vault layer. Messages never contain key material or plaintext.
#[derive(Debug, Error)]
pub enum VaultError {
    #[error("master key is invalid: {0}")]
    InvalidMasterKey(String),
    #[error(
        "master key file {path} has mode {mode:04o}: other users can read or change it; \
         run `chmod 600 {path}`"
    )]
    KeyFilePermissions { path: String, mode: u32 },
    #[error("cannot read master key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the master key does not match this database: data here was encrypted with master key {expected}, \
         but the configured key is {actual}; start with the original key (SEALFLOW_MASTER_KEY or \
         SEALFLOW_MASTER_KEY_FILE)"
    )]
    WrongMasterKey { expected: String, actual: String },
    #[error(
        "master key {0} is needed but not loaded; configure it as SEALFLOW_MASTER_KEY or \
         SEALFLOW_MASTER_KEY_NEXT (or their _FILE forms)"
    )]
    UnknownKeyId(String),
    #[error("decryption failed: the ciphertext is corrupt or does not belong here")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// The loaded key ring: every loaded master key opens what it wrapped, and the current one seals
/// new data and wraps new data keys. Which key is current is the database's to say (every instance
/// of a fleet follows it, see [`crate::domain::keyring`]); the vault only holds the keys.
///
/// Keys derived for other purposes (login tokens, webhook signing) come from the *derivation
/// root*, 32 random bytes stored wrapped like a data key, not from a master key, so they stay the
/// same through a rotation and on every instance.
pub struct Vault {
    keys: Vec<MasterKey>,
    /// Index into `keys` of the current key.
    current: RwLock<usize>,
    root: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key_ids", &self.key_ids())
            .field("current_key_id", &self.current_key_id())
            .finish_non_exhaustive()
    }
}

/// A fresh random derivation root wrapped by `kek`, for a database that has none yet.
pub fn wrap_fresh_root(kek: &MasterKey) -> Result<Vec<u8>, VaultError> {
    let mut root = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, root.as_mut_slice());
    envelope::wrap_root(kek, &root)
}

/// The value stored beside a key's id so a start can tell a wrong key from a right one.
pub fn key_check_value(key: &MasterKey) -> Result<Vec<u8>, VaultError> {
    envelope::seal_raw(
        key.bytes(),
        envelope::KEY_CHECK_PLAINTEXT,
        envelope::KEY_CHECK_AAD,
    )
}

/// Checks every loaded key that the database has registered against its check value.
///
/// A loaded key the database does not know is not checked (a next key before `sealflow key
/// add`); whether the keys the database needs are all loaded is the caller's question.
pub fn verify_key_checks(keys: &[MasterKey], stored: &[(String, Vec<u8>)]) -> Result<(), VaultError> {
    for key in keys {
        let Some((_, check)) = stored.iter().find(|(id, _)| id == key.id()) else {
            continue;
        };
        let opened = envelope::open_raw(key.bytes(), check, envelope::KEY_CHECK_AAD).map_err(|_| {
            VaultError::WrongMasterKey {
                expected: key.id().to_owned(),
                actual: format!("{} (same id, but its check value does not open)", key.id()),
            }
        })?;
        if opened.as_slice() != envelope::KEY_CHECK_PLAINTEXT {
            return Err(VaultError::Decrypt);
        }
    }
    Ok(())
}

impl Vault {
    /// A vault of one key with a fresh random derivation root (tests and tools that only seal and
    /// open; a server builds its vault with [`Vault::from_ring`]).
    pub fn new(key: MasterKey) -> Self {
        let mut root = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, root.as_mut_slice());
        Self {
            keys: vec![key],
            current: RwLock::new(0),
            root,
        }
    }

    /// The key ring of `keys` with `current` sealing new data, and the derivation root opened
    /// from its stored wrap (by key `root_kek_id`).
    pub fn from_ring(
        keys: Vec<MasterKey>,
        current: &str,
        root_kek_id: &str,
        wrapped_root: &[u8],
    ) -> Result<Self, VaultError> {
        let index = |id: &str| {
            keys.iter()
                .position(|k| k.id() == id)
                .ok_or_else(|| VaultError::UnknownKeyId(id.to_owned()))
        };
        let current = index(current)?;
        let root = envelope::open_root(&keys[index(root_kek_id)?], wrapped_root)?;
        Ok(Self {
            keys,
            current: RwLock::new(current),
            root,
        })
    }

    fn current_key(&self) -> &MasterKey {
        let i = *self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        &self.keys[i]
    }

    /// The id of the key that seals new data.
    pub fn current_key_id(&self) -> String {
        self.current_key().id().to_owned()
    }

    /// The ids of every loaded key.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id().to_owned()).collect()
    }

    /// True if the key with this id is loaded.
    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id() == id)
    }

    /// Makes `id` the key that seals new data (the database named it current).
    pub fn follow_current(&self, id: &str) -> Result<(), VaultError> {
        let i = self
            .keys
            .iter()
            .position(|k| k.id() == id)
            .ok_or_else(|| VaultError::UnknownKeyId(id.to_owned()))?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = i;
        Ok(())
    }

    /// A 256-bit key for another purpose, derived from the derivation root with HKDF-SHA256
    /// under the label `purpose` (domain separation: the derived key reveals nothing about the
    /// root or about keys derived for other labels). Every instance reads the same root from the
    /// database, so a fleet derives the same key, before and after a master-key rotation.
    pub fn derive_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sealflow derived key v1"), self.root.as_slice());
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(purpose.as_bytes(), out.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    fn key_for(&self, id: &str) -> Result<&MasterKey, VaultError> {
        self.keys
            .iter()
            .find(|k| k.id() == id)
            .ok_or_else(|| VaultError::UnknownKeyId(id.to_owned()))
    }

    /// Seals one secret value for the row named by `aad`, under the current key.
    pub fn seal(&self, aad: &SecretAad<'_>, plaintext: &SecretString) -> Result<SealedSecret, VaultError> {
        envelope::seal_secret(self.current_key(), aad, plaintext)
    }

    /// Rewraps a data key wrapped by `kek_id` under the current key: returns the current key's id
    /// and the new wrap. Only the data key is opened; the value stays sealed.
    pub fn rewrap(
        &self,
        aad: &SecretAad<'_>,
        kek_id: &str,
        wrapped_dek: &[u8],
    ) -> Result<(String, Vec<u8>), VaultError> {
        let new = self.current_key();
        let wrapped = envelope::rewrap_dek(self.key_for(kek_id)?, new, aad, wrapped_dek)?;
        Ok((new.id().to_owned(), wrapped))
    }

    /// Rewraps the stored derivation root (wrapped by `kek_id`) under the current key, checking
    /// that it is the root this vault holds.
    pub fn rewrap_root(&self, kek_id: &str, wrapped: &[u8]) -> Result<(String, Vec<u8>), VaultError> {
        let root = envelope::open_root(self.key_for(kek_id)?, wrapped)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            root.as_slice(),
            self.root.as_slice(),
        )) {
            return Err(VaultError::Decrypt);
        }
        let new = self.current_key();
        Ok((new.id().to_owned(), envelope::wrap_root(new, &root)?))
    }

    /// The key that signs calls to a signed webhook trigger: an HMAC-SHA256 of the workflow id and
    /// its current webhook token under the derivation root, as `whsec_` + base64url text.
    ///
    /// Derived, not stored: every instance reads the same root, so computes the same key; a
    /// master-key rotation leaves it as it is (the root is rewrapped, not replaced); rotating the
    /// webhook token rotates the signing key with it. The output of a PRF reveals nothing of the
    /// root.
    pub fn webhook_signing_key(&self, workflow_id: &str, webhook_token: &str) -> SecretString {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(self.root.as_slice()).expect("HMAC takes any key length");
        mac.update(b"sealflow webhook signing key v1\0");
        mac.update(workflow_id.as_bytes());
        mac.update(b"\0");
        mac.update(webhook_token.as_bytes());
        let mut derived = mac.finalize().into_bytes();
        // Built in place (capacity reserved) so no unzeroized copy of the text is left behind.
        let mut text = String::with_capacity(64);
        text.push_str("whsec_");
        URL_SAFE_NO_PAD.encode_string(derived.as_slice(), &mut text);
        let key = SecretString::from(text);
        zeroize::Zeroize::zeroize(derived.as_mut_slice());
        key
    }

    /// Opens a sealed value; fails (never returns garbage) if any byte or the context differs.
    pub fn open(&self, aad: &SecretAad<'_>, sealed: &SealedSecret) -> Result<SecretString, VaultError> {
        let key = self.key_for(&sealed.kek_id)?;
        envelope::open_secret(key, aad, sealed)
    }
}
