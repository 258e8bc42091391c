//! JWT verification: HS256 with a shared secret, or RS256 / ES256 / EdDSA with a public key.
//!
//! Exactly one algorithm is accepted, the one the configured key implies, so a token signed with
//! another algorithm (including `none`, or HS256 "signed" with a public key) is refused. `exp` is
//! required; a configured issuer or audience makes `iss` / `aud` required too (a token that
//! leaves the claim out is refused, not waved through); `nbf`, when present, is honoured. Clock
//! leeway is [`LEEWAY_SECS`] for `exp` and `nbf`. The workspace and role claim names are
//! configurable so tokens from an external identity provider can be used.

use jsonwebtoken::{decode, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::AuthError;
use crate::store::Role;

/// Where verification keys and rules come from.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(SecretString),
    /// A PEM public key (RSA, EC P-256 or Ed25519); the algorithm follows the key type.
    PublicPem(Vec<u8>),
}

#[derive(Clone)]
pub struct JwtConfig {
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub workspace_claim: String,
    pub role_claim: String,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.key {
            JwtKey::Secret(_) => "hs256-secret",
            JwtKey::PublicPem(_) => "public-key",
        };
        f.debug_struct("JwtConfig")
            .field("key", &kind)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The claims sealflow uses.
#[derive(Debug, Clone)]
pub struct Claims {
    pub sub: String,
    pub workspace: String,
    pub role: Role,
}

/// Clock skew tolerated between the token issuer and this server, in seconds.
pub const LEEWAY_SECS: u64 = 30;

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    workspace_claim: String,
    role_claim: String,
}

impl JwtVerifier {
    /// Builds a verifier; fails if the key cannot be used (e.g. a PEM of an unsupported type).
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        let (key, alg) = match &config.key {
            JwtKey::Secret(s) => {
                if s.expose_secret().len() < 32 {
                    return Err("SEALFLOW_JWT_SECRET must be at least 32 bytes".into());
                }
                (
                    DecodingKey::from_secret(s.expose_secret().as_bytes()),
                    Algorithm::HS256,
                )
            }
            JwtKey::PublicPem(pem) => {
                if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                    (k, Algorithm::RS256)
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                    (k, Algorithm::ES256)
                } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
                    (k, Algorithm::EdDSA)
                } else {
                    return Err("the JWT public key is not an RSA, EC or Ed25519 PEM public key".into());
                }
            }
        };
        let mut validation = Validation::new(alg);
        let mut required = vec!["exp"];
        if config.issuer.is_some() {
            required.push("iss");
        }
        if config.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        match &config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self {
            key,
            validation,
            workspace_claim: config.workspace_claim.clone(),
            role_claim: config.role_claim.clone(),
        })
    }

    /// Verifies signature, algorithm and registered claims, then reads ours.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = decode::<Map<String, Value>>(token, &self.key, &self.validation).map_err(|e| {
            AuthError::Invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                    "iss" => "the token lacks the required iss claim",
                    "aud" => "the token lacks the required aud claim",
                    _ => "the token lacks the required exp claim",
                },
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                _ => "the token is malformed or invalid",
            })
        })?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let sub = text("sub").ok_or(AuthError::Invalid("the token lacks a sub claim"))?;
        let workspace =
            text(&self.workspace_claim).ok_or(AuthError::Invalid("the token lacks a workspace claim"))?;
        let role = text(&self.role_claim)
            .and_then(|r| Role::parse(&r))
            .ok_or(AuthError::Invalid("the token lacks a valid role claim"))?;
        Ok(Claims { sub, workspace, role })
    }
}
