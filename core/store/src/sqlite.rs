//! The embedded SQLite backend: one file in WAL mode, one process writing it.
//!
//! KV writes, leases and audit batches go through one writer thread that commits whatever
//! is queued in a single transaction (group commit, see [`writer`]): one fsync acknowledges
//! many writes, and writers never contend for SQLite's lock. This process is the database's
//! only writer, so current versions are cached coherently in memory (still sealed): a write
//! or delete evicts its key before it is acknowledged.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{MutexGuard, broadcast, mpsc, oneshot};

use crate::change::{self, ChangeKind};
use crate::sql::{Sealed, SqlBackend, SqlStore};
use crate::{
    AuditRow, LeaseRecord, NewAuditEvent, RealmId, SecretVersion, SecretWrite, StoreError,
    StoreResult, WriteOutcome,
};

mod writer;

use writer::{Queued, WriteJob};

/// Writes queued for the writer thread before submitters wait.
const WRITE_QUEUE: usize = 2048;

/// Committed audit batches kept for live sinks before a slow one must catch up from the store.
const LIVE_BATCHES: usize = 64;

/// Secrets whose current version is kept in memory (sealed).
const CACHED_SECRETS: u64 = 100_000;

/// The SQLite implementation of [`Store`](crate::Store).
pub type SqliteStore = SqlStore<SqliteBackend>;

/// SQLite as a [`SqlBackend`]: a read pool, and the [`SingleWriter`].
#[derive(Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    writer: SingleWriter,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").finish_non_exhaustive()
    }
}

impl Sealed for SqliteBackend {}

impl SqlBackend for SqliteBackend {
    type Db = sqlx::Sqlite;
    const NAME: &'static str = "sqlite";
    // Takes the write lock at once: no read-then-upgrade deadlock.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // One process writes, under its write lock.
    const APPEND_LOCK: Option<&'static str> = None;
    const SKIP_LOCKED: &'static str = "";

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn single_writer(&self) -> Option<&SingleWriter> {
        Some(&self.writer)
    }
}

impl SqlStore<SqliteBackend> {
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
        let writer = SingleWriter {
            write,
            writes,
            reads,
            live,
        };
        Ok(Self::with_backend(
            SqliteBackend { pool, writer },
            chain_key,
        ))
    }
}

/// The process's single writer of an SQLite database: its write lock, the queue of its
/// group-commit thread, the current-version cache it keeps coherent, and the live feed of
/// the audit rows it commits.
#[derive(Clone)]
pub struct SingleWriter {
    /// Serialises this process's write transactions, so writers queue here instead of
    /// sleeping in SQLite's busy handler.
    write: Arc<tokio::sync::Mutex<()>>,
    writes: mpsc::Sender<Queued>,
    reads: Arc<ReadCache>,
    live: broadcast::Sender<Arc<Vec<AuditRow>>>,
}

impl std::fmt::Debug for SingleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleWriter").finish_non_exhaustive()
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

impl SingleWriter {
    /// The process's write lock (the writer thread takes it for each round).
    pub(crate) async fn lock(&self) -> MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// Committed audit rows for live sinks, in commit order (the caller holds the write
    /// lock, so batches are sent in `gseq` order).
    pub(crate) fn publish(&self, rows: Vec<AuditRow>) {
        if !rows.is_empty() {
            let _ = self.live.send(Arc::new(rows));
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<AuditRow>>> {
        self.live.subscribe()
    }

    /// Shutdown: the writer commits what is queued and closes its connection.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.writes.send(Queued::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// A KV write, group-committed.
    pub(crate) async fn put_secret(
        &self,
        realm_id: &RealmId,
        w: &SecretWrite,
        cas: Option<i64>,
    ) -> StoreResult<WriteOutcome> {
        let (realm_id, write) = (realm_id.clone(), w.clone());
        let claim = change::claim(ChangeKind::Secret);
        self.submit(|reply| WriteJob::Kv {
            realm_id,
            write,
            cas,
            claim,
            reply,
        })
        .await
    }

    /// Leases share the group-commit writer: one fsync acknowledges many issued credentials.
    pub(crate) async fn put_lease(&self, lease: &LeaseRecord) -> StoreResult<()> {
        let lease = Box::new(lease.clone());
        let claim = change::claim(ChangeKind::Lease);
        self.submit(|reply| WriteJob::Lease {
            lease,
            claim,
            reply,
        })
        .await
    }

    /// An audit batch, group-committed with whatever else is queued.
    pub(crate) async fn append_audit(
        &self,
        events: &[NewAuditEvent],
    ) -> StoreResult<Vec<AuditRow>> {
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

    /// A secret's current version from the cache, or from `fetch` (cached unless a write
    /// evicted meanwhile).
    pub(crate) async fn cached_current(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        fetch: impl Future<Output = StoreResult<Option<SecretVersion>>>,
    ) -> StoreResult<Option<SecretVersion>> {
        let cache_key = ReadCache::key(realm_id, env, key);
        if let Some(hit) = self.reads.current.get(&cache_key) {
            return Ok(hit);
        }
        let epoch = self.reads.epoch.load(Ordering::SeqCst);
        let found = fetch.await?;
        if self.reads.epoch.load(Ordering::SeqCst) == epoch {
            self.reads.current.insert(cache_key.clone(), found.clone());
            // A write that evicted between the check and the insert: drop what we cached.
            if self.reads.epoch.load(Ordering::SeqCst) != epoch {
                self.reads.current.invalidate(&cache_key);
            }
        }
        Ok(found)
    }

    /// Evicts a secret's cached current version.
    pub(crate) fn evict(&self, realm_id: &str, env: &str, key: &str) {
        self.reads.evict(realm_id, env, key);
    }

    /// Evicts every cached version.
    pub(crate) fn evict_all(&self) {
        self.reads.epoch.fetch_add(1, Ordering::SeqCst);
        self.reads.current.invalidate_all();
    }
}
