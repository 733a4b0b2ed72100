//! The embedded SQLite backend: one file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::change::ChangeKind;
use arcan_crypto::ChainKey;

mod writer;

use writer::{Queued, WriteJob};

/// Writes queued for the writer thread before submitters wait.
const WRITE_QUEUE: usize = 2048;

/// Committed audit batches kept for live sinks before a slow one must catch up from the store.
const LIVE_BATCHES: usize = 64;

/// The SQLite implementation of [`Store`].
///
/// KV writes, leases and audit batches go through one writer thread that commits whatever
/// is queued in a single transaction (group commit, see [`writer`]): one fsync acknowledges many writes, and writers
/// never contend for SQLite's lock. This process is the database's only writer, so current
/// versions are cached coherently in memory (still sealed): a write or delete evicts its
/// key before it is acknowledged.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions, so writers queue here instead of
    /// sleeping in SQLite's busy handler.
    write: Arc<tokio::sync::Mutex<()>>,
    writes: mpsc::Sender<Queued>,
    reads: Arc<ReadCache>,
    chain_key: Arc<std::sync::OnceLock<ChainKey>>,
    live: broadcast::Sender<Arc<Vec<AuditRow>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Current versions by `realm\0env\0key`, and an epoch bumped by every eviction so a read
/// that raced a write never caches what it read.
struct ReadCache {
    current: moka::sync::Cache<String, Option<SecretVersion>>,
    epoch: AtomicU64,
}

impl ReadCache {
    fn key(realm_id: &str, env: &str, key: &str) -> String {
        format!("{realm_id}\0{env}\0{key}")
    }

    fn evict(&self, realm_id: &str, env: &str, key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.current.invalidate(&Self::key(realm_id, env, key));
    }
}

/// Secrets whose current version is kept in memory (sealed).
const CACHED_SECRETS: u64 = 100_000;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    ///
    /// `synchronous_full` makes every commit fsync the WAL (durable across power loss);
    /// with `false` commits survive a process crash (`kill -9`) but not a power cut.
    pub async fn open(path: &Path, synchronous_full: bool) -> StoreResult<Self> {
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A commit that failed (disk full, I/O error) can leave a connection whose
            // transaction SQLite already rolled back while sqlx still counts it open; such a
            // connection could never begin again. Close it instead of reusing it (also
            // closes the rare one whose rollback is merely still queued).
            .after_release(|conn, _| {
                use sqlx::Connection as _;
                let clean = !conn.is_in_transaction();
                Box::pin(async move { Ok(clean) })
            })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let reads = Arc::new(ReadCache {
            current: moka::sync::Cache::builder()
                .max_capacity(CACHED_SECRETS)
                .build(),
            epoch: AtomicU64::new(0),
        });
        let write = Arc::new(tokio::sync::Mutex::new(()));
        let (writes, jobs) = mpsc::channel(WRITE_QUEUE);
        let chain_key = Arc::new(std::sync::OnceLock::new());
        let (live, _) = broadcast::channel(LIVE_BATCHES);
        writer::spawn(
            writer::Writer {
                conn: writer::connect(path, synchronous_full)?,
                reads: reads.clone(),
                write: write.clone(),
                chain_key: chain_key.clone(),
                live: live.clone(),
            },
            jobs,
        )?;
        Ok(Self {
            pool,
            write,
            writes,
            reads,
            chain_key,
            live,
        })
    }

    /// Shutdown: the writer commits what is queued and closes its connection.
    async fn stop_writer(&self) {
        let (done, stopped) = oneshot::channel();
        if self.writes.send(Queued::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// Committed audit rows for live sinks, in commit order (the caller holds the write
    /// lock, so batches are sent in `gseq` order).
    fn publish(&self, rows: Vec<AuditRow>) {
        if !rows.is_empty() {
            let _ = self.live.send(Arc::new(rows));
        }
    }

    fn feed(&self) -> Option<broadcast::Receiver<Arc<Vec<AuditRow>>>> {
        Some(self.live.subscribe())
    }

    /// Leases share the group-commit writer: one fsync acknowledges many issued credentials.
    async fn put_lease(&self, lease: &LeaseRecord) -> StoreResult<()> {
        let lease = Box::new(lease.clone());
        let claim = super::change::claim(ChangeKind::Lease);
        self.submit(|reply| WriteJob::Lease {
            lease,
            claim,
            reply,
        })
        .await
    }

    async fn append_audit(&self, events: &[NewAuditEvent]) -> StoreResult<Vec<AuditRow>> {
        let events = events.to_vec();
        self.submit(|reply| WriteJob::Audit { events, reply }).await
    }

    /// Queues a job for the writer task and waits for its outcome.
    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> WriteJob,
    ) -> StoreResult<T> {
        let (reply, outcome) = oneshot::channel();
        self.writes
            .send(Queued::Job(job(reply)))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer dropped a write".into()))?
    }

    async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.write.lock().await)
    }

    async fn get_secret(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<SecretVersion>> {
        if version.is_some() {
            return fetch_secret(&self.pool, realm_id, env, key, version).await;
        }
        let cache_key = ReadCache::key(realm_id, env, key);
        if let Some(hit) = self.reads.current.get(&cache_key) {
            return Ok(hit);
        }
        let epoch = self.reads.epoch.load(Ordering::SeqCst);
        let found = fetch_secret(&self.pool, realm_id, env, key, None).await?;
        if self.reads.epoch.load(Ordering::SeqCst) == epoch {
            self.reads.current.insert(cache_key.clone(), found.clone());
            // A write that evicted between the check and the insert: drop what we cached.
            if self.reads.epoch.load(Ordering::SeqCst) != epoch {
                self.reads.current.invalidate(&cache_key);
            }
        }
        Ok(found)
    }

    fn invalidate(&self, realm_id: &str, env: &str, key: &str) {
        self.reads.evict(realm_id, env, key);
    }

    fn invalidate_realm(&self, _realm_id: &str) {
        self.reads.epoch.fetch_add(1, Ordering::SeqCst);
        self.reads.current.invalidate_all();
    }

    async fn put_secret(
        &self,
        realm_id: &str,
        w: &SecretWrite,
        cas: Option<i64>,
    ) -> StoreResult<WriteOutcome> {
        let (realm_id, write) = (realm_id.to_owned(), w.clone());
        let claim = super::change::claim(ChangeKind::Secret);
        self.submit(|reply| WriteJob::Kv {
            realm_id,
            write,
            cas,
            claim,
            reply,
        })
        .await
    }
}

super::sql::impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "sqlite",
    // One process writes, under its write lock.
    None::<&str>,
    "BEGIN IMMEDIATE"
);

super::engine_sql::impl_engine_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "");
