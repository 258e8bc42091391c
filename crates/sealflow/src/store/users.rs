//! Users, their workspace memberships and dashboard sessions.
//!
//! The repository trait and its records; `sql/users.rs` implements it once for both backends.

use async_trait::async_trait;

use super::{Role, StoreError, StoreResult};

/// A user as stored. `email` is lowercased; `password_hash` is an argon2id PHC string.
#[derive(Clone)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// One workspace a user belongs to, with the user's role there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub workspace_id: String,
    pub slug: String,
    pub role: Role,
}

/// One member of a workspace, for the admin listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub created_at: i64,
}

/// A dashboard session: the SHA-256 of the cookie token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user_id: String,
    pub workspace_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait UserRepo {
    /// Inserts a user; false if the email is taken.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<bool>;
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// Adds the user to the workspace with `role`, or changes the role if already a member.
    async fn upsert_membership(
        &self,
        user_id: &str,
        workspace_id: &str,
        role: Role,
        at_ms: i64,
    ) -> StoreResult<()>;
    /// Changes a member's role; false if the user is not a member of the workspace.
    async fn set_membership_role(&self, workspace_id: &str, user_id: &str, role: Role) -> StoreResult<bool>;
    /// Removes a member (and their sessions in that workspace); false if there was none.
    async fn delete_membership(&self, workspace_id: &str, user_id: &str) -> StoreResult<bool>;
    /// The user's workspaces, sorted by slug.
    async fn user_workspaces(&self, user_id: &str) -> StoreResult<Vec<Membership>>;
    async fn membership_role(&self, user_id: &str, workspace_id: &str) -> StoreResult<Option<Role>>;
    /// A workspace's members, sorted by email.
    async fn list_members(&self, workspace_id: &str) -> StoreResult<Vec<MemberRecord>>;
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with this token hash, if it has not expired at `now_ms`.
    async fn find_session(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<SessionRecord>>;
    /// Moves a session to another workspace.
    async fn set_session_workspace(&self, token_hash: &str, workspace_id: &str) -> StoreResult<bool>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Removes sessions that expired before `now_ms`.
    async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64>;
}

pub(crate) fn role_of(text: &str) -> StoreResult<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role {text:?}")))
}
