//! JWTs that sealflow itself signs at `POST /api/auth/login`.
//!
//! HS256 with a key derived by HKDF ([`crate::vault::Vault::derive_key`], label
//! `jwt-login-signing`) from the vault's derivation root, a random value stored in the database
//! wrapped by the master key. Why derived and not generated per key: every instance of a fleet
//! reads the same root, so each derives the same signing key with no new secret to distribute,
//! back up or keep in step; the label separates it from every other use of the root; and a
//! master-key rotation rewraps the root rather than changing it, so login tokens survive it.
//!
//! Our tokens carry the header `kid` [`KID`], `iss` [`ISSUER`] and `aud` [`AUDIENCE`], so they are
//! told apart from an external identity provider's tokens before any signature check, and an
//! external token can never be accepted as ours (or ours as external). The role in the token is
//! informational: [`super::Authenticator`] reads the user's current role from the database on
//! every request, so a demotion or removal applies at once.

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::store::Role;

pub const KID: &str = "sealflow-login-v1";
pub const ISSUER: &str = "sealflow";
pub const AUDIENCE: &str = "sealflow-api";
/// How long a login token is valid.
pub const TOKEN_TTL_SECS: i64 = 60 * 60;

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginClaims {
    pub sub: String,
    pub workspace: String,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct LoginTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl LoginTokens {
    pub fn new(key: &[u8; 32]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// True if the token claims to be one of ours (by its `kid` header); it still has to verify.
    pub fn is_ours(token: &str) -> bool {
        decode_header(token).is_ok_and(|h| h.kid.as_deref() == Some(KID))
    }

    /// Signs a token for a user acting in one workspace.
    pub fn issue(&self, user_id: &str, workspace_id: &str, role: Role) -> Result<(String, i64), AuthError> {
        let now = crate::ids::now_ms() / 1000;
        let claims = LoginClaims {
            sub: user_id.to_owned(),
            workspace: workspace_id.to_owned(),
            role: role.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.to_owned());
        let token = encode(&header, &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid("could not sign the login token"))?;
        Ok((token, claims.exp))
    }

    pub fn verify(&self, token: &str) -> Result<LoginClaims, AuthError> {
        decode::<LoginClaims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| {
                AuthError::Invalid(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    _ => "the token is malformed or invalid",
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_tokens_verify_only_under_our_key() {
        let ours = LoginTokens::new(&[7; 32]);
        let other = LoginTokens::new(&[8; 32]);
        let (token, _) = ours.issue("usr_1", "ws_1", Role::Member).unwrap();
        assert!(LoginTokens::is_ours(&token));
        assert_eq!(ours.verify(&token).unwrap().sub, "usr_1");
        assert!(other.verify(&token).is_err());
    }
}
