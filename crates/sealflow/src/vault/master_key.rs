//! Master keys (KEKs) and the providers that load them.
//!
//! A provider is a trait so a KMS or Vault-transit provider can be added beside the env-var and
//! file providers without touching callers. Key material is held in `Zeroizing` memory and never
//! printed: `Debug` shows only the key id.

use std::path::{Path, PathBuf};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use rand::{rngs::OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::VaultError;

/// Length of a master key in bytes (256 bits).
pub const MASTER_KEY_LEN: usize = 32;

/// A 256-bit key-encryption key with its public id.
///
/// The id is derived from the key by a domain-separated SHA-256, so the same key always has the
/// same id on every instance, and the id reveals nothing usable about the key.
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let digest = Sha256::new()
            .chain_update(b"sealflow master key id v1\0")
            .chain_update(bytes.as_slice())
            .finalize();
        let id = format!("mk_{}", hex::encode(&digest[..8]));
        Self { id, bytes }
    }

    /// Parses base64 text (surrounding whitespace ignored) holding exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            VaultError::InvalidMasterKey("it is not valid base64 (use `sealflow key generate`)".into())
        })?);
        let bytes: [u8; MASTER_KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            VaultError::InvalidMasterKey(format!(
                "it decodes to {} bytes, but a master key is {MASTER_KEY_LEN} bytes",
                decoded.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// The key as base64 text, for writing a new key file; the caller must not log it.
    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }
}

/// Where a master key comes from.
pub trait MasterKeyProvider: Send + Sync {
    /// Loads the key; fails with a message that says what is wrong and where to look.
    fn load(&self) -> Result<MasterKey, VaultError>;
    /// Names the source for log lines (never the key itself).
    fn describe(&self) -> String;
}

/// A key given as base64 text, e.g. from `SEALFLOW_MASTER_KEY`.
pub struct EnvKeyProvider(pub SecretString);

impl MasterKeyProvider for EnvKeyProvider {
    fn load(&self) -> Result<MasterKey, VaultError> {
        MasterKey::from_base64(self.0.expose_secret())
    }
    fn describe(&self) -> String {
        "SEALFLOW_MASTER_KEY".into()
    }
}

/// A key in a file holding its base64 text.
pub struct FileKeyProvider(pub PathBuf);

impl MasterKeyProvider for FileKeyProvider {
    /// Refuses a key file that users other than its owner and group may use (any "other"
    /// permission bit, e.g. mode 0644), naming the mode; a group-readable file (0640, a common
    /// way to hand a key to a service account) only warns.
    fn load(&self) -> Result<MasterKey, VaultError> {
        let path = self.0.display().to_string();
        let mode = crate::files::mode_of(&self.0).map_err(|source| VaultError::KeyFile {
            path: path.clone(),
            source,
        })?;
        if mode & 0o007 != 0 {
            return Err(VaultError::KeyFilePermissions { path, mode });
        }
        if mode & 0o070 != 0 {
            tracing::warn!(
                path = %path,
                mode = %format!("{mode:04o}"),
                "the master key file is accessible to its group; chmod 600 it unless that is intended"
            );
        }
        let text =
            Zeroizing::new(
                std::fs::read_to_string(&self.0).map_err(|source| VaultError::KeyFile {
                    path: self.0.display().to_string(),
                    source,
                })?,
            );
        MasterKey::from_base64(&text)
    }
    fn describe(&self) -> String {
        format!("file {}", self.0.display())
    }
}

impl FileKeyProvider {
    /// Creates a new random key file with mode 0600; refuses to overwrite an existing file.
    pub fn create_new(path: &Path) -> Result<MasterKey, VaultError> {
        use std::io::Write;
        let key = MasterKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let io_err = |source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let mut file = options.open(path).map_err(io_err)?;
        let text = key.to_base64();
        file.write_all(text.as_bytes()).map_err(io_err)?;
        file.write_all(b"\n").map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(key)
    }
}

/// A fresh master key as base64 text (for `sealflow key generate`).
pub fn generate_master_key_base64() -> Zeroizing<String> {
    MasterKey::generate().to_base64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_is_stable_and_debug_shows_no_key_bytes() {
        let text = generate_master_key_base64();
        let a = MasterKey::from_base64(&text).unwrap();
        let b = MasterKey::from_base64(&format!("  {}\n", &*text)).unwrap();
        assert_eq!(a.id(), b.id());
        let debug = format!("{a:?}");
        assert!(debug.contains(a.id()));
        assert!(!debug.contains(text.as_str()));
    }

    #[test]
    fn short_or_non_base64_keys_are_refused_with_the_reason() {
        let err = MasterKey::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert!(err.contains("5 bytes"), "{err}");
        let err = MasterKey::from_base64("not base64!").unwrap_err().to_string();
        assert!(err.contains("base64"), "{err}");
    }
}
