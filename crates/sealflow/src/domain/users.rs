//! Users: accounts with argon2id passwords, their role in each workspace, sign-in, and the
//! dashboard's sessions.
//!
//! Rules: emails are trimmed and lowercased, 3 to 254 characters with one `@`; passwords are 8 to
//! 1,024 characters ([`crate::auth::password`]). A wrong password and an unknown email give the
//! same error after the same work. A workspace always keeps at least one admin. Sessions are
//! random 43-character tokens of which only the SHA-256 is stored; they last [`SESSION_TTL_MS`]
//! and end at sign-out (the row is deleted).

use std::sync::Arc;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::auth::password::{check_password_rules, Passwords};
use crate::ids::{new_id, now_ms, random_base62};
use crate::store::{MemberRecord, Membership, Role, SessionRecord, Store, StoreError, UserRecord};

/// How long a dashboard session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, Error)]
pub enum UsersError {
    #[error("{0}")]
    Invalid(String),
    /// The one answer for an unknown email and a wrong password.
    #[error("invalid email or password")]
    BadCredentials,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hashing(#[source] anyhow::Error),
}

/// Outcome of adding a user to a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedUser {
    /// A new account was made.
    Created,
    /// The email had an account already; it joined the workspace (or its role there changed).
    Joined,
}

/// A signed-in user and the workspaces they may act in.
#[derive(Debug)]
pub struct SignedIn {
    pub user: UserRecord,
    pub workspaces: Vec<Membership>,
}

/// A new session: the cookie token (shown to the browser only) and the stored record.
pub struct NewSession {
    pub token: SecretString,
    pub record: SessionRecord,
}

pub struct UsersService {
    store: Arc<dyn Store>,
    passwords: Passwords,
}

/// Trims and lowercases an email and checks its shape.
pub fn normalize_email(email: &str) -> Result<String, UsersError> {
    let email = email.trim().to_lowercase();
    let ok = email.chars().count() <= MAX_EMAIL_CHARS
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(UsersError::Invalid(format!(
            "email must be an address like name@example.com (at most {MAX_EMAIL_CHARS} characters)"
        )))
    }
}

