//! Machine-identity auth methods and their login roles (system scope).
//!
//! A login role owns one principal (a [`UserKind::LoginRole`](crate::UserKind) user) and one
//! anchor token, the lineage parent of every token its logins mint. Its grants are ordinary
//! realm bindings of that principal, plus at most one role per realm that the login role
//! manages ([`managed_role_name`]); every statement on them names its realm.

use async_trait::async_trait;

use crate::{AuthMethod, AuthRole, Binding, RealmGrant, RealmId, StoreResult, TokenRecord, User};

/// The name of the realm role a login role manages for its capability-list grant. The dot
/// cannot occur in names created through the roles API, so it never clashes.
pub fn managed_role_name(method: &str, role: &str) -> String {
    format!("auth.{method}.{role}")
}

/// What writing a login role changes besides its row.
#[derive(Debug, Clone, Default)]
pub struct RolePut<'a> {
    /// The principal, when the role is new.
    pub principal: Option<&'a User>,
    /// A new anchor token, when the role is new or re-armed.
    pub anchor: Option<&'a TokenRecord>,
    /// Revoke this old anchor and every token under it (re-arming).
    pub revoke: Option<&'a TokenRecord>,
    /// The complete grants, realm by realm (realms not listed lose theirs).
    pub grants: &'a [RealmGrant],
}

/// Persistence of auth methods and login roles.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Stores a new method; `Conflict` when the name is taken.
    async fn auth_method_create(&self, method: &AuthMethod) -> StoreResult<()>;
    /// Replaces a method's description, config and secrets; false when it is gone.
    async fn auth_method_update(&self, method: &AuthMethod) -> StoreResult<bool>;
    /// Looks a method up by name.
    async fn auth_method_by_name(&self, name: &str) -> StoreResult<Option<AuthMethod>>;
    /// Every method, by name.
    async fn auth_methods(&self) -> StoreResult<Vec<AuthMethod>>;
    /// Deletes a method with all its roles, their grants, principals and tokens, in one
    /// transaction; returns the hashes of the tokens that were live (for cache eviction).
    async fn auth_method_delete(&self, method: &AuthMethod, at: i64) -> StoreResult<Vec<String>>;

    /// Creates or replaces a login role (see [`RolePut`]), in one transaction; returns the
    /// hashes of the tokens it revoked.
    async fn auth_role_put(
        &self,
        method: &AuthMethod,
        role: &AuthRole,
        put: RolePut<'_>,
        at: i64,
    ) -> StoreResult<Vec<String>>;
    /// Reads a login role.
    async fn auth_role_get(&self, method_id: &str, name: &str) -> StoreResult<Option<AuthRole>>;
    /// A method's login roles, by name.
    async fn auth_roles(&self, method_id: &str) -> StoreResult<Vec<AuthRole>>;
    /// The realms a login role's writes touch: where its principal is bound or its managed
    /// role exists.
    async fn auth_role_realms(
        &self,
        method: &AuthMethod,
        role: &AuthRole,
    ) -> StoreResult<Vec<RealmId>>;
    /// The live bindings of a login role's principal, in every realm.
    async fn auth_role_bindings(&self, role: &AuthRole) -> StoreResult<Vec<Binding>>;
    /// Deletes a login role, its grants, principal and tokens; returns the hashes of the
    /// tokens that were live.
    async fn auth_role_delete(
        &self,
        method: &AuthMethod,
        role: &AuthRole,
        at: i64,
    ) -> StoreResult<Vec<String>>;
}
