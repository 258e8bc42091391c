//! API-key administration (rename, enable, credit limits, the run credit), written once.

use async_trait::async_trait;

use super::{on_db, write_db, SqlStore};
use crate::store::{audit_kinds, AuditEvent, KeyAdminRepo, StoreResult};

#[async_trait]
impl KeyAdminRepo for SqlStore {
    async fn rename_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        name: &str,
        actor: &str,
    ) -> StoreResult<bool> {
        let (workspace_id, id, name, actor) = (
            workspace_id.to_owned(),
            id.to_owned(),
            name.to_owned(),
            actor.to_owned(),
        );
        write_db!(self, |conn, _pg, batch| {
            let done = sqlx::query("UPDATE api_keys SET name = $3 WHERE workspace_id = $1 AND id = $2")
                .bind(&workspace_id)
                .bind(&id)
                .bind(&name)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let event = AuditEvent {
                detail: Some(format!("name={name}")),
                ..AuditEvent::api_key(&workspace_id, audit_kinds::API_KEY_RENAMED, &actor, &id)
            };
            batch.events.push(event);
            Ok(true)
        })
    }

    async fn set_api_key_enabled(
        &self,
        workspace_id: &str,
        id: &str,
        enabled: bool,
        at_ms: i64,
        actor: &str,
    ) -> StoreResult<bool> {
        let (workspace_id, id, actor) = (workspace_id.to_owned(), id.to_owned(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let revoked_at = (!enabled).then_some(at_ms);
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = CASE WHEN $3 IS NULL THEN NULL \
                 ELSE COALESCE(revoked_at, $3) END WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&workspace_id)
            .bind(&id)
            .bind(revoked_at)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let kind = if enabled {
                audit_kinds::API_KEY_ENABLED
            } else {
                audit_kinds::API_KEY_DISABLED
            };
            batch
                .events
                .push(AuditEvent::api_key(&workspace_id, kind, &actor, &id));
            Ok(true)
        })
    }

    async fn set_api_key_credit_limit(
        &self,
        workspace_id: &str,
        id: &str,
        limit: Option<i64>,
        actor: &str,
    ) -> StoreResult<bool> {
        let (workspace_id, id, actor) = (workspace_id.to_owned(), id.to_owned(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let done =
                sqlx::query("UPDATE api_keys SET credit_limit = $3 WHERE workspace_id = $1 AND id = $2")
                    .bind(&workspace_id)
                    .bind(&id)
                    .bind(limit)
                    .execute(&mut *conn)
                    .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            let event = AuditEvent {
                detail: Some(limit.map_or_else(|| "limit=none".to_owned(), |n| format!("limit={n}"))),
                ..AuditEvent::api_key(&workspace_id, audit_kinds::API_KEY_LIMIT_SET, &actor, &id)
            };
            batch.events.push(event);
            Ok(true)
        })
    }

    async fn charge_api_key_credit(&self, id: &str) -> StoreResult<bool> {
        on_db!(self, |pool| {
            // One conditional UPDATE, so concurrent runs (on any instance) cannot overspend.
            let done = sqlx::query(
                "UPDATE api_keys SET credits_used = credits_used + 1 \
                 WHERE id = $1 AND (credit_limit IS NULL OR credits_used < credit_limit)",
            )
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    async fn refund_api_key_credit(&self, id: &str) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE api_keys SET credits_used = credits_used - 1 WHERE id = $1 AND credits_used > 0",
            )
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
