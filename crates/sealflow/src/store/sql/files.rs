//! Uploaded files and batch results, written once; rows move in pages (see `store/files.rs`).

use async_trait::async_trait;
use sqlx::Row;

use super::{on_db, SqlStore};
use crate::store::FileRepo;

#[async_trait]
impl FileRepo for SqlStore {
    async fn insert_file(&self, f: &crate::store::FileRecord) -> crate::store::StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO run_files (id, workspace_id, workflow_id, filename, columns_json, \
                 identifier_type, identifier_column, row_count, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&f.id)
            .bind(&f.workspace_id)
            .bind(&f.workflow_id)
            .bind(&f.filename)
            .bind(serde_json::Value::from(f.columns.clone()).to_string())
            .bind(&f.identifier_type)
            .bind(&f.identifier_column)
            .bind(f.row_count)
            .bind(f.created_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn insert_file_rows(
        &self,
        file_id: &str,
        first_idx: i64,
        rows: &[String],
    ) -> crate::store::StoreResult<()> {
        on_db!(self, |pool| {
            // 300 rows × 3 binds stays far below either database's bind-parameter limit.
            let mut tx = pool.begin().await?;
            for (chunk_no, chunk) in rows.chunks(300).enumerate() {
                let base = first_idx + (chunk_no * 300) as i64;
                let mut q = sqlx::QueryBuilder::new("INSERT INTO run_file_rows (file_id, idx, values_json) ");
                q.push_values(chunk.iter().enumerate(), |mut b, (i, row)| {
                    b.push_bind(file_id)
                        .push_bind(base + i as i64)
                        .push_bind(row.as_str());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn set_file_row_count(&self, file_id: &str, row_count: i64) -> crate::store::StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE run_files SET row_count = $2 WHERE id = $1")
                .bind(file_id)
                .bind(row_count)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn delete_file(&self, file_id: &str) -> crate::store::StoreResult<()> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM run_files WHERE id = $1")
                .bind(file_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn get_file(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> crate::store::StoreResult<Option<crate::store::FileRecord>> {
        on_db!(self, |pool| {
            let row = sqlx::query(
                "SELECT id, workspace_id, workflow_id, filename, columns_json, identifier_type, \
                 identifier_column, row_count, created_at FROM run_files WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id)
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let columns: String = row.try_get("columns_json")?;
            Ok(Some(crate::store::FileRecord {
                id: row.try_get("id")?,
                workspace_id: row.try_get("workspace_id")?,
                workflow_id: row.try_get("workflow_id")?,
                filename: row.try_get("filename")?,
                columns: crate::store::files::cells(&columns)?,
                identifier_type: row.try_get("identifier_type")?,
                identifier_column: row.try_get("identifier_column")?,
                row_count: row.try_get("row_count")?,
                created_at: row.try_get("created_at")?,
            }))
        })
    }

    async fn file_rows(
        &self,
        file_id: &str,
        from: i64,
        limit: i64,
    ) -> crate::store::StoreResult<Vec<(i64, Vec<String>)>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT idx, values_json FROM run_file_rows WHERE file_id = $1 AND idx >= $2 \
                 ORDER BY idx LIMIT $3",
            )
            .bind(file_id)
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let text: String = r.try_get("values_json")?;
                    Ok((r.try_get("idx")?, crate::store::files::cells(&text)?))
                })
                .collect()
        })
    }

    async fn save_batch_items(
        &self,
        run_id: &str,
        owner: &str,
        items: &[crate::store::BatchItem],
        next_row: i64,
        audit: Vec<crate::store::AuditEvent>,
    ) -> crate::store::StoreResult<bool> {
        on_db!(self, |pool, pg| {
            let mut tx = pool.begin().await?;
            // Recorded rows are progress: they reset the claim count, as a recorded step does,
            // so a long file run restarted more than SEALFLOW_MAX_RUN_ATTEMPTS times goes on.
            let guard = sqlx::query(
                "UPDATE runs SET next_step = $3, claims = CASE WHEN $4 THEN 0 ELSE claims END \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(run_id)
            .bind(owner)
            .bind(next_row)
            .bind(!items.is_empty())
            .execute(&mut *tx)
            .await?;
            if !audit.is_empty() {
                // Not a writer job: this transaction appends its entries itself.
                super::audit::append_entries!(tx, pg, audit);
            }
            if guard.rows_affected() != 1 {
                // The sends happened all the same: keep their audit entries.
                tx.commit().await?;
                return Ok(false);
            }
            for chunk in items.chunks(200) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO batch_items (run_id, idx, status, output_json, error) ",
                );
                q.push_values(chunk, |mut b, item| {
                    b.push_bind(run_id)
                        .push_bind(item.idx)
                        .push_bind(item.status.as_str())
                        .push_bind(item.output.as_ref().map(|o| o.to_string()))
                        .push_bind(item.error.as_deref());
                });
                // A row redone after a crash keeps its first recorded result.
                q.push(" ON CONFLICT (run_id, idx) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn batch_rows(
        &self,
        run_id: &str,
        file_id: &str,
        from: i64,
        limit: i64,
    ) -> crate::store::StoreResult<Vec<crate::store::BatchRow>> {
        on_db!(self, |pool| {
            let rows = sqlx::query(
                "SELECT r.idx, r.values_json, b.status, b.output_json, b.error \
                 FROM run_file_rows r LEFT JOIN batch_items b ON b.run_id = $1 AND b.idx = r.idx \
                 WHERE r.file_id = $2 AND r.idx >= $3 ORDER BY r.idx LIMIT $4",
            )
            .bind(run_id)
            .bind(file_id)
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let idx: i64 = r.try_get("idx")?;
                    let values: String = r.try_get("values_json")?;
                    let status: Option<String> = r.try_get("status")?;
                    let output: Option<String> = r.try_get("output_json")?;
                    let item = match status {
                        Some(status) => Some(crate::store::BatchItem {
                            idx,
                            status,
                            output: output.map(|o| crate::store::files::json(&o)).transpose()?,
                            error: r.try_get("error")?,
                        }),
                        None => None,
                    };
                    Ok(crate::store::BatchRow {
                        idx,
                        values: crate::store::files::cells(&values)?,
                        item,
                    })
                })
                .collect()
        })
    }

    async fn batch_counts(&self, run_id: &str) -> crate::store::StoreResult<(i64, i64)> {
        on_db!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS done, COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed \
                 FROM batch_items WHERE run_id = $1",
            )
            .bind(run_id)
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("done")?, row.try_get("failed")?))
        })
    }
}
