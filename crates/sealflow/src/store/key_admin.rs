//! API-key administration beyond issue and revoke: rename, enable, credit limits and the
//! one-credit-per-run counter.
//!
//! Implemented once for both backends in `sql/key_admin.rs`.

use async_trait::async_trait;

use super::StoreResult;

#[async_trait]
pub trait KeyAdminRepo {
    /// Renames the key; false if the workspace has no such key. Each change here commits with
    /// its audit entry (by `actor`).
    async fn rename_api_key(
        &self,
        workspace_id: &str,
        id: &str,
        name: &str,
        actor: &str,
    ) -> StoreResult<bool>;
    /// Disables (keeping `revoked_at` as the time) or re-enables the key; false if not found.
    async fn set_api_key_enabled(
        &self,
        workspace_id: &str,
        id: &str,
        enabled: bool,
        at_ms: i64,
        actor: &str,
    ) -> StoreResult<bool>;
    /// Sets or clears (`None`) the key's credit limit; false if not found.
    async fn set_api_key_credit_limit(
        &self,
        workspace_id: &str,
        id: &str,
        limit: Option<i64>,
        actor: &str,
    ) -> StoreResult<bool>;
    /// Spends one credit of the key, atomically refusing (false) once its limit is reached.
    async fn charge_api_key_credit(&self, id: &str) -> StoreResult<bool>;
    /// Gives back a credit spent on a run that was not started after all (replay, refusal).
    async fn refund_api_key_credit(&self, id: &str) -> StoreResult<()>;
}
