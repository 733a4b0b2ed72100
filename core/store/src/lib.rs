//! The store: Arcan's persistence, one interface over two implementations (SQLite and
//! PostgreSQL).
//!
//! Guardian #6 of the architecture. Every method that touches realm-owned data takes the
//! realm's [`RealmId`] as a parameter and puts it in the `WHERE` clause, so there is no method
//! that can return another realm's rows. Values stored here that are secret (secret
//! versions, wrapped data keys) arrive already encrypted; the store never sees plaintext.
//!
//! The interface is split by domain: [`IdentityStore`] (users, tokens), [`RealmStore`]
//! (realms, data keys, roles, bindings), [`SecretStore`] (KV), [`AuditStore`] (the chained
//! log and its sinks), [`EngineStore`] (mounts, plugin data, leases) and [`AuthStore`]
//! (machine-identity methods and login roles); [`Store`] is all of
//! them plus the few deployment-wide methods. Callers holding an `Arc<dyn Store>` bring the
//! domain traits into scope with `use arcan_store::prelude::*;`.
//!
//! Both implementations are one generic [`SqlStore`] over a [`SqlBackend`] (see [`sql`] for
//! what a backend provides). Not here: sealing policy beyond [`sealing`]'s helpers,
//! authorization (the store trusts its caller with the realm id it passes), HTTP.

mod audit;
mod auth;
pub mod change;
mod engines;
mod identity;
mod ids;
mod linking;
mod model;
mod postgres;
mod realms;
pub mod sealing;
mod secrets;
pub mod sql;
mod sqlite;

pub use audit::AuditStore;
pub use auth::{AuthStore, RolePut, managed_role_name};
pub use engines::*;
pub use identity::IdentityStore;
pub use ids::*;
pub use model::*;
pub use postgres::{PgBackend, PgStore};
pub use realms::RealmStore;
pub use secrets::{SecretStore, WriteOutcome};
pub use sql::{SqlBackend, SqlStore};
pub use sqlite::{SqliteBackend, SqliteStore};

/// The store's traits, for callers that hold an `Arc<dyn Store>` and call its methods.
pub mod prelude {
    pub use crate::{
        AuditStore, AuthStore, EngineStore, IdentityStore, RealmStore, SecretStore, Store,
    };
}

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

/// The persistence interface of Arcan: every domain store, plus what concerns the whole
/// deployment.
#[async_trait::async_trait]
pub trait Store:
    IdentityStore
    + RealmStore
    + SecretStore
    + AuditStore
    + EngineStore
    + AuthStore
    + Send
    + Sync
    + 'static
{
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
}
