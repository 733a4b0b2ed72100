//! The embedded SQLite backend: one file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::change::{ChangeKind, Claim};
use crate::crypto::ChainKey;

/// Committed audit batches kept for live sinks before a slow one must catch up from the store.
const LIVE_BATCHES: usize = 64;

/// The SQLite implementation of [`Store`].
///
/// KV writes and audit batches go through one writer task that commits whatever is queued
/// in a single transaction (group commit): one fsync acknowledges many writes, and writers
/// never contend for SQLite's lock. This process is the database's only writer, so current
/// versions are cached coherently in memory (still sealed): a write or delete evicts its
/// key before it is acknowledged.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serialises this process's write transactions, so writers queue here instead of
    /// sleeping in SQLite's busy handler.
    write: Arc<tokio::sync::Mutex<()>>,
    writes: mpsc::Sender<WriteJob>,
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

/// A queued write and where to send its outcome. KV writes and audit batches share the
/// writer, so one commit (one fsync) covers both.
#[derive(Debug)]
enum WriteJob {
    Kv {
        realm_id: String,
        write: SecretWrite,
        cas: Option<i64>,
        claim: Option<Claim>,
        reply: oneshot::Sender<StoreResult<WriteOutcome>>,
    },
    Audit {
        events: Vec<NewAuditEvent>,
        reply: oneshot::Sender<StoreResult<Vec<AuditRow>>>,
    },
    Lease {
        lease: Box<LeaseRecord>,
        claim: Option<Claim>,
        reply: oneshot::Sender<StoreResult<()>>,
    },
}

/// What a job produced.
enum Done {
    Kv(WriteOutcome),
    Audit(Vec<AuditRow>),
    Lease,
}

/// A job's outcome and the audit rows it appended.
type Ran = (Done, Vec<AuditRow>);

