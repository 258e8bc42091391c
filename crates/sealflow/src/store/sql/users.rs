//! Users, workspace memberships and dashboard sessions, written once for both backends.

use async_trait::async_trait;

use super::rows::{user_from_row, SqlRow};
use super::{on_db, SqlStore};
use crate::store::users::role_of;
use crate::store::{MemberRecord, Membership, Role, SessionRecord, StoreResult, UserRecord, UserRepo};

#[async_trait]
impl UserRepo for SqlStore {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let done = sqlx::query(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.created_at)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        on_db!(self, |pool| {
            let sql = "SELECT id, email, password_hash, created_at FROM users WHERE email = $1";
            let row = sqlx::query(sql).bind(email).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        on_db!(self, |pool| {
            let sql = "SELECT id, email, password_hash, created_at FROM users WHERE id = $1";
            let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(user_from_row).transpose()
        })
    }

    async fn upsert_membership(
        &self,
        user_id: &str,
        workspace_id: &str,
        role: Role,
        at_ms: i64,
    ) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO memberships (user_id, workspace_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role",
            )
            .bind(user_id)
            .bind(workspace_id)
            .bind(role.as_str())
            .bind(at_ms)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn set_membership_role(&self, workspace_id: &str, user_id: &str, role: Role) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let done =
                sqlx::query("UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3")
                    .bind(role.as_str())
                    .bind(workspace_id)
                    .bind(user_id)
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn delete_membership(&self, workspace_id: &str, user_id: &str) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn user_workspaces(&self, user_id: &str) -> StoreResult<Vec<Membership>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT m.workspace_id, w.slug, m.role FROM memberships m \
                 JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY w.slug",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Membership {
                        workspace_id: r.col("workspace_id")?,
                        slug: r.col("slug")?,
                        role: role_of(&r.col::<String>("role")?)?,
                    })
                })
                .collect()
        })
    }

    async fn membership_role(&self, user_id: &str, workspace_id: &str) -> StoreResult<Option<Role>> {
        on_db!(self, |pool| {
            let role: Option<String> =
                sqlx::query_scalar("SELECT role FROM memberships WHERE user_id = $1 AND workspace_id = $2")
                    .bind(user_id)
                    .bind(workspace_id)
                    .fetch_optional(pool)
                    .await?;
            role.map(|r| role_of(&r)).transpose()
        })
    }

    async fn list_members(&self, workspace_id: &str) -> StoreResult<Vec<MemberRecord>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT u.id, u.email, m.role, m.created_at FROM memberships m \
                 JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email",
            )
            .bind(workspace_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(MemberRecord {
                        user_id: r.col("id")?,
                        email: r.col("email")?,
                        role: role_of(&r.col::<String>("role")?)?,
                        created_at: r.col("created_at")?,
                    })
                })
                .collect()
        })
    }

    async fn insert_session(&self, s: &SessionRecord) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, workspace_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.token_hash)
            .bind(&s.user_id)
            .bind(&s.workspace_id)
            .bind(&s.csrf_token)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn find_session(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<SessionRecord>> {
        on_db!(self, |pool| {
            let row = sqlx::query(
                "SELECT token_hash, user_id, workspace_id, csrf_token, created_at, expires_at \
                 FROM sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(SessionRecord {
                    token_hash: r.col("token_hash")?,
                    user_id: r.col("user_id")?,
                    workspace_id: r.col("workspace_id")?,
                    csrf_token: r.col("csrf_token")?,
                    created_at: r.col("created_at")?,
                    expires_at: r.col("expires_at")?,
                })
            })
            .transpose()
        })
    }

    async fn set_session_workspace(&self, token_hash: &str, workspace_id: &str) -> StoreResult<bool> {
        on_db!(self, |pool| {
            let done = sqlx::query("UPDATE sessions SET workspace_id = $1 WHERE token_hash = $2")
                .bind(workspace_id)
                .bind(token_hash)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        on_db!(self, |pool| {
            let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
