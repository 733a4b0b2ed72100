//! Realms and what defines them: their wrapped data keys, custom roles and bindings.

use async_trait::async_trait;

use crate::{Binding, BindingId, DataKey, Realm, RealmId, Role, StoreResult, TokenId, UserId};

/// Persistence of realms, data keys and RBAC.
#[async_trait]
pub trait RealmStore: Send + Sync {
    /// Creates a realm with its wrapped data key and an admin binding for its creator,
    /// atomically. `Conflict` when the slug is taken.
    async fn realm_create(
        &self,
        realm: &Realm,
        key: &DataKey,
        creator: &Binding,
    ) -> StoreResult<()>;
    /// Resolves a slug.
    async fn realm_by_slug(&self, slug: &str) -> StoreResult<Option<Realm>>;
    /// Lists all realms (system scope: callers filter by binding).
    async fn realms_all(&self) -> StoreResult<Vec<Realm>>;
    /// Deletes a realm and everything it owns.
    async fn realm_delete(&self, realm_id: &RealmId) -> StoreResult<bool>;

    /// The wrapped data key of a realm.
    async fn data_key(&self, realm_id: &RealmId) -> StoreResult<Option<DataKey>>;
    /// All wrapped data keys (master-key verify and rewrap).
    async fn data_keys_all(&self) -> StoreResult<Vec<DataKey>>;
    /// Replaces every data key and the given metadata values in one transaction
    /// (master-key rewrap).
    async fn data_keys_replace(
        &self,
        keys: &[DataKey],
        meta: &[(String, String)],
    ) -> StoreResult<()>;

    /// Creates or replaces a custom role in a realm.
    async fn role_put(&self, realm_id: &RealmId, role: &Role) -> StoreResult<()>;
    /// Reads a custom role.
    async fn role_get(&self, realm_id: &RealmId, name: &str) -> StoreResult<Option<Role>>;
    /// Lists a realm's custom roles.
    async fn roles(&self, realm_id: &RealmId) -> StoreResult<Vec<Role>>;
    /// Deletes a custom role and its bindings.
    async fn role_delete(&self, realm_id: &RealmId, name: &str) -> StoreResult<bool>;
    /// Adds a binding; `Conflict` when it exists.
    async fn binding_create(&self, binding: &Binding) -> StoreResult<()>;
    /// Lists a realm's bindings.
    async fn bindings(&self, realm_id: &RealmId) -> StoreResult<Vec<Binding>>;
    /// The bindings that apply to the given subjects in one realm.
    async fn bindings_for(
        &self,
        realm_id: &RealmId,
        user_id: &UserId,
        token_id: &TokenId,
    ) -> StoreResult<Vec<Binding>>;
    /// The ids of realms in which the user or the token has a binding.
    async fn realms_bound(&self, user_id: &UserId, token_id: &TokenId)
    -> StoreResult<Vec<RealmId>>;
    /// Deletes a binding by id within a realm.
    async fn binding_delete(&self, realm_id: &RealmId, id: &BindingId) -> StoreResult<bool>;
}
