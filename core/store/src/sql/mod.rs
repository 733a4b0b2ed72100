//! The SQL store: one implementation of every domain trait over an explicit backend
//! contract, [`SqlBackend`], which SQLite and PostgreSQL implement.
//!
//! The statements are written once in the subset both databases accept (`$n` placeholders,
//! `ON CONFLICT … DO UPDATE SET … = excluded.…`, `RETURNING`, recursive CTEs), so placeholders
//! and upserts are not part of the contract. What does differ is, and nothing else:
//! - the sqlx driver and its pool ([`SqlBackend::Db`], [`SqlBackend::pool`]);
//! - how a write transaction begins ([`SqlBackend::BEGIN_WRITE`]: SQLite takes its write lock
//!   at once with `BEGIN IMMEDIATE`);
//! - how audit appends are serialised ([`SqlBackend::APPEND_LOCK`]: an advisory lock shared
//!   by every PostgreSQL node; nothing on SQLite, whose writes are one process's);
//! - how the reaper's claim skips rows another node holds ([`SqlBackend::SKIP_LOCKED`]);
//! - how writes are submitted ([`SqlBackend::single_writer`]): with a single writer (SQLite)
//!   KV writes, leases and audit batches are group-committed by its thread, the process's
//!   other writes take its lock, and current secret versions are cached; without one
//!   (PostgreSQL, several nodes) every write is its own transaction.
//!
//! # Why the query code is a macro
//!
//! [`SqlStore<B>`] is generic, and so is everything that does not run a query (the chain
//! key, the write lock, the read cache, the live feed, shutdown). The query code is
//! expanded per backend by `impl_sql_store!` (`store.rs`), `impl_engine_store!`
//! (`engines.rs`) and `impl_auth_store!` (`auth.rs`), not written as `impl<B: SqlBackend> … for SqlStore<B>`: sqlx's executors
//! and argument lists are implemented per driver, so generic code needs a dozen
//! higher-ranked bounds (`for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>`,
//! `for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>`, `Encode`/`Decode`/`Type` for every
//! column type, `ColumnIndex` …) repeated on every impl, because Rust does not imply them
//! from a trait; and `#[async_trait]` methods over such generic executors run into rustc's
//! "implementation of `Executor` is not general enough" errors (launchbadge/sqlx#3150,
//! #3591). Expanded for a concrete backend, the same code type-checks against the real
//! driver. The macros' contract is still explicit and checked: they are expanded here, in
//! a module that cannot see the backends' fields or inherent methods, so everything they use
//! of a backend is an item of [`SqlBackend`] (or of the [`SingleWriter`] it returns).

mod auth;
mod engines;
mod store;

use std::sync::{Arc, OnceLock};

use tokio::sync::{MutexGuard, broadcast};

pub use crate::sqlite::SingleWriter;
use crate::{AuditRow, SecretVersion, StoreError, StoreResult};
use arcan_crypto::ChainKey;

mod sealed {
    /// Only this crate's backends implement [`super::SqlBackend`].
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// What the generic SQL store needs from a database backend (see the [module docs](self)).
pub trait SqlBackend: Sealed + Send + Sync + 'static {
    /// The sqlx driver.
    type Db: sqlx::Database;
    /// `sqlite` or `postgres`, for logs and `/health`.
    const NAME: &'static str;
    /// The statement that begins a write transaction.
    const BEGIN_WRITE: &'static str;
    /// Run first in an audit append's transaction, to serialise appends across nodes, so
    /// `gseq` values commit in order and a sink reading after its cursor never skips a row
    /// committed late. `None` when one process writes.
    const APPEND_LOCK: Option<&'static str>;
    /// Appended to the row selection of the reaper's claim (`FOR UPDATE SKIP LOCKED` where
    /// several nodes claim at once).
    const SKIP_LOCKED: &'static str;

