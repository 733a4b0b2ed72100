//! The store: one trait, two implementations (SQLite and PostgreSQL).
//!
//! Guardian #6 of the architecture. Every method that touches realm-owned data takes the
//! realm id as a parameter and puts it in the `WHERE` clause, so there is no method that can
//! return another realm's rows. Values stored here that are secret (secret versions, wrapped
//! data keys) arrive already encrypted; the store never sees plaintext.

pub mod change;
mod engine_sql;
mod engines;
mod linking;
mod model;
mod postgres;
pub mod sealing;
mod sql;
mod sqlite;

use async_trait::async_trait;

pub use engines::*;
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint rejected the write (duplicate slug, email, binding …).
    #[error("already exists")]
    Conflict,
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded database's writer failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Applying schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (corruption or a newer schema).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store cannot take writes now (its writer stopped, or the database is busy, full,
    /// read-only or failing); nothing was changed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The audit chain in the store was modified by someone without the chain key.
    #[error("audit log tampered with: {0}")]
    Tampered(String),
}

impl StoreError {
    /// True for the embedded database's outage result codes (BUSY, LOCKED, READONLY,
    /// IOERR, FULL, CANTOPEN, extended codes included), and for [`StoreError::Unavailable`].
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                sqlite_outage(f.extended_code)
            }
            _ => false,
        }
    }
}

/// SQLite (extended) result codes of an outage: BUSY, LOCKED, READONLY, IOERR, FULL,
/// CANTOPEN.
pub fn sqlite_outage(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 8 | 10 | 13 | 14)
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Outcome of a check-and-set write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write landed as this version.
    Written(SecretMeta),
    /// The CAS precondition failed; the current version is given (0 when absent).
    CasMismatch { current: i64 },
}

