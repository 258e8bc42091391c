//! The PostgreSQL backend: several sealflow instances may share one database.
//!
//! Statements are the SQLite backend's (`$n` placeholders, the same tables and columns), copied
//! side by side; they differ only where concurrent writers on separate connections would race,
//! which SQLite's single writer rules out: `seq` comes from an identity column, the secret-count
//! limit holds a per-workspace advisory lock, and claiming a run skips rows another instance has
//! locked (`FOR UPDATE SKIP LOCKED`, in `runs.rs`).

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use super::*;
use crate::vault::SealedSecret;

mod runs;
mod workflows;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per instance; a fleet multiplies this, so keep it well under `max_connections`.
const POOL_SIZE: u32 = 10;

/// A pool over one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `postgres://…` and migrates. sqlx's migrator takes an advisory lock, so
    /// instances starting together migrate once.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for tests that inspect or tamper with rows directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn api_key_from_row(row: &PgRow) -> StoreResult<ApiKeyRecord> {
    let role: String = row.try_get("role")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
        key_hash: row.try_get("key_hash")?,
        key_preview: row.try_get("key_preview")?,
        created_at: row.try_get("created_at")?,
        last_used: row.try_get("last_used")?,
        total_requests: row.try_get("total_requests")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn hosts_from_column(text: Option<String>) -> StoreResult<Option<Vec<String>>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("allowed_hosts: {e}"))))
        .transpose()
}

fn hosts_to_column(hosts: &Option<Vec<String>>) -> Option<String> {
    hosts
        .as_ref()
        .map(|h| serde_json::Value::from(h.clone()).to_string())
}

fn secret_from_row(row: &PgRow) -> StoreResult<SecretRecord> {
    Ok(SecretRecord {
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sealed: SealedSecret {
            kek_id: row.try_get("kek_id")?,
            wrapped_dek: row.try_get("wrapped_dek")?,
            ciphertext: row.try_get("ciphertext")?,
        },
        allowed_hosts: hosts_from_column(row.try_get("allowed_hosts")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn workspace_from_row(row: &PgRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl WorkspaceRepo for PgStore {
    async fn ensure_workspace(&self, slug: &str) -> StoreResult<Workspace> {
        // Insert-or-ignore then read, so two concurrent first uses agree on one workspace.
        sqlx::query(
            "INSERT INTO workspaces (id, slug, created_at) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(crate::ids::new_id("ws"))
        .bind(slug)
        .bind(crate::ids::now_ms())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT id, slug, created_at FROM workspaces WHERE slug = $1")
            .bind(slug)
            .fetch_one(&self.pool)
            .await?;
        workspace_from_row(&row)
    }

    async fn find_workspace(&self, id_or_slug: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(
            "SELECT id, slug, created_at FROM workspaces WHERE id = $1 OR slug = $1 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(id_or_slug)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }
}

const API_KEY_COLUMNS: &str = "id, workspace_id, name, role, key_hash, key_preview, created_at, \
                               last_used, total_requests, revoked_at";

#[async_trait]
impl ApiKeyRepo for PgStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_active_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let sql =
            format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn touch_api_key(&self, id: &str, at_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used = $2, total_requests = total_requests + 1 WHERE id = $1")
            .bind(id)
            .bind(at_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_api_keys(&self, workspace_id: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql).bind(workspace_id).fetch_all(&self.pool).await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, workspace_id: &str, id: &str, at_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_api_key(&self, workspace_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

const SECRET_COLUMNS: &str = "workspace_id, name, version, kek_id, wrapped_dek, ciphertext, \
                              allowed_hosts, created_at, updated_at";

#[async_trait]
impl SecretRepo for PgStore {
    async fn list_secrets(&self, workspace_id: &str) -> StoreResult<Vec<SecretMeta>> {
        let rows = sqlx::query(
            "SELECT name, allowed_hosts, created_at, updated_at FROM secrets \
             WHERE workspace_id = $1 ORDER BY name",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretMeta {
                    name: row.try_get("name")?,
                    allowed_hosts: hosts_from_column(row.try_get("allowed_hosts")?)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn get_secret(&self, workspace_id: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE workspace_id = $1 AND name = $2");
        let row = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(secret_from_row).transpose()
    }

    async fn insert_secret(&self, row: &SecretRecord, max_count: i64) -> StoreResult<InsertSecret> {
        // Under READ COMMITTED two writers would both count n-1 and both insert, so writers to one
        // workspace take turns on a transaction-scoped advisory lock (released at commit).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&row.workspace_id)
            .execute(&mut *tx)
            .await?;
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
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(InsertSecret::Inserted);
        }
        let exists = sqlx::query("SELECT 1 FROM secrets WHERE workspace_id = $1 AND name = $2")
            .bind(&row.workspace_id)
            .bind(&row.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        Ok(if exists {
            InsertSecret::NameExists
        } else {
            InsertSecret::LimitReached
        })
    }

    async fn replace_secret(&self, row: &SecretRecord, expected_version: i64) -> StoreResult<bool> {
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_secret(&self, workspace_id: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM secrets WHERE workspace_id = $1 AND name = $2")
            .bind(workspace_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl MasterKeyRepo for PgStore {
    async fn master_key_checks(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT id, check_value FROM master_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("check_value")?)))
            .collect()
    }

    async fn insert_master_key_check(&self, id: &str, check: &[u8], at_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO master_keys (id, check_value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(check)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