    /// The connection pool (reads, and writes that do not go through a single writer).
    fn pool(&self) -> &sqlx::Pool<Self::Db>;
    /// The process's single writer, when the backend has one.
    fn single_writer(&self) -> Option<&SingleWriter>;
}

/// The store over a [`SqlBackend`]: [`crate::SqliteStore`] and [`crate::PgStore`].
pub struct SqlStore<B> {
    backend: B,
    chain_key: Arc<OnceLock<ChainKey>>,
}

impl<B: Clone> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            chain_key: self.chain_key.clone(),
        }
    }
}

impl<B: SqlBackend> std::fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &B::NAME)
            .finish_non_exhaustive()
    }
}

impl<B: SqlBackend> SqlStore<B> {
    /// A store over `backend`; `chain_key` is shared with the backend's writer, if any.
    pub(crate) fn with_backend(backend: B, chain_key: Arc<OnceLock<ChainKey>>) -> Self {
        Self { backend, chain_key }
    }

    /// The chain key, once [`crate::AuditStore::set_chain_key`] ran.
    fn loaded_chain_key(&self) -> StoreResult<&ChainKey> {
        self.chain_key
            .get()
            .ok_or_else(|| StoreError::Corrupt("the audit chain key is not loaded".into()))
    }

    fn put_chain_key(&self, key: ChainKey) {
        let _ = self.chain_key.set(key);
    }

    /// With a single writer, the process's write lock: the caller's write transaction then
    /// queues here instead of sleeping in SQLite's busy handler.
    async fn write_lock(&self) -> Option<MutexGuard<'_, ()>> {
        match self.backend.single_writer() {
            Some(w) => Some(w.lock().await),
            None => None,
        }
    }

    /// Committed audit rows for live sinks, in commit order (the caller holds the write
    /// lock). Only a single writer has a complete feed: elsewhere other nodes append too.
    fn publish(&self, rows: Vec<AuditRow>) {
        if let Some(w) = self.backend.single_writer() {
            w.publish(rows);
        }
    }

    fn live_feed(&self) -> Option<broadcast::Receiver<Arc<Vec<AuditRow>>>> {
        self.backend.single_writer().map(SingleWriter::subscribe)
    }

    /// Reads a secret version, through the current-version cache when there is one (only a
    /// single writer can keep it coherent); `fetch` reads the database.
    async fn read_secret(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        current: bool,
        fetch: impl Future<Output = StoreResult<Option<SecretVersion>>>,
    ) -> StoreResult<Option<SecretVersion>> {
        match self.backend.single_writer() {
            Some(w) if current => w.cached_current(realm_id, env, key, fetch).await,
            _ => fetch.await,
        }
    }

    /// Evicts a secret's cached current version.
    fn evict(&self, realm_id: &str, env: &str, key: &str) {
        if let Some(w) = self.backend.single_writer() {
            w.evict(realm_id, env, key);
        }
    }

    /// Evicts every cached version (a realm is gone).
    fn evict_all(&self) {
        if let Some(w) = self.backend.single_writer() {
            w.evict_all();
        }
    }

    /// Commits what the single writer has queued, then closes the pool.
    async fn shut_down(&self) {
        if let Some(w) = self.backend.single_writer() {
            w.stop().await;
        }
        self.backend.pool().close().await;
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn map_unique(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

/// Decodes a JSON string list column.
pub(crate) fn json_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Encodes a string list for a JSON column.
pub(crate) fn list_json(list: &[String]) -> StoreResult<String> {
    serde_json::to_string(list).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` prefix match.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

mod sqlite_queries {
    super::store::impl_sql_store!(crate::SqliteBackend);
    super::engines::impl_engine_store!(crate::SqliteBackend);
    super::auth::impl_auth_store!(crate::SqliteBackend);
}

mod postgres_queries {
    super::store::impl_sql_store!(crate::PgBackend);
    super::engines::impl_engine_store!(crate::PgBackend);
    super::auth::impl_auth_store!(crate::PgBackend);
}
