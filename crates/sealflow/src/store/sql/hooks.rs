//! Used webhook signatures (replay refusal). Rows past their window are pruned as new ones come;
//! an expired signature would fail the timestamp check anyway.

use async_trait::async_trait;

use super::{write_db, SqlStore};
use crate::store::{HookSignatureRepo, StoreResult};

#[async_trait]
impl HookSignatureRepo for SqlStore {
    async fn remember_hook_signature(
        &self,
        workflow_id: &str,
        signature: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let (workflow_id, signature) = (workflow_id.to_owned(), signature.to_owned());
        write_db!(self, |conn, _pg| {
            sqlx::query("DELETE FROM hook_signatures WHERE expires_at < $1")
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO hook_signatures (workflow_id, signature, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (workflow_id, signature) DO NOTHING",
            )
            .bind(&workflow_id)
            .bind(&signature)
            .bind(expires_at_ms)
            .execute(&mut *conn)
            .await?;
            Ok(inserted.rows_affected() == 1)
        })
    }

    async fn forget_hook_signature(&self, workflow_id: &str, signature: &str) -> StoreResult<()> {
        let (workflow_id, signature) = (workflow_id.to_owned(), signature.to_owned());
        write_db!(self, |conn, _pg| {
            sqlx::query("DELETE FROM hook_signatures WHERE workflow_id = $1 AND signature = $2")
                .bind(&workflow_id)
                .bind(&signature)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}