/// Hex SHA-256 of a session token (what the database holds).
pub fn session_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl UsersService {
    pub fn new(store: Arc<dyn Store>, passwords: Passwords) -> Self {
        Self { store, passwords }
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Makes an account (when the email has none; then `password` is required) and gives it
    /// `role` in the workspace.
    pub async fn add_to_workspace(
        &self,
        email: &str,
        password: Option<SecretString>,
        workspace_id: &str,
        role: Role,
    ) -> Result<(UserRecord, AddedUser), UsersError> {
        let email = normalize_email(email)?;
        let now = now_ms();
        let (user, added) = match self.store.find_user_by_email(&email).await? {
            Some(user) => (user, AddedUser::Joined),
            None => {
                let password = password
                    .ok_or_else(|| UsersError::Invalid("password is required to create a new user".into()))?;
                check_password_rules(&password).map_err(UsersError::Invalid)?;
                let user = UserRecord {
                    id: new_id("usr"),
                    email: email.clone(),
                    password_hash: self.passwords.hash(password).await.map_err(UsersError::Hashing)?,
                    created_at: now,
                };
                if !self.store.insert_user(&user).await? {
                    return Err(UsersError::Conflict(format!(
                        "a user with email {email:?} was created at the same time; try again"
                    )));
                }
                (user, AddedUser::Created)
            }
        };
        if added == AddedUser::Joined {
            self.keep_an_admin(workspace_id, &user.id, role).await?;
        }
        self.store
            .upsert_membership(&user.id, workspace_id, role, now)
            .await?;
        Ok((user, added))
    }

    /// Checks a password. Unknown emails are verified against a dummy hash, so they take as long
    /// and fail with the same error.
    pub async fn sign_in(&self, email: &str, password: SecretString) -> Result<SignedIn, UsersError> {
        let user = match normalize_email(email) {
            Ok(email) => self.store.find_user_by_email(&email).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self
            .passwords
            .verify(password, stored)
            .await
            .map_err(UsersError::Hashing)?;
        match user {
            Some(user) if ok => {
                let workspaces = self.store.user_workspaces(&user.id).await?;
                Ok(SignedIn { user, workspaces })
            }
            _ => Err(UsersError::BadCredentials),
        }
    }

    pub async fn workspaces(&self, user_id: &str) -> Result<Vec<Membership>, UsersError> {
        Ok(self.store.user_workspaces(user_id).await?)
    }

    pub async fn get_user(&self, user_id: &str) -> Result<UserRecord, UsersError> {
        self.store
            .get_user(user_id)
            .await?
            .ok_or_else(|| UsersError::NotFound(format!("user {user_id:?} not found")))
    }

    pub async fn members(&self, workspace_id: &str) -> Result<Vec<MemberRecord>, UsersError> {
        Ok(self.store.list_members(workspace_id).await?)
    }

    /// Changes a member's role; the workspace keeps at least one admin.
    pub async fn set_role(&self, workspace_id: &str, user_id: &str, role: Role) -> Result<(), UsersError> {
        self.keep_an_admin(workspace_id, user_id, role).await?;
        if self
            .store
            .set_membership_role(workspace_id, user_id, role)
            .await?
        {
            Ok(())
        } else {
            Err(UsersError::NotFound(format!(
                "user {user_id:?} is not a member of this workspace"
            )))
        }
    }

    /// Removes a member from the workspace (ending their sessions there).
    pub async fn remove(&self, workspace_id: &str, user_id: &str) -> Result<(), UsersError> {
        self.keep_an_admin(workspace_id, user_id, Role::Readonly).await?;
        if self.store.delete_membership(workspace_id, user_id).await? {
            Ok(())
        } else {
            Err(UsersError::NotFound(format!(
                "user {user_id:?} is not a member of this workspace"
            )))
        }
    }

    /// Refuses a change that would leave the workspace without an admin.
    async fn keep_an_admin(
        &self,
        workspace_id: &str,
        user_id: &str,
        new_role: Role,
    ) -> Result<(), UsersError> {
        if new_role == Role::Admin {
            return Ok(());
        }
        let members = self.store.list_members(workspace_id).await?;
        let is_admin = members
            .iter()
            .any(|m| m.user_id == user_id && m.role == Role::Admin);
        let admins = members.iter().filter(|m| m.role == Role::Admin).count();
        if is_admin && admins == 1 {
            return Err(UsersError::Conflict(
                "a workspace must keep at least one admin; make another member admin first".into(),
            ));
        }
        Ok(())
    }

    /// Opens a session for a signed-in user in one of their workspaces.
    pub async fn open_session(&self, user_id: &str, workspace_id: &str) -> Result<NewSession, UsersError> {
        let now = now_ms();
        // Sweeping here keeps the table small without a background task.
        self.store.delete_expired_sessions(now).await?;
        let token = random_base62(43);
        let record = SessionRecord {
            token_hash: session_hash(&token),
            user_id: user_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            csrf_token: random_base62(32),
            created_at: now,
            expires_at: now + SESSION_TTL_MS,
        };
        self.store.insert_session(&record).await?;
        Ok(NewSession {
            token: SecretString::from(token),
            record,
        })
    }

    /// The live session a cookie token names.
    pub async fn session(&self, token: &str) -> Result<Option<SessionRecord>, UsersError> {
        Ok(self.store.find_session(&session_hash(token), now_ms()).await?)
    }

    /// Moves a session to another workspace the user belongs to.
    pub async fn switch_workspace(
        &self,
        session: &SessionRecord,
        workspace_id: &str,
    ) -> Result<(), UsersError> {
        if self
            .store
            .membership_role(&session.user_id, workspace_id)
            .await?
            .is_none()
        {
            return Err(UsersError::NotFound("no such workspace".into()));
        }
        self.store
            .set_session_workspace(&session.token_hash, workspace_id)
            .await?;
        Ok(())
    }

    pub async fn close_session(&self, token_hash: &str) -> Result<(), UsersError> {
        Ok(self.store.delete_session(token_hash).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@x",
            "x@",
            "a@b@c",
            "a b@c",
            &format!("{}@x.io", "a".repeat(260)),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
