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

/// Unwraps a secret's data key under `old` and wraps it again under `new`; the value's
/// ciphertext is not needed and does not change. The key is only ever held in zeroizing memory.
pub(super) fn rewrap_dek(
    old: &MasterKey,
    new: &MasterKey,
    aad: &SecretAad<'_>,
    wrapped_dek: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let dek = open_raw(old.bytes(), wrapped_dek, &aad.encode("dek", Some(old.id())))?;
    if dek.len() != 32 {
        return Err(VaultError::Decrypt);
    }
    seal_raw(new.bytes(), dek.as_slice(), &aad.encode("dek", Some(new.id())))
}

/// The associated data of the wrapped derivation root: its purpose and the wrapping key's id.
fn root_aad(kek_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for part in ["derivation-root", kek_id] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

pub(super) fn wrap_root(kek: &MasterKey, root: &[u8; 32]) -> Result<Vec<u8>, VaultError> {
    seal_raw(kek.bytes(), root, &root_aad(kek.id()))
}

pub(super) fn open_root(kek: &MasterKey, wrapped: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let opened = open_raw(kek.bytes(), wrapped, &root_aad(kek.id()))?;
    let mut root = Zeroizing::new([0u8; 32]);
    if opened.len() != root.len() {
        return Err(VaultError::Decrypt);
    }
    root.copy_from_slice(&opened);
    Ok(root)
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
    fn the_key_check_accepts_the_right_key_and_refuses_a_check_it_cannot_open() {
        use super::super::{key_check_value, verify_key_checks};
        let right = [MasterKey::generate()];
        let id = right[0].id().to_owned();
        let stored = vec![(id.clone(), key_check_value(&right[0]).unwrap())];
        verify_key_checks(&right, &stored).unwrap();
        verify_key_checks(&right, &[]).unwrap();
        let forged = vec![(id.clone(), key_check_value(&MasterKey::generate()).unwrap())];
        let err = verify_key_checks(&right, &forged).unwrap_err().to_string();
        assert!(err.contains(&id) && err.contains("does not open"), "{err}");
    }

    /// Two keys from the same random bytes, so a test can hold one key in two vaults.
    fn key_pair() -> (MasterKey, MasterKey) {
        let text = super::super::generate_master_key_base64();
        (
            MasterKey::from_base64(&text).unwrap(),
            MasterKey::from_base64(&text).unwrap(),
        )
    }

    #[test]
    fn a_rewrapped_data_key_opens_under_the_new_key_and_the_value_ciphertext_is_unchanged() {
        let (old_a, old_b) = key_pair();
        let (new_a, new_b) = key_pair();
        let old_id = old_a.id().to_owned();
        let new_id = new_a.id().to_owned();
        let before = Vault::new(old_a);
        let root = wrap_root(&old_b, &[7u8; 32]).unwrap();
        let ring = Vault::from_ring(vec![old_b, new_b], &old_id, &old_id, &root).unwrap();
        let ctx = aad("ws_a", "TOKEN", 3);
        let sealed = before
            .seal(&ctx, &SecretString::from("rotate-me".to_owned()))
            .unwrap();
        ring.follow_current(&new_id).unwrap();
        let (kek_id, wrapped_dek) = ring.rewrap(&ctx, &sealed.kek_id, &sealed.wrapped_dek).unwrap();
        assert_eq!(kek_id, new_id);
        let rewrapped = SealedSecret {
            kek_id,
            wrapped_dek,
            ciphertext: sealed.ciphertext.clone(),
        };
        assert_eq!(ring.open(&ctx, &rewrapped).unwrap().expose_secret(), "rotate-me");
        let only_new = Vault::new(new_a);
        assert_eq!(
            only_new.open(&ctx, &rewrapped).unwrap().expose_secret(),
            "rotate-me"
        );
        assert!(
            ring.rewrap(&aad("ws_a", "TOKEN", 4), &sealed.kek_id, &sealed.wrapped_dek)
                .is_err(),
            "a rewrap checks the data key's context"
        );
    }

    #[test]
    fn derived_keys_stay_the_same_when_the_root_is_rewrapped() {
        let (old_a, old_b) = key_pair();
        let (new_a, new_b) = key_pair();
        let (old_id, new_id) = (old_a.id().to_owned(), new_a.id().to_owned());
        let wrapped = super::super::wrap_fresh_root(&old_a).unwrap();
        let before = Vault::from_ring(vec![old_a, new_a], &old_id, &old_id, &wrapped).unwrap();
        before.follow_current(&new_id).unwrap();
        let (kek_id, rewrapped) = before.rewrap_root(&old_id, &wrapped).unwrap();
        assert_eq!(kek_id, new_id);
        let after = Vault::from_ring(vec![new_b], &new_id, &new_id, &rewrapped).unwrap();
        assert_eq!(
            *before.derive_key("jwt-login-signing"),
            *after.derive_key("jwt-login-signing")
        );
        assert_ne!(*after.derive_key("jwt-login-signing"), *after.derive_key("other"));
        assert_eq!(
            before.webhook_signing_key("wf_1", "tok").expose_secret(),
            after.webhook_signing_key("wf_1", "tok").expose_secret()
        );
        assert!(Vault::from_ring(vec![old_b], &old_id, &new_id, &rewrapped).is_err());
    }
}
