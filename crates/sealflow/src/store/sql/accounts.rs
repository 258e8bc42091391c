//! Workspaces, API keys, secrets and master-key checks.

use async_trait::async_trait;

use super::rows::{
    api_key_from_row, hosts_to_column, secret_from_row, secret_meta_from_row, workspace_from_row,
};
use super::{on_db, write_db, Db, SqlStore};
use crate::store::{
    audit_kinds, ApiKeyRecord, ApiKeyRepo, AuditEvent, InsertSecret, MasterKeyRepo, SecretMeta, SecretRecord,
    SecretRepo, StoreResult, Workspace, WorkspaceRepo,
};

#[async_trait]
impl WorkspaceRepo for SqlStore {
    async fn ensure_workspace(&self, slug: &str) -> StoreResult<Workspace> {
        // Insert-or-ignore then read, so two concurrent first uses agree on one workspace.
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO workspaces (id, slug, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
            )
            .bind(crate::ids::new_id("ws"))
            .bind(slug)
            .bind(crate::ids::now_ms())
            .execute(pool)
            .await?;
            let row = sqlx::query("SELECT id, slug, created_at FROM workspaces WHERE slug = $1")
                .bind(slug)
                .fetch_one(pool)
                .await?;
            workspace_from_row(&row)
        })
    }

    async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>> {
        on_db!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, slug, created_at FROM workspaces WHERE id = $1 OR slug = $1 \
                 ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1",
            )
            .bind(id_or_slug)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(workspace_from_row).transpose()
        })
    }
}

const API_KEY_COLUMNS: &str = "id, workspace_id, name, role, key_hash, key_preview, created_at, \
                               last_used, total_requests, revoked_at, credit_limit, credits_used";

#[async_trait]
impl ApiKeyRepo for SqlStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord, actor: &str) -> StoreResult<()> {
        let (key, actor) = (key.clone(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            sqlx::query(
                "INSERT INTO api_keys (id, workspace_id, name, role, key_hash, key_preview, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.id)
            .bind(&key.workspace_id)
            .bind(&key.name)
            .bind(key.role.as_str())
            .bind(&key.key_hash)
            .bind(&key.key_preview)
            .bind(key.created_at)
            .execute(&mut *conn)
            .await?;
            let event = AuditEvent {
                detail: Some(format!("role={}", key.role)),
                ..AuditEvent::api_key(&key.workspace_id, audit_kinds::API_KEY_CREATED, &actor, &key.id)
            };
            batch.events.push(event);
            Ok(())
        })
    }

    async fn find_active_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let sql =
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
        on_db!(self, |pool| {
            let row = sqlx::query(&sql).bind(key_hash).fetch_optional(pool).await?;
            row.as_ref().map(api_key_from_row).transpose()
        })
    }

    async fn touch_api_key(&self, id: &str, uses: i64, at_ms: i64) -> StoreResult<()> {
        const TOUCH: &str =
            "UPDATE api_keys SET last_used = $2, total_requests = total_requests + $3 WHERE id = $1";
        let id = id.to_owned();
        match &self.db {
            // SQLite: through the writer, so the count shares the group commit of every request.
            Db::Sqlite(_) => write_db!(self, |conn, _pg| {
                sqlx::query(TOUCH)
                    .bind(&id)
                    .bind(at_ms)
                    .bind(uses)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }),
            // PostgreSQL: on its own, as the credit charge is. In a batch, the key's row (one
            // that every request of the key updates) would be held until that batch commits and
            // taken in no fixed order with the batch's other rows, which deadlocked two
            // instances' batches against each other and against the charge.
            Db::Pg(b) => {
                sqlx::query(TOUCH)
                    .bind(&id)
                    .bind(at_ms)
                    .bind(uses)
                    .execute(&b.pool)
                    .await?;
                Ok(())
            }
        }
    }

    async fn list_api_keys(&self, workspace_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id"
        );
        on_db!(self, |pool| {
            let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(pool).await?;
            rows.iter().map(api_key_from_row).collect()
        })
    }

    async fn revoke_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        at_ms: i64,
        actor: &str,
    ) -> StoreResult<bool> {
        let (workspace_id, id, actor) = (workspace_id.to_owned(), id.to_owned(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&workspace_id)
            .bind(&id)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            let event = AuditEvent::api_key(&workspace_id, audit_kinds::API_KEY_DISABLED, &actor, &id);
            batch.events.push(event);
            Ok(true)
        })
    }

    async fn delete_api_key(&self, workspace_id: &str, id: &str, actor: &str) -> StoreResult<bool> {
        let (workspace_id, id, actor) = (workspace_id.to_owned(), id.to_owned(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let done = sqlx::query("DELETE FROM api_keys WHERE workspace_id = $1 AND id = $2")
                .bind(&workspace_id)
                .bind(&id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            let event = AuditEvent::api_key(&workspace_id, audit_kinds::API_KEY_DELETED, &actor, &id);
            batch.events.push(event);
            Ok(true)
        })
    }
}

