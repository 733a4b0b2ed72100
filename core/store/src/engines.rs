//! Records and store interface of engine mounts, engine roles, plugin data and leases.
//!
//! Like the rest of the store, every method on realm-owned rows takes the realm id; the
//! only cross-realm method is [`EngineStore::leases_claim_due`], used by the reaper, which
//! returns each lease with its realm id so the revocation runs scoped to it.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::{LeaseId, LeaseState, RealmId, TokenId};

/// An engine mounted in a realm.
#[derive(Debug, Clone)]
pub struct MountRecord {
    /// Stable id (plugin data and leases refer to it).
    pub id: String,
    /// Owning realm.
    pub realm_id: RealmId,
    /// Mount name, unique in the realm.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin version at mount time.
    pub plugin_version: String,
    /// sha256 of the component loaded at mount time.
    pub digest: String,
    /// The engine's normalised configuration (JSON, not secret).
    pub config: String,
    /// Capabilities granted by the operator.
    pub grants: Vec<String>,
    /// Public view of the connections (JSON, no credentials).
    pub connections: String,
    /// Connections with their credentials, sealed under the realm's data key.
    pub connections_sealed: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// Who mounted it.
    pub created_by: String,
    /// Last change (configuration or connection credentials).
    pub updated_at: i64,
}

/// A role of an engine mount.
#[derive(Debug, Clone)]
pub struct EngineRoleRecord {
    /// Role name, unique in the mount.
    pub name: String,
    /// The role definition as normalised by the engine (JSON, not secret).
    pub definition: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A lease on an issued credential.
#[derive(Debug, Clone)]
pub struct LeaseRecord {
    /// `<mount>/<role>/<uuid>`.
    pub id: LeaseId,
    /// Owning realm.
    pub realm_id: RealmId,
    /// The mount that issued it (kept after unmount).
    pub mount_id: String,
    /// Mount name at issue.
    pub mount: String,
    /// Role name.
    pub role: String,
    /// Plugin name.
    pub plugin: String,
    /// The role definition at issue (revocation uses it even if the role changed).
    pub role_definition: String,
    /// Engine-private state, sealed.
    pub internal: Vec<u8>,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Renewals never go past this.
    pub max_expires_at: i64,
    /// Renew is allowed.
    pub renewable: bool,
    /// Revoke has work to do (otherwise it simply expires).
    pub revocable: bool,
    /// Where the lease is in its life.
    pub state: LeaseState,
    /// Issuing user.
    pub issued_by: Option<String>,
    /// Issuing token.
    pub token_id: Option<TokenId>,
    /// Failed revocation attempts.
    pub attempts: i32,
    /// Earliest next attempt after a failure.
    pub next_attempt_at: Option<i64>,
    /// A revocation in progress holds the lease until then.
    pub claimed_until: Option<i64>,
    /// The last revocation error.
    pub last_error: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// Lease listing filter.
#[derive(Debug, Clone, Default)]
pub struct LeaseFilter {
    /// Only ids starting with this.
    pub prefix: Option<String>,
    /// Only this state.
    pub state: Option<LeaseState>,
    /// Ids after this (cursor).
    pub after: Option<String>,
    /// Page size.
    pub limit: i64,
}

/// Persistence of engines and leases.
#[async_trait]
pub trait EngineStore: Send + Sync {
    /// Creates a mount; [`super::StoreError::Conflict`] when the name is taken.
    async fn mount_create(&self, m: &MountRecord) -> StoreResult<()>;
    /// A mount by name.
    async fn mount_get(&self, realm_id: &RealmId, name: &str) -> StoreResult<Option<MountRecord>>;
    /// A mount by id.
    async fn mount_by_id(&self, realm_id: &RealmId, id: &str) -> StoreResult<Option<MountRecord>>;
    /// The realm's mounts, by name.
    async fn mounts(&self, realm_id: &RealmId) -> StoreResult<Vec<MountRecord>>;
    /// Replaces a mount's configuration and connections.
    async fn mount_update(&self, m: &MountRecord) -> StoreResult<bool>;
    /// Removes a mount with its roles and plugin data.
    async fn mount_delete(&self, realm_id: &RealmId, id: &str) -> StoreResult<bool>;

    /// Creates or replaces a role.
    async fn engine_role_put(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        role: &EngineRoleRecord,
    ) -> StoreResult<()>;
    /// A role.
    async fn engine_role_get(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        name: &str,
    ) -> StoreResult<Option<EngineRoleRecord>>;
    /// The mount's roles, by name.
    async fn engine_roles(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
    ) -> StoreResult<Vec<EngineRoleRecord>>;
    /// Removes a role.
    async fn engine_role_delete(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        name: &str,
    ) -> StoreResult<bool>;

    /// A plugin data value (sealed).
    async fn plugin_data_get(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        key: &str,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Stores a plugin data value (sealed).
    async fn plugin_data_put(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        key: &str,
        value: &[u8],
        at: i64,
    ) -> StoreResult<()>;
    /// Removes a plugin data value.
    async fn plugin_data_delete(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        key: &str,
    ) -> StoreResult<bool>;
    /// How much plugin data a mount holds apart from `except_key`: (keys, bytes of keys
    /// and sealed values).
    async fn plugin_data_usage(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        except_key: &str,
    ) -> StoreResult<(u64, u64)>;
    /// Plugin data keys with a prefix, sorted.
    async fn plugin_data_keys(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
        prefix: &str,
        limit: i64,
    ) -> StoreResult<Vec<String>>;

    /// Records a new lease.
    async fn lease_create(&self, l: &LeaseRecord) -> StoreResult<()>;
    /// A lease.
    async fn lease_get(&self, realm_id: &RealmId, id: &LeaseId)
    -> StoreResult<Option<LeaseRecord>>;
    /// A page of the realm's leases, by id.
    async fn leases(&self, realm_id: &RealmId, f: &LeaseFilter) -> StoreResult<Vec<LeaseRecord>>;
    /// Moves an active lease's expiry; false when it is not active.
    async fn lease_extend(
        &self,
        realm_id: &RealmId,
        id: &LeaseId,
        expires_at: i64,
    ) -> StoreResult<bool>;
    /// Claims one active, unclaimed lease for revocation until `until`.
    async fn lease_claim(
        &self,
        realm_id: &RealmId,
        id: &LeaseId,
        now: i64,
        until: i64,
    ) -> StoreResult<Option<LeaseRecord>>;
    /// Claims up to `limit` expired active leases due for revocation, across realms. With
    /// several nodes, each lease is claimed by one of them (row locks, `SKIP LOCKED`).
    async fn leases_claim_due(
        &self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<LeaseRecord>>;
    /// Active leases of a mount.
    async fn leases_of_mount(
        &self,
        realm_id: &RealmId,
        mount_id: &str,
    ) -> StoreResult<Vec<LeaseRecord>>;
    /// Ends a claimed lease in `state` (revoked, expired, irrevocable).
    async fn lease_finish(
        &self,
        realm_id: &RealmId,
        id: &LeaseId,
        state: LeaseState,
        at: i64,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Records a failed revocation and releases the claim until `next_attempt_at`.
    async fn lease_failed(
        &self,
        realm_id: &RealmId,
        id: &LeaseId,
        attempts: i32,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// Counts leases in a state, across realms (for metrics and status).
    async fn leases_count(&self, state: LeaseState) -> StoreResult<i64>;
}
