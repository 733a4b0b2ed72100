//! KV secrets: versioned, soft-deleted, sealed before they get here.

use async_trait::async_trait;

use crate::{RealmId, SecretMeta, SecretVersion, SecretWrite, StoreResult, VersionMeta};

/// Outcome of a check-and-set write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write landed as this version.
    Written(SecretMeta),
    /// The CAS precondition failed; the current version is given (0 when absent).
    CasMismatch { current: i64 },
}

/// Persistence of KV secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Writes a new version of a secret. `cas` is the version the caller expects to be
    /// current (0: must not exist); `None` writes unconditionally.
    async fn secret_put(
        &self,
        realm_id: &RealmId,
        write: &SecretWrite,
        cas: Option<i64>,
    ) -> StoreResult<WriteOutcome>;
    /// Reads the current (or a given) version of a live secret.
    async fn secret_get(
        &self,
        realm_id: &RealmId,
        env: &str,
        key: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<SecretVersion>>;
    /// Metadata of a secret with every version's metadata (history).
    async fn secret_history(
        &self,
        realm_id: &RealmId,
        env: &str,
        key: &str,
    ) -> StoreResult<Option<(SecretMeta, Vec<VersionMeta>)>>;
    /// Lists live secrets in an environment after `after` (exclusive), key order.
    async fn secret_list(
        &self,
        realm_id: &RealmId,
        env: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<SecretMeta>>;
    /// Soft-deletes a secret (history is kept; a later write continues the numbering).
    async fn secret_delete(
        &self,
        realm_id: &RealmId,
        env: &str,
        key: &str,
        by: &str,
        at: i64,
    ) -> StoreResult<bool>;
}