/// The persistence interface of Arcan.
#[async_trait]
pub trait Store: EngineStore + Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for logs and `/health`.
    fn backend(&self) -> &'static str;
    /// Cheap liveness probe.
    async fn ping(&self) -> StoreResult<()>;
    /// Shutdown: commits every write already queued, then closes the connections. Calls
    /// after it fail.
    async fn close(&self);

    // -- deployment metadata (system scope) --
    /// Reads a deployment-wide metadata value.
    async fn meta_get(&self, name: &str) -> StoreResult<Option<String>>;
    /// Sets a metadata value only if it is not set yet; returns the value now stored.
    async fn meta_init(&self, name: &str, value: &str) -> StoreResult<String>;
    /// Sets a metadata value.
    async fn meta_set(&self, name: &str, value: &str) -> StoreResult<()>;

    // -- users (system scope) --
    /// Creates a user; `Conflict` when the email is taken.
    async fn user_create(&self, user: &User) -> StoreResult<()>;
    /// Looks a user up by email.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;

    // -- tokens (system scope; the auth guardian's trusted path) --
    /// Stores a new token record (only its hash); `Conflict` when its parent is revoked.
    async fn token_create(&self, token: &TokenRecord) -> StoreResult<()>;
    /// Finds a token by the SHA-256 of its secret.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Finds a token by id.
    async fn token_by_id(&self, id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Lists a user's tokens, newest first.
    async fn tokens_of_user(&self, user_id: &str) -> StoreResult<Vec<TokenRecord>>;
    /// True when an ancestor of the token is revoked or gone. Revocation marks the whole
    /// tree, but a child minted concurrently with it (PostgreSQL runs the two at once) may
    /// miss the mark; authentication asks this, so such a child is dead all the same.
    async fn token_lineage_broken(&self, id: &str) -> StoreResult<bool>;
    /// Every token, newest first, at most `limit` (operators' view).
    async fn tokens_all(&self, limit: i64) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token and all its descendants (lineage through `parent_id`) in one
    /// statement; returns the hashes of the tokens it revoked (for cache eviction).
    async fn token_revoke(&self, id: &str, at: i64) -> StoreResult<Vec<String>>;

    // -- realms --
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
    async fn realm_delete(&self, realm_id: &str) -> StoreResult<bool>;

    // -- data keys --
    /// The wrapped data key of a realm.
    async fn data_key(&self, realm_id: &str) -> StoreResult<Option<DataKey>>;
    /// All wrapped data keys (master-key verify and rewrap).
    async fn data_keys_all(&self) -> StoreResult<Vec<DataKey>>;
    /// Replaces every data key and the given metadata values in one transaction
    /// (master-key rewrap).
    async fn data_keys_replace(
        &self,
        keys: &[DataKey],
        meta: &[(String, String)],
    ) -> StoreResult<()>;

    // -- RBAC --
    /// Creates or replaces a custom role in a realm.
    async fn role_put(&self, realm_id: &str, role: &Role) -> StoreResult<()>;
    /// Reads a custom role.
    async fn role_get(&self, realm_id: &str, name: &str) -> StoreResult<Option<Role>>;
    /// Lists a realm's custom roles.
    async fn roles(&self, realm_id: &str) -> StoreResult<Vec<Role>>;
    /// Deletes a custom role and its bindings.
    async fn role_delete(&self, realm_id: &str, name: &str) -> StoreResult<bool>;
    /// Adds a binding; `Conflict` when it exists.
    async fn binding_create(&self, binding: &Binding) -> StoreResult<()>;
    /// Lists a realm's bindings.
    async fn bindings(&self, realm_id: &str) -> StoreResult<Vec<Binding>>;
    /// The bindings that apply to the given subjects in one realm.
    async fn bindings_for(
        &self,
        realm_id: &str,
        user_id: &str,
        token_id: &str,
    ) -> StoreResult<Vec<Binding>>;
    /// The ids of realms in which the user or the token has a binding.
    async fn realms_bound(&self, user_id: &str, token_id: &str) -> StoreResult<Vec<String>>;
    /// Deletes a binding by id within a realm.
    async fn binding_delete(&self, realm_id: &str, id: &str) -> StoreResult<bool>;

    // -- KV secrets --
    /// Writes a new version of a secret. `cas` is the version the caller expects to be
    /// current (0: must not exist); `None` writes unconditionally.
    async fn secret_put(
        &self,
        realm_id: &str,
        write: &SecretWrite,
        cas: Option<i64>,
    ) -> StoreResult<WriteOutcome>;
    /// Reads the current (or a given) version of a live secret.
    async fn secret_get(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<SecretVersion>>;
    /// Metadata of a secret with every version's metadata (history).
    async fn secret_history(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
    ) -> StoreResult<Option<(SecretMeta, Vec<VersionMeta>)>>;
    /// Lists live secrets in an environment after `after` (exclusive), key order.
    async fn secret_list(
        &self,
        realm_id: &str,
        env: &str,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<SecretMeta>>;
    /// Soft-deletes a secret (history is kept; a later write continues the numbering).
    async fn secret_delete(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        by: &str,
        at: i64,
    ) -> StoreResult<bool>;

    // -- audit (the dispatcher's and the reaper's trusted path, and realm-scoped queries) --
    /// Appends events to their hash chains in one transaction; returns the stored rows
    /// (with their delivery order `gseq`), sorted by `gseq`.
    async fn audit_append(&self, events: &[NewAuditEvent]) -> StoreResult<Vec<AuditRow>>;
    /// True when this process is the store's only writer (SQLite), so the rows
    /// [`audit_append`](Store::audit_append) returns are every new event, in order.
    fn single_writer(&self) -> bool;
    /// Sets the key that links and signs audit chains (derived from the system key at
    /// boot); appends fail until it is set.
    fn set_chain_key(&self, key: arcan_crypto::ChainKey);
    /// Every batch of audit rows this process commits, in `gseq` order, for sinks that are
    /// caught up (single-writer stores; `None` elsewhere).
    fn audit_feed(&self)
    -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<AuditRow>>>>;
    /// A chain's signed head and its signature.
    async fn audit_signed_head(
        &self,
        chain: &str,
    ) -> StoreResult<Option<(arcan_crypto::ChainHead, String)>>;
    /// One realm's events matching a filter, in delivery order.
    async fn audit_list(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
    /// A chain's events after `after_seq`, in chain order.
    async fn audit_chain(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;
    /// Where a chain's verification starts after retention: (seq, hash).
    async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<(i64, String)>>;
    /// Events of every chain after a delivery cursor (sinks).
    async fn audit_after(&self, gseq: i64, limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// The newest `gseq` (0 when empty).
    async fn audit_head(&self) -> StoreResult<i64>;
    /// Deletes events older than `before`, recording per-chain checkpoints first; returns
    /// how many were deleted.
    async fn audit_prune(&self, before: i64) -> StoreResult<u64>;
    /// Creates or updates a sink (its cursor is kept).
    async fn sink_put(&self, sink: &SinkRow) -> StoreResult<()>;
    /// All sinks.
    async fn sinks(&self) -> StoreResult<Vec<SinkRow>>;
    /// Removes a sink.
    async fn sink_delete(&self, name: &str) -> StoreResult<bool>;
    /// Moves a sink's cursor.
    async fn sink_advance(&self, name: &str, cursor: i64) -> StoreResult<()>;
}
