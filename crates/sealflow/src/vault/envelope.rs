//! Envelope encryption with XChaCha20-Poly1305.
//!
//! Blob format (both the value and the wrapped data key): `0x01 || nonce (24 bytes) || ciphertext
//! and tag`. The leading byte versions the format so a later scheme can be told apart.

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{MasterKey, VaultError};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

pub(super) const KEY_CHECK_PLAINTEXT: &[u8] = b"sealflow key check v1";
pub(super) const KEY_CHECK_AAD: &[u8] = b"sealflow/key-check/v1";

/// What a sealed secret is bound to. Changing any field makes the ciphertext fail to open.
#[derive(Debug, Clone, Copy)]
pub struct SecretAad<'a> {
    pub workspace_id: &'a str,
    pub name: &'a str,
    pub version: i64,
}

impl SecretAad<'_> {
    /// Length-prefixed encoding, so no two different contexts encode to the same bytes.
    fn encode(&self, purpose: &str, kek_id: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        for part in [purpose, self.workspace_id, self.name, kek_id.unwrap_or("")] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

/// A sealed value as stored: the value under its DEK, and the DEK under master key `kek_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub kek_id: String,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("kek_id", &self.kek_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

pub(super) fn seal_raw(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::Encrypt)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(super) fn open_raw(key: &[u8; 32], blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if blob.len() < 1 + NONCE_LEN || blob[0] != FORMAT_V1 {
        return Err(VaultError::Decrypt);
    }
    let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt)
}

pub(super) fn seal_secret(
    kek: &MasterKey,
    aad: &SecretAad<'_>,
    plaintext: &SecretString,
) -> Result<SealedSecret, VaultError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(dek.as_mut_slice());
    let ciphertext = seal_raw(
        &dek,
        plaintext.expose_secret().as_bytes(),
        &aad.encode("value", None),
    )?;
    let wrapped_dek = seal_raw(kek.bytes(), dek.as_slice(), &aad.encode("dek", Some(kek.id())))?;
    Ok(SealedSecret {
        kek_id: kek.id().to_owned(),
        wrapped_dek,
        ciphertext,
    })
}

pub(super) fn open_secret(
    kek: &MasterKey,
    aad: &SecretAad<'_>,
    sealed: &SealedSecret,
) -> Result<SecretString, VaultError> {
    let dek = open_raw(
        kek.bytes(),
        &sealed.wrapped_dek,
        &aad.encode("dek", Some(kek.id())),
    )?;
    let dek: &[u8; 32] = dek.as_slice().try_into().map_err(|_| VaultError::Decrypt)?;
    let plain = open_raw(dek, &sealed.ciphertext, &aad.encode("value", None))?;
    let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Decrypt)?;
    Ok(SecretString::from(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::Vault;
    use super::*;

    fn aad<'a>(ws: &'a str, name: &'a str, version: i64) -> SecretAad<'a> {
        SecretAad {
            workspace_id: ws,
            name,
            version,
        }
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_context() {
        let vault = Vault::new(MasterKey::generate());
        let value = SecretString::from("hunter2-correct-horse".to_owned());
        let sealed = vault.seal(&aad("ws_a", "TOKEN", 1), &value).unwrap();
        let opened = vault.open(&aad("ws_a", "TOKEN", 1), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "hunter2-correct-horse");
        for other in [
            aad("ws_b", "TOKEN", 1),
            aad("ws_a", "OTHER", 1),
            aad("ws_a", "TOKEN", 2),
        ] {
            assert!(
                matches!(vault.open(&other, &sealed), Err(VaultError::Decrypt)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let vault = Vault::new(MasterKey::generate());
        let ctx = aad("ws_a", "TOKEN", 1);
        let sealed = vault.seal(&ctx, &SecretString::from("v".repeat(100))).unwrap();
        for i in 0..sealed.ciphertext.len() * 8 {
            let mut bad = sealed.clone();
            bad.ciphertext[i / 8] ^= 1 << (i % 8);
            assert!(vault.open(&ctx, &bad).is_err(), "bit {i} of the value");
        }
        for i in 0..sealed.wrapped_dek.len() * 8 {
            let mut bad = sealed.clone();
            bad.wrapped_dek[i / 8] ^= 1 << (i % 8);
            assert!(vault.open(&ctx, &bad).is_err(), "bit {i} of the wrapped key");
        }
    }

    #[test]
    fn the_same_value_seals_to_different_bytes_each_time() {
        let vault = Vault::new(MasterKey::generate());
        let ctx = aad("ws_a", "TOKEN", 1);
        let value = SecretString::from("same".to_owned());
        assert_ne!(
            vault.seal(&ctx, &value).unwrap(),
            vault.seal(&ctx, &value).unwrap()
        );
    }

    #[test]
    fn the_key_check_accepts_the_right_key_and_names_the_wrong_one() {
        let right = Vault::new(MasterKey::generate());
        let stored = vec![(
            right.primary_key_id().to_owned(),
            right.key_check_value().unwrap(),
        )];
        right.verify_key_checks(&stored).unwrap();
        right.verify_key_checks(&[]).unwrap();
        let wrong = Vault::new(MasterKey::generate());
        let err = wrong.verify_key_checks(&stored).unwrap_err().to_string();
        assert!(
            err.contains(right.primary_key_id()) && err.contains(wrong.primary_key_id()),
            "{err}"
        );
    }
}
