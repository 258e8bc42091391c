//! The key ring, written once for both backends: registered keys, the current one, the rewrap
//! lease, the derivation root, and rewrapping data keys in batches.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{master_key_from_row, wrapped_dek_from_row, SqlRow};
use super::{on_db, write_db, SqlStore};
use crate::store::{KeyRingRepo, MasterKeyRecord, RetireKey, StoreResult, WrappedDek, WrappedRoot};

#[async_trait]
impl KeyRingRepo for SqlStore {
    async fn master_keys(&self) -> StoreResult<Vec<MasterKeyRecord>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, check_value, created_at, retired_at FROM master_keys ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(master_key_from_row).collect()
        })
    }

    async fn current_master_key(&self) -> StoreResult<Option<String>> {
        let id: Option<(String,)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT current_key_id FROM key_ring WHERE singleton = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(id.map(|(id,)| id))
    }

    async fn init_key_ring(&self, id: &str, check: &[u8], at_ms: i64) -> StoreResult<String> {
        let (id, check) = (id.to_owned(), check.to_vec());
        write_db!(self, |conn, _pg| {
            sqlx::query(
                "INSERT INTO master_keys (id, check_value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&check)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO key_ring (singleton, current_key_id, updated_at) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO NOTHING",
            )
            .bind(&id)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
            let row = sqlx::query("SELECT current_key_id FROM key_ring WHERE singleton = 1")
                .fetch_one(&mut *conn)
                .await?;
            row.col("current_key_id")
        })
    }

    async fn set_current_master_key(&self, id: &str, at_ms: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        write_db!(self, |conn, _pg| {
            let done = sqlx::query(
                "UPDATE key_ring SET current_key_id = $1, updated_at = $2 WHERE singleton = 1 \
                 AND EXISTS (SELECT 1 FROM master_keys WHERE id = $1 AND retired_at IS NULL)",
            )
            .bind(&id)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn data_keys_per_master_key(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT kek_id, COUNT(*) FROM secrets GROUP BY kek_id ORDER BY kek_id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    async fn derivation_root(&self) -> StoreResult<Option<WrappedRoot>> {
        let row: Option<(String, Vec<u8>)> = on_db!(self, |pool| {
            sqlx::query_as("SELECT kek_id, wrapped_root FROM derivation_root WHERE singleton = 1")
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(kek_id, wrapped)| WrappedRoot { kek_id, wrapped }))
    }

    async fn insert_derivation_root(&self, root: &WrappedRoot, at_ms: i64) -> StoreResult<()> {
        let root = root.clone();
        write_db!(self, |conn, _pg| {
            sqlx::query(
                "INSERT INTO derivation_root (singleton, kek_id, wrapped_root, created_at) \
                 VALUES (1, $1, $2, $3) ON CONFLICT (singleton) DO NOTHING",
            )
            .bind(&root.kek_id)
            .bind(&root.wrapped)
            .bind(at_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    async fn rewrap_derivation_root(&self, old_kek_id: &str, root: &WrappedRoot) -> StoreResult<bool> {
        let (old, root) = (old_kek_id.to_owned(), root.clone());
        write_db!(self, |conn, _pg| {
            let done = sqlx::query(
                "UPDATE derivation_root SET kek_id = $1, wrapped_root = $2 \
                 WHERE singleton = 1 AND kek_id = $3",
            )
            .bind(&root.kek_id)
            .bind(&root.wrapped)
            .bind(&old)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn data_keys_to_rewrap(&self, current: &str, limit: i64) -> StoreResult<Vec<WrappedDek>> {
        // Two ranges rather than `<>`, so both backends can answer from the `kek_id` index; no
        // order is needed, since a rewrapped row no longer matches.
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT workspace_id, name, version, kek_id, wrapped_dek FROM secrets \
                 WHERE kek_id < $1 OR kek_id > $1 LIMIT $2",
            )
            .bind(current)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(wrapped_dek_from_row).collect()
        })
    }

    async fn store_rewrapped(&self, rows: Vec<(WrappedDek, String, Vec<u8>)>) -> StoreResult<u64> {
        write_db!(self, |conn, _pg| {
            let mut changed = 0;
            for (old, kek_id, wrapped) in &rows {
                // Only the data key's wrap changes; `ciphertext` is left as it is.
                let done = sqlx::query(
                    "UPDATE secrets SET kek_id = $1, wrapped_dek = $2 \
                     WHERE workspace_id = $3 AND name = $4 AND version = $5 AND kek_id = $6",
                )
                .bind(kek_id)
                .bind(wrapped)
                .bind(&old.workspace_id)
                .bind(&old.name)
                .bind(old.version)
                .bind(&old.kek_id)
                .execute(&mut *conn)
                .await?;
                changed += done.rows_affected();
            }
            Ok(changed)
        })
    }

    async fn claim_rewrap(&self, owner: &str, now_ms: i64, until_ms: i64, force: bool) -> StoreResult<bool> {
        let owner = owner.to_owned();
        write_db!(self, |conn, _pg| {
            let done = sqlx::query(
                "UPDATE key_ring SET rewrap_owner = $1, rewrap_until = $2 WHERE singleton = 1 \
                 AND ($4 OR rewrap_owner IS NULL OR rewrap_owner = $1 OR rewrap_until < $3)",
            )
            .bind(&owner)
            .bind(until_ms)
            .bind(now_ms)
            .bind(force)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn retire_master_key(&self, id: &str, at_ms: i64) -> StoreResult<RetireKey> {
        let id = id.to_owned();
        write_db!(self, |conn, pg| {
            if pg {
                // Holds off a concurrent rotation's `UPDATE key_ring` until this check is done.
                sqlx::query("SELECT 1 FROM key_ring WHERE singleton = 1 FOR UPDATE")
                    .execute(&mut *conn)
                    .await?;
            }
            let key = sqlx::query("SELECT retired_at FROM master_keys WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(key) = key else {
                return Ok(RetireKey::NotFound);
            };
            if key.try_get::<Option<i64>, _>(0)?.is_some() {
                return Ok(RetireKey::AlreadyRetired);
            }
            let current = sqlx::query("SELECT 1 FROM key_ring WHERE singleton = 1 AND current_key_id = $1")
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?;
            if current.is_some() {
                return Ok(RetireKey::Current);
            }
            let (data_keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM secrets WHERE kek_id = $1")
                .bind(&id)
                .fetch_one(&mut *conn)
                .await?;
            let derivation_root = sqlx::query("SELECT 1 FROM derivation_root WHERE kek_id = $1")
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if data_keys > 0 || derivation_root {
                return Ok(RetireKey::InUse {
                    data_keys,
                    derivation_root,
                });
            }
            sqlx::query("UPDATE master_keys SET retired_at = $2 WHERE id = $1")
                .bind(&id)
                .bind(at_ms)
                .execute(&mut *conn)
                .await?;
            Ok(RetireKey::Retired)
        })
    }
}