const SECRET_COLUMNS: &str = "workspace_id, name, version, kek_id, wrapped_dek, ciphertext, \
                              allowed_hosts, created_at, updated_at";

#[async_trait]
impl SecretRepo for SqlStore {
    async fn list_secrets(&self, workspace_id: &str) -> StoreResult<Vec<SecretMeta>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT name, allowed_hosts, created_at, updated_at FROM secrets \
                 WHERE workspace_id = $1 ORDER BY name",
            )
            .bind(workspace_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(secret_meta_from_row).collect()
        })
    }

    async fn get_secret(&self, workspace_id: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE workspace_id = $1 AND name = $2");
        on_db!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(workspace_id)
                .bind(name)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(secret_from_row).transpose()
        })
    }

    async fn insert_secret(
        &self,
        row: &SecretRecord,
        max_count: i64,
        actor: &str,
    ) -> StoreResult<InsertSecret> {
        // Through the writer, with its audit entry in the same transaction.
        let (row, actor) = (row.clone(), actor.to_owned());
        write_db!(self, |conn, pg, batch| {
            if pg {
                // Under READ COMMITTED two writers would both count n-1 and both insert, so writers
                // to one workspace take turns on a transaction-scoped advisory lock (released at
                // commit). SQLite's single writer makes the one statement below atomic already.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&row.workspace_id)
                    .execute(&mut *conn)
                    .await?;
            }
            let done = sqlx::query(
                "INSERT INTO secrets (workspace_id, name, version, kek_id, wrapped_dek, ciphertext, \
                                      allowed_hosts, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 WHERE (SELECT COUNT(*) FROM secrets WHERE workspace_id = $1) < $10 \
                 ON CONFLICT (workspace_id, name) DO NOTHING",
            )
            .bind(&row.workspace_id)
            .bind(&row.name)
            .bind(row.version)
            .bind(&row.sealed.kek_id)
            .bind(&row.sealed.wrapped_dek)
            .bind(&row.sealed.ciphertext)
            .bind(hosts_to_column(&row.allowed_hosts))
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(max_count)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                let event = AuditEvent::secret(
                    &row.workspace_id,
                    audit_kinds::SECRET_CREATED,
                    &actor,
                    &row.name,
                    row.version,
                );
                batch.events.push(event);
                return Ok(InsertSecret::Inserted);
            }
            let exists = sqlx::query("SELECT 1 FROM secrets WHERE workspace_id = $1 AND name = $2")
                .bind(&row.workspace_id)
                .bind(&row.name)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            Ok(if exists {
                InsertSecret::NameExists
            } else {
                InsertSecret::LimitReached
            })
        })
    }

    async fn replace_secret(
        &self,
        row: &SecretRecord,
        expected_version: i64,
        actor: &str,
    ) -> StoreResult<bool> {
        let (row, actor) = (row.clone(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let done = sqlx::query(
                "UPDATE secrets SET version = $3, kek_id = $4, wrapped_dek = $5, ciphertext = $6, \
                                allowed_hosts = $7, updated_at = $8 \
             WHERE workspace_id = $1 AND name = $2 AND version = $9",
            )
            .bind(&row.workspace_id)
            .bind(&row.name)
            .bind(row.version)
            .bind(&row.sealed.kek_id)
            .bind(&row.sealed.wrapped_dek)
            .bind(&row.sealed.ciphertext)
            .bind(hosts_to_column(&row.allowed_hosts))
            .bind(row.updated_at)
            .bind(expected_version)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            let event = AuditEvent::secret(
                &row.workspace_id,
                audit_kinds::SECRET_REPLACED,
                &actor,
                &row.name,
                row.version,
            );
            batch.events.push(event);
            Ok(true)
        })
    }

    async fn delete_secret(&self, workspace_id: &str, name: &str, actor: &str) -> StoreResult<bool> {
        let (workspace_id, name, actor) = (workspace_id.to_owned(), name.to_owned(), actor.to_owned());
        write_db!(self, |conn, _pg, batch| {
            let deleted: Option<(i64,)> =
                sqlx::query_as("DELETE FROM secrets WHERE workspace_id = $1 AND name = $2 RETURNING version")
                    .bind(&workspace_id)
                    .bind(&name)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some((version,)) = deleted else {
                return Ok(false);
            };
            let event =
                AuditEvent::secret(&workspace_id, audit_kinds::SECRET_DELETED, &actor, &name, version);
            batch.events.push(event);
            Ok(true)
        })
    }
}

#[async_trait]
impl MasterKeyRepo for SqlStore {
    async fn master_key_checks(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let rows: Vec<(String, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT id, check_value FROM master_keys ORDER BY created_at")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    async fn insert_master_key_check(&self, id: &str, check: &[u8], at_ms: i64) -> StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO master_keys (id, check_value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(check)
            .bind(at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