impl WriteJob {
    /// Makes the job's change in `tx` and returns its outcome with the audit events it
    /// appends; the round appends every job's events at once (one chain-head lookup and one
    /// multi-row insert per round, not per job).
    async fn run(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> StoreResult<(Done, Vec<NewAuditEvent>)> {
        match self {
            WriteJob::Kv {
                realm_id,
                write,
                cas,
                claim,
                ..
            } => {
                let out = put_in_tx(tx, realm_id, write, *cas).await?;
                let events = match (&out, claim) {
                    (WriteOutcome::Written(meta), Some(c)) => {
                        vec![c.event(&[("version", meta.version.into())])]
                    }
                    _ => Vec::new(),
                };
                Ok((Done::Kv(out), events))
            }
            WriteJob::Audit { events, .. } => Ok((Done::Audit(Vec::new()), events.clone())),
            WriteJob::Lease { lease, claim, .. } => {
                engine_store::lease_insert(tx, lease).await?;
                let events = match claim {
                    Some(c) => vec![c.event(&super::change::lease_facts(lease))],
                    None => Vec::new(),
                };
                Ok((Done::Lease, events))
            }
        }
    }

    /// Marks the job's claimed event committed (its transaction committed).
    fn commit_claim(&mut self) {
        let claim = match self {
            WriteJob::Kv { claim, .. } | WriteJob::Lease { claim, .. } => claim.take(),
            WriteJob::Audit { .. } => None,
        };
        if let Some(c) = claim {
            c.commit();
        }
    }

    fn reply(self, out: StoreResult<Done>) {
        match (self, out) {
            (WriteJob::Kv { reply, .. }, Ok(Done::Kv(o))) => {
                let _ = reply.send(Ok(o));
            }
            (WriteJob::Audit { reply, .. }, Ok(Done::Audit(rows))) => {
                let _ = reply.send(Ok(rows));
            }
            (WriteJob::Kv { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (WriteJob::Audit { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (WriteJob::Lease { reply, .. }, Ok(Done::Lease)) => {
                let _ = reply.send(Ok(()));
            }
            (WriteJob::Lease { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (WriteJob::Lease { reply, .. }, Ok(_)) => {
                let _ = reply.send(Err(StoreError::Corrupt("writer outcome mismatch".into())));
            }
            (WriteJob::Kv { reply, .. }, Ok(_)) => {
                let _ = reply.send(Err(StoreError::Corrupt("writer outcome mismatch".into())));
            }
            (WriteJob::Audit { reply, .. }, Ok(_)) => {
                let _ = reply.send(Err(StoreError::Corrupt("writer outcome mismatch".into())));
            }
        }
    }

    /// The KV key this job changes, for cache eviction.
    fn kv_key(&self) -> Option<(&str, &str, &str)> {
        match self {
            WriteJob::Kv {
                realm_id, write, ..
            } => Some((realm_id, &write.env, &write.key)),
            WriteJob::Audit { .. } | WriteJob::Lease { .. } => None,
        }
    }
}

/// Secrets whose current version is kept in memory (sealed).
const CACHED_SECRETS: u64 = 100_000;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

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
        let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
        let chain_key = Arc::new(std::sync::OnceLock::new());
        let (live, _) = broadcast::channel(LIVE_BATCHES);
        tokio::spawn(group_commit(
            Writer {
                pool: pool.clone(),
                reads: reads.clone(),
                write: write.clone(),
                chain_key: chain_key.clone(),
                live: live.clone(),
            },
            jobs,
        ));
        Ok(Self {
            pool,
            write,
            writes,
            reads,
            chain_key,
            live,
        })
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
            .send(job(reply))
            .await
            .map_err(|_| StoreError::Corrupt("the SQLite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Corrupt("the SQLite writer dropped a write".into()))?
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

/// What the writer task owns.
struct Writer {
    pool: SqlitePool,
    reads: Arc<ReadCache>,
    write: Arc<tokio::sync::Mutex<()>>,
    chain_key: Arc<std::sync::OnceLock<ChainKey>>,
    live: broadcast::Sender<Arc<Vec<AuditRow>>>,
}

async fn run_batch(pool: &SqlitePool, key: &ChainKey, batch: &[WriteJob]) -> StoreResult<Vec<Ran>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut done = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for job in batch {
        let (d, e) = job.run(&mut tx).await?;
        done.push((d, e.len()));
        events.extend(e);
    }
    // Rows come back in input order (gseq is assigned in insertion order): hand each job
    // its own.
    let mut rows = audit_in_tx(&mut tx, key, &events).await?.into_iter();
    tx.commit().await?;
    Ok(done
        .into_iter()
        .map(|(d, n)| {
            let mine: Vec<AuditRow> = rows.by_ref().take(n).collect();
            let d = match d {
                Done::Audit(_) => Done::Audit(mine.clone()),
                other => other,
            };
            (d, mine)
        })
        .collect())
}

/// The writer task: drains the queue into one transaction per round. When a batch fails,
/// each write is retried alone so one bad write cannot fail its neighbours. The audit rows
/// a round committed go to live sinks in one batch, in `gseq` order, before the write lock
/// is released.
async fn group_commit(w: Writer, mut jobs: mpsc::Receiver<WriteJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Evict before and after: before, so a read in flight cannot cache the old value
        // under the old epoch; after (and before replying), so nothing read during the
        // commit survives it.
        let evict = |batch: &[WriteJob]| {
            for (realm, env, key) in batch.iter().filter_map(WriteJob::kv_key) {
                w.reads.evict(realm, env, key);
            }
        };
        evict(&batch);
        let Some(key) = w.chain_key.get() else {
            for job in batch {
                job.reply(Err(StoreError::Corrupt(
                    "the audit chain key is not loaded".into(),
                )));
            }
            continue;
        };
        let guard = w.write.lock().await;
        let outcomes: Vec<StoreResult<Ran>> = match run_batch(&w.pool, key, &batch).await {
            Ok(outs) => outs.into_iter().map(Ok).collect(),
            Err(_) => {
                let mut outs = Vec::with_capacity(batch.len());
                for job in &batch {
                    let one = run_batch(&w.pool, key, std::slice::from_ref(job)).await;
                    outs.push(one.map(|mut o| o.remove(0)));
                }
                outs
            }
        };
        let mut committed = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        for (mut job, out) in batch.into_iter().zip(outcomes) {
            replies.push(match out {
                Ok((done, rows)) => {
                    // Only a job that appended the request's event commits its claim (a
                    // refused check-and-set wrote nothing and carries no event).
                    if !rows.is_empty() {
                        job.commit_claim();
                    }
                    committed.extend(rows);
                    (job, Ok(done))
                }
                Err(e) => (job, Err(e)),
            });
        }
        if !committed.is_empty() {
            committed.sort_by_key(|r| r.gseq);
            let _ = w.live.send(Arc::new(committed));
        }
        drop(guard);
        for (job, _) in &replies {
            if let Some((realm, env, key)) = job.kv_key() {
                w.reads.evict(realm, env, key);
            }
        }
        for (job, out) in replies {
            job.reply(out);
        }
    }
}

super::sql::impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "sqlite",
    "SELECT 1",
    "BEGIN IMMEDIATE"
);

super::engine_sql::impl_engine_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "");
