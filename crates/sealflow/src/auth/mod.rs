//! Authentication: who is calling, in which workspace, with which role.
//!
//! A bearer token is either an API key (`sf_live_…`, looked up by its SHA-256) or a JWT verified
//! with the configured key, or a login JWT that sealflow signed itself ([`login_token`], told apart
//! by its `kid`). All end as a [`Principal`]; handlers ask it for permission with
//! [`Principal::require`].

pub mod apikey;
pub mod jwt;
pub mod login_token;
pub mod password;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::store::{Role, Store, StoreError};

pub use apikey::{issue_api_key, IssuedKey};
pub use jwt::{JwtConfig, JwtVerifier};
pub use login_token::LoginTokens;
pub use password::Passwords;

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    ApiKey(String),
    User(String),
}

/// The authenticated caller: identity, the one workspace it acts in, and its role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: Subject,
    pub workspace_id: String,
    pub role: Role,
}

/// What a call needs, checked against the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET calls: every role.
    Read,
    /// Creating, changing, deleting and running: `member` and `admin`.
    Write,
    /// Managing API keys: `admin` only.
    Admin,
}

impl Principal {
    /// Who this is in the audit trail: `api_key:<id>` or `user:<id>`.
    pub fn actor(&self) -> String {
        match &self.subject {
            Subject::ApiKey(id) => format!("api_key:{id}"),
            Subject::User(id) => format!("user:{id}"),
        }
    }

    /// Ok if the role allows `access`; otherwise a 403-class error naming the role.
    pub fn require(&self, access: Access) -> Result<(), AuthError> {
        let needed = match access {
            Access::Read => Role::Readonly,
            Access::Write => Role::Member,
            Access::Admin => Role::Admin,
        };
        if self.role >= needed {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                role: self.role,
                needed,
            })
        }
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("missing credentials: send Authorization: Bearer <API key or JWT>")]
    Missing,
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    #[error("the {role} role may not do this (needs {needed})")]
    Forbidden { role: Role, needed: Role },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns bearer tokens into principals.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: Option<JwtVerifier>,
    login: LoginTokens,
    uses: Arc<Mutex<KeyUses>>,
}

/// API-key uses not yet written, added up per key: key id → (uses, latest use in ms).
#[derive(Default)]
struct KeyUses {
    pending: HashMap<String, (i64, i64)>,
    /// A task is writing them; it takes what piles up meanwhile before it ends.
    writing: bool,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, jwt: Option<JwtVerifier>, login: LoginTokens) -> Self {
        Self {
            store,
            jwt,
            login,
            uses: Arc::default(),
        }
    }

    /// The signer of login tokens.
    pub fn login_tokens(&self) -> &LoginTokens {
        &self.login
    }

    /// A signed-in user acting in `workspace_id`, with the role the database holds now; `None`
    /// if the user is not (or no longer) a member there.
    pub async fn user_principal(
        &self,
        user_id: &str,
        workspace_id: &str,
    ) -> Result<Option<Principal>, AuthError> {
        Ok(self
            .store
            .membership_role(user_id, workspace_id)
            .await?
            .map(|role| Principal {
                subject: Subject::User(user_id.to_owned()),
                workspace_id: workspace_id.to_owned(),
                role,
            }))
    }

    /// Authenticates the value of an `Authorization` header.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Invalid(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        if token.starts_with(apikey::KEY_PREFIX) {
            self.api_key(token).await
        } else if LoginTokens::is_ours(token) {
            let claims = self.login.verify(token)?;
            self.user_principal(&claims.sub, &claims.workspace)
                .await?
                .ok_or(AuthError::Invalid(
                    "the user is no longer a member of the token's workspace",
                ))
        } else if let Some(jwt) = &self.jwt {
            let claims = jwt.verify(token)?;
            let workspace = self
                .store
                .find_workspace(&claims.workspace)
                .await?
                .ok_or(AuthError::Invalid("the token's workspace does not exist"))?;
            Ok(Principal {
                subject: Subject::User(claims.sub),
                workspace_id: workspace.id,
                role: claims.role,
            })
        } else {
            Err(AuthError::Invalid("unknown API key"))
        }
    }

    async fn api_key(&self, token: &str) -> Result<Principal, AuthError> {
        let hash = apikey::hash_key(token);
        let record = self
            .store
            .find_active_api_key(&hash)
            .await?
            .filter(|r| apikey::hashes_match(&r.key_hash, &hash))
            .ok_or(AuthError::Invalid("unknown or revoked API key"))?;
        self.count_use(&record.id);
        Ok(Principal {
            subject: Subject::ApiKey(record.id),
            workspace_id: record.workspace_id,
            role: record.role,
        })
    }

    /// Counts a use of an API key. Usage counters are bookkeeping: the request need not wait for
    /// the write. Uses are added up per key while a write is under way, so however fast requests
    /// come there is one write task, and one write per key each time it comes round (a write per
    /// request queued up faster than SQLite's group commit took them under load: thousands of
    /// pending tasks, tens of MB of peak RSS, and writer time the runs were waiting for).
    fn count_use(&self, key_id: &str) {
        let now = crate::ids::now_ms();
        let start = {
            let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            match uses.pending.get_mut(key_id) {
                Some((n, at)) => {
                    *n += 1;
                    *at = (*at).max(now);
                }
                None => {
                    uses.pending.insert(key_id.to_owned(), (1, now));
                }
            }
            !std::mem::replace(&mut uses.writing, true)
        };
        if !start {
            return;
        }
        let (store, uses) = (self.store.clone(), self.uses.clone());
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut uses = uses.lock().unwrap_or_else(|e| e.into_inner());
                    if uses.pending.is_empty() {
                        uses.writing = false;
                        return;
                    }
                    std::mem::take(&mut uses.pending)
                };
                for (id, (n, at)) in batch {
                    if let Err(e) = store.touch_api_key(&id, n, at).await {
                        tracing::warn!(error = %e, key_id = %id, "could not record API key use");
                    }
                }
            }
        });
    }
}
