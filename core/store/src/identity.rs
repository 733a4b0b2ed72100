//! Users and API tokens (system scope; the auth guardian's trusted path).

use async_trait::async_trait;

use crate::{StoreResult, TokenId, TokenRecord, User, UserId};

/// Persistence of users and tokens.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Creates a user; `Conflict` when the email is taken.
    async fn user_create(&self, user: &User) -> StoreResult<()>;
    /// Looks a user up by email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;

    /// Stores a new token record (only its hash); `Conflict` when its parent is revoked.
    async fn token_create(&self, token: &TokenRecord) -> StoreResult<()>;
    /// Finds a token by the SHA-256 of its secret.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Finds a token by id.
    async fn token_by_id(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>>;
    /// Lists a user's tokens, newest first.
    async fn tokens_of_user(&self, user_id: &UserId) -> StoreResult<Vec<TokenRecord>>;
    /// True when an ancestor of the token is revoked or gone. Revocation marks the whole
    /// tree, but a child minted concurrently with it (PostgreSQL runs the two at once) may
    /// miss the mark; authentication asks this, so such a child is dead all the same.
    async fn token_lineage_broken(&self, id: &TokenId) -> StoreResult<bool>;
    /// Every token, newest first, at most `limit` (operators' view).
    async fn tokens_all(&self, limit: i64) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token and all its descendants (lineage through `parent_id`) in one
    /// statement; returns the hashes of the tokens it revoked (for cache eviction).
    async fn token_revoke(&self, id: &TokenId, at: i64) -> StoreResult<Vec<String>>;
}
