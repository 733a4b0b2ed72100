//! The embedded SQLite backend: one file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The SQLite implementation of [`Store`].
///
/// KV writes go through one writer task that commits whatever writes are queued in a
/// single transaction (group commit): one fsync acknowledges many writes, and writers
/// never contend for SQLite's lock.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writes: mpsc::Sender<WriteJob>,
}

/// A queued KV write and where to send its outcome.
#[derive(Debug)]
struct WriteJob {
    realm_id: String,
    write: SecretWrite,
    cas: Option<i64>,
    reply: oneshot::Sender<StoreResult<WriteOutcome>>,
}

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
            .connect_with(opts)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let (writes, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(group_commit(pool.clone(), jobs));
        Ok(Self { pool, writes })
    }

    async fn put_secret(&self, realm_id: &str, w: &SecretWrite, cas: Option<i64>) -> StoreResult<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        let job = WriteJob { realm_id: realm_id.to_owned(), write: w.clone(), cas, reply };
        self.writes
            .send(job)
            .await
            .map_err(|_| StoreError::Corrupt("the SQLite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Corrupt("the SQLite writer dropped a write".into()))?
    }
}

async fn run_batch(pool: &SqlitePool, batch: &[WriteJob]) -> StoreResult<Vec<WriteOutcome>> {
    let mut tx = pool.begin().await?;
    let mut outs = Vec::with_capacity(batch.len());
    for job in batch {
        outs.push(put_in_tx(&mut tx, &job.realm_id, &job.write, job.cas).await?);
    }
    tx.commit().await?;
    Ok(outs)
}

/// The writer task: drains the queue into one transaction per round. When a batch fails,
/// each write is retried alone so one bad write cannot fail its neighbours.
async fn group_commit(pool: SqlitePool, mut jobs: mpsc::Receiver<WriteJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match run_batch(&pool, &batch).await {
            Ok(outs) => {
                for (job, out) in batch.into_iter().zip(outs) {
                    let _ = job.reply.send(Ok(out));
                }
            }
            Err(_) => {
                for job in batch {
                    let one = run_batch(&pool, std::slice::from_ref(&job)).await;
                    let _ = job.reply.send(one.map(|mut o| o.remove(0)));
                }
            }
        }
    }
}

super::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "sqlite");
