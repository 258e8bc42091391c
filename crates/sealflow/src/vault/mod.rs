//! The vault: master keys, envelope encryption of secret values, and the key check.
//!
//! Model (see `shared/design.md`): a 256-bit master key (KEK) comes from a [`MasterKeyProvider`].
//! Every secret version gets a fresh random data key (DEK); the value is sealed with the DEK and
//! the DEK is sealed ("wrapped") with the KEK, stored beside the KEK's id so that rotation can
//! rewrap DEKs later without touching values. The AEAD is XChaCha20-Poly1305: its 192-bit nonces
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

use secrecy::SecretString;
use thiserror::Error;

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
    #[error("data was sealed with master key {0}, which is not loaded")]
    UnknownKeyId(String),
    #[error("decryption failed: the ciphertext is corrupt or does not belong here")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// The loaded key ring: the primary master key seals new data; every loaded key can open.
pub struct Vault {
    primary: MasterKey,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("primary_key_id", &self.primary.id())
            .finish()
    }
}

impl Vault {
    pub fn new(primary: MasterKey) -> Self {
        Self { primary }
    }

    /// The id of the key that seals new data.
    pub fn primary_key_id(&self) -> &str {
        self.primary.id()
    }

    /// A 256-bit key for another purpose, derived from the primary master key with HKDF-SHA256
    /// under the label `purpose` (domain separation: the derived key reveals nothing about the
    /// master key or about keys derived for other labels). Every instance sharing the master key
    /// derives the same key, so a fleet needs no extra shared secret.
    pub fn derive_key(&self, purpose: &str) -> zeroize::Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sealflow derived key v1"), self.primary.bytes());
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        hk.expand(purpose.as_bytes(), out.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    fn key_for(&self, id: &str) -> Result<&MasterKey, VaultError> {
        if id == self.primary.id() {
            Ok(&self.primary)
        } else {
            Err(VaultError::UnknownKeyId(id.to_owned()))
        }
    }

    /// The value stored beside a key id so the next start can tell a wrong key from a right one.
    pub fn key_check_value(&self) -> Result<Vec<u8>, VaultError> {
        envelope::seal_raw(
            self.primary.bytes(),
            envelope::KEY_CHECK_PLAINTEXT,
            envelope::KEY_CHECK_AAD,
        )
    }

    /// Checks the configured key against the key-check rows a database already holds.
    ///
    /// An empty list means a new database (nothing to check). Otherwise the primary key must be
    /// one of the stored ids and must open its check value.
    pub fn verify_key_checks(&self, stored: &[(String, Vec<u8>)]) -> Result<(), VaultError> {
        if stored.is_empty() {
            return Ok(());
        }
        let Some((_, check)) = stored.iter().find(|(id, _)| id == self.primary.id()) else {
            return Err(VaultError::WrongMasterKey {
                expected: stored
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                actual: self.primary.id().to_owned(),
            });
        };
        let opened =
            envelope::open_raw(self.primary.bytes(), check, envelope::KEY_CHECK_AAD).map_err(|_| {
                VaultError::WrongMasterKey {
                    expected: self.primary.id().to_owned(),
                    actual: format!(
                        "{} (same id, but its check value does not open)",
                        self.primary.id()
                    ),
                }
            })?;
        if opened.as_slice() != envelope::KEY_CHECK_PLAINTEXT {
            return Err(VaultError::Decrypt);
        }
        Ok(())
    }

    /// Seals one secret value for the row named by `aad`.
    pub fn seal(
        &self,
        aad: &SecretAad<'_>,
        plaintext: &secrecy::SecretString,
    ) -> Result<SealedSecret, VaultError> {
        envelope::seal_secret(&self.primary, aad, plaintext)
    }

    /// The key that signs calls to a signed webhook trigger: an HMAC-SHA256 of the workflow id and
    /// its current webhook token under the primary master key, as `whsec_` + base64url text.
    ///
    /// Derived, not stored: every instance sharing the master key computes the same key, nothing
    /// new is kept in the database, and rotating the webhook token rotates the signing key with
    /// it. The output of a PRF reveals nothing of the master key. When master-key rotation is
    /// built, it must keep deriving with the key these were made under, or rotate webhook URLs.
    pub fn webhook_signing_key(&self, workflow_id: &str, webhook_token: &str) -> SecretString {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(self.primary.bytes()).expect("HMAC takes any key length");
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
    pub fn open(
        &self,
        aad: &SecretAad<'_>,
        sealed: &SealedSecret,
    ) -> Result<secrecy::SecretString, VaultError> {
        let key = self.key_for(&sealed.kek_id)?;
        envelope::open_secret(key, aad, sealed)
    }
}
