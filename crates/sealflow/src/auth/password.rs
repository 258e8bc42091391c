//! Password hashing with argon2id.
//!
//! Parameters: memory 19 MiB (19,456 KiB), 2 iterations, 1 lane, 32-byte output, 16-byte random
//! salt — the OWASP password-storage recommendation for argon2id. They are written into each PHC
//! string, so raising them later keeps old hashes verifiable. Hashing is CPU- and memory-heavy,
//! so it runs in `spawn_blocking`, and at most [`MAX_CONCURRENT`] hashes run at once (a flood of
//! logins cannot take `MAX_CONCURRENT × 19 MiB` of memory or starve the async workers).
//!
//! An unknown email is verified against a dummy hash made with the same parameters, so it costs
//! the same time as a wrong password and the two cannot be told apart.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Memory cost in KiB.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;
/// Hashes computed at once; further callers wait their turn.
pub const MAX_CONCURRENT: usize = 4;
/// Password length limits, in characters (the upper cap bounds hashing work per request).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, Some(32)).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password no one knows, used when the email is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = crate::ids::random_base62(32);
        argon2()
            .hash_password(random.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hashing a dummy password")
            .to_string()
    })
}

/// Checks the length rules; the message never contains the password.
pub fn check_password_rules(password: &SecretString) -> Result<(), String> {
    let chars = password.expose_secret().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// Hashes and verifies passwords off the async workers, a bounded number at a time.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
        }
    }
}

impl Passwords {
    /// Makes an argon2id PHC string for `password`.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            argon2()
                .hash_password(
                    password.expose_secret().as_bytes(),
                    &SaltString::generate(&mut OsRng),
                )
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
        })
        .await?
    }

    /// True if `password` matches `stored`; with `None` (unknown user) a dummy hash is checked so
    /// the answer takes as long, and is always false.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            let known = stored.is_some();
            let text = stored.unwrap_or_else(|| dummy_hash().to_owned());
            let parsed = PasswordHash::new(&text)
                .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
            let matches = argon2()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await?
    }

    /// Computes the dummy hash now, so the first unknown-email login is not the slow one.
    pub async fn warm_up(&self) {
        let _ = tokio::task::spawn_blocking(dummy_hash).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let p = Passwords::default();
        let hash = p.hash(SecretString::from("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(p
            .verify(SecretString::from("correct horse"), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!p
            .verify(SecretString::from("wrong horse"), Some(hash))
            .await
            .unwrap());
        assert!(!p.verify(SecretString::from("correct horse"), None).await.unwrap());
    }

    #[test]
    fn password_rules_bound_the_length() {
        assert!(check_password_rules(&SecretString::from("short")).is_err());
        assert!(check_password_rules(&SecretString::from("long enough")).is_ok());
        assert!(check_password_rules(&SecretString::from("x".repeat(1025))).is_err());
    }
}
