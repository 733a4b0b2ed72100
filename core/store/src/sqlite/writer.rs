//! The SQLite writer: one OS thread that owns a write connection and commits whatever is
//! queued in one transaction per round (group commit), so one fsync acknowledges many KV
//! writes, leases and audit events.
//!
//! Why a thread of its own, driving SQLite through rusqlite rather than sqlx: sqlx runs each
//! SQLite statement on a worker thread of its own and hands every result back across
//! threads, so a round of half a dozen statements cost a dozen thread wake-ups. Under load
//! those wake-ups, not the fsync, bounded how fast a strict-mode request could be
//! acknowledged (its event must be durable first). Here a round is plain calls on one
//! thread; the only hand-offs are the queue in and the replies out. The statements are the
//! same as the async stores' ([`crate::linking`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::ReadCache;
use crate::change::{self, Claim};
use crate::linking::{self, Heads};
use crate::{
    AuditRow, LeaseRecord, NewAuditEvent, RealmId, SYSTEM_CHAIN, SecretMeta, SecretWrite,
    StoreError, StoreResult, WriteOutcome,
};
use arcan_crypto::{ChainHead, ChainKey};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// Prepared statements kept per connection (the KV upsert varies with a CAS version).
const STATEMENT_CACHE: usize = 64;

/// A queued write and where to send its outcome. KV writes, leases and audit batches share
/// the writer, so one commit (one fsync) covers them all.
#[derive(Debug)]
pub(super) enum WriteJob {
    Kv {
        realm_id: RealmId,
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

/// What the writer's queue carries: writes, and at shutdown the request to stop.
#[derive(Debug)]
pub(super) enum Queued {
    Job(WriteJob),
    /// Commit what was queued before, then end (answered once the connection is closed).
    Stop(oneshot::Sender<()>),
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
    /// appends; the round appends every job's events at once (one chain-head lookup per
    /// chain per round, not per job).
    fn run(&self, tx: &Transaction<'_>) -> StoreResult<(Done, Vec<NewAuditEvent>)> {
        match self {
            WriteJob::Kv {
                realm_id,
                write,
                cas,
                claim,
                ..
            } => {
                let out = put_secret(tx, realm_id, write, *cas)?;
                let events = match (&out, claim) {
                    (WriteOutcome::Written(meta), Some(c)) => {
                        vec![c.event(&[("version", meta.version.into())])]
                    }
                    _ => Vec::new(),
                };
                Ok((Done::Kv(out), events))
            }
            // Its events are the job's own: appended from there, not copied.
            WriteJob::Audit { .. } => Ok((Done::Audit(Vec::new()), Vec::new())),
            WriteJob::Lease { lease, claim, .. } => {
                put_lease(tx, lease)?;
                let events = match claim {
                    Some(c) => vec![c.event(&change::lease_facts(lease))],
                    None => Vec::new(),
                };
                Ok((Done::Lease, events))
            }
        }
    }

    /// The events the job appends: an audit job's own, or those its change produced
    /// (`made`, from [`WriteJob::run`]).
    fn events<'a>(&'a self, made: &'a [NewAuditEvent]) -> &'a [NewAuditEvent] {
        match self {
            WriteJob::Audit { events, .. } => events,
            WriteJob::Kv { .. } | WriteJob::Lease { .. } => made,
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
        let mismatch = || StoreError::Corrupt("writer outcome mismatch".into());
        match self {
            WriteJob::Kv { reply, .. } => {
                let _ = reply.send(out.and_then(|d| match d {
                    Done::Kv(o) => Ok(o),
                    _ => Err(mismatch()),
                }));
            }
            WriteJob::Audit { reply, .. } => {
                let _ = reply.send(out.and_then(|d| match d {
                    Done::Audit(rows) => Ok(rows),
                    _ => Err(mismatch()),
                }));
            }
            WriteJob::Lease { reply, .. } => {
                let _ = reply.send(out.and_then(|d| match d {
                    Done::Lease => Ok(()),
                    _ => Err(mismatch()),
                }));
            }
        }
    }

    /// The KV key this job changes, for cache eviction.
    pub(super) fn kv_key(&self) -> Option<(&str, &str, &str)> {
        match self {
            WriteJob::Kv {
                realm_id, write, ..
            } => Some((realm_id.as_str(), &write.env, &write.key)),
            WriteJob::Audit { .. } | WriteJob::Lease { .. } => None,
        }
    }
}

/// What the writer thread owns.
pub(super) struct Writer {
    pub conn: Connection,
    pub reads: Arc<ReadCache>,
    /// The process's write lock, shared with the async store's own write transactions.
    pub write: Arc<tokio::sync::Mutex<()>>,
    pub chain_key: Arc<OnceLock<ChainKey>>,
    pub live: broadcast::Sender<Arc<Vec<AuditRow>>>,
}

/// Opens the writer's connection to the (migrated) database at `path`.
pub(super) fn connect(path: &Path, synchronous_full: bool) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if synchronous_full { "FULL" } else { "NORMAL" },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Starts the writer thread; it ends at a [`Queued::Stop`] or when every sender of `jobs`
/// is gone, having committed what was queued.
pub(super) fn spawn(writer: Writer, jobs: mpsc::Receiver<Queued>) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("arcan-sqlite-writer".into())
        .spawn(move || group_commit(writer, jobs))
        .map_err(|e| StoreError::Corrupt(format!("cannot start the SQLite writer: {e}")))?;
    Ok(())
}

/// The writer loop: drains the queue into one transaction per round, until the queue ends
/// or a stop request comes (what was queued before it is committed first; what comes after
/// is refused).
fn group_commit(mut w: Writer, mut jobs: mpsc::Receiver<Queued>) {
    let mut stopped = None;
    while stopped.is_none() {
        let Some(first) = jobs.blocking_recv() else {
            break;
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(queued) = next.take() {
            match queued {
                Queued::Job(job) => batch.push(job),
                Queued::Stop(done) => {
                    stopped = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit(&mut w, batch);
        }
    }
    drop(jobs);
    if let Err((_, e)) = w.conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer's connection failed");
    }
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

/// Commits one batch in one transaction and answers each job. When the batch fails, each
/// write is retried alone so one bad write cannot fail its neighbours. The audit rows the
/// round committed go to live sinks in one batch, in `gseq` order, before the write lock
/// is released.
fn commit(w: &mut Writer, batch: Vec<WriteJob>) {
    // Evict before and after: before, so a read in flight cannot cache the old value under
    // the old epoch; after (and before replying), so nothing read during the commit
    // survives it.
    for (realm, env, key) in batch.iter().filter_map(WriteJob::kv_key) {
        w.reads.evict(realm, env, key);
    }
    let Some(key) = w.chain_key.get() else {
        for job in batch {
            job.reply(Err(StoreError::Corrupt(
                "the audit chain key is not loaded".into(),
            )));
        }
        return;
    };
    let guard = w.write.blocking_lock();
    let outcomes: Vec<StoreResult<Ran>> = match round(&mut w.conn, key, &batch) {
        Ok(outs) => outs.into_iter().map(Ok).collect(),
        // The database is unavailable (busy past the timeout, full, read-only, I/O error):
        // every job would fail alike, and retrying each one alone would wait each out.
        Err(e) if e.is_outage() => {
            let why = e.to_string();
            batch
                .iter()
                .map(|_| Err(StoreError::Unavailable(why.clone())))
                .collect()
        }
        Err(_) => batch
            .iter()
            .map(|job| round(&mut w.conn, key, std::slice::from_ref(job)).map(|mut o| o.remove(0)))
            .collect(),
    };
    let mut committed = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    for (mut job, out) in batch.into_iter().zip(outcomes) {
        replies.push(match out {
            Ok((done, rows)) => {
                // Only a job that appended the request's event commits its claim (a refused
                // check-and-set wrote nothing and carries no event).
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

/// One round: every job's change, then all their audit events, in one transaction.
fn round(conn: &mut Connection, key: &ChainKey, batch: &[WriteJob]) -> StoreResult<Vec<Ran>> {
    // A commit that failed (disk full, I/O error) may leave SQLite inside the transaction
    // when its rollback failed too; start clean.
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK")?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut made = Vec::with_capacity(batch.len());
    for job in batch {
        made.push(job.run(&tx)?);
    }
    let events: Vec<&NewAuditEvent> = batch
        .iter()
        .zip(&made)
        .flat_map(|(job, (_, own))| job.events(own))
        .collect();
    // Rows come back in input order (gseq is assigned in insertion order): hand each job
    // its own.
    let mut rows = append(&tx, key, &events)?.into_iter();
    tx.commit()?;
    Ok(batch
        .iter()
        .zip(made)
        .map(|(job, (d, own))| {
            let n = job.events(&own).len();
            let mine: Vec<AuditRow> = rows.by_ref().take(n).collect();
            let d = match d {
                Done::Audit(_) => Done::Audit(mine.clone()),
                other => other,
            };
            (d, mine)
        })
        .collect())
}

/// Binds values to the shared SQL's `$1`, `$2`, … by name: SQLite numbers `$n` parameters
/// by first appearance, which is not always their number.
fn numbered<'a>(values: &[&'a dyn ToSql]) -> Vec<(&'static str, &'a dyn ToSql)> {
    const NAMES: [&str; 16] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14",
        "$15", "$16",
    ];
    debug_assert!(values.len() <= NAMES.len(), "more parameters than names");
    NAMES.iter().copied().zip(values.iter().copied()).collect()
}

/// Runs a statement of the shared SQL with numbered parameters.
fn execute(tx: &Transaction<'_>, sql: &str, values: &[&dyn ToSql]) -> StoreResult<usize> {
    Ok(tx
        .prepare_cached(sql)?
        .execute(numbered(values).as_slice())?)
}

/// One KV write (see the async stores' `put_in_tx`). A CAS mismatch changes nothing.
fn put_secret(
    tx: &Transaction<'_>,
    realm_id: &RealmId,
    w: &SecretWrite,
    cas: Option<i64>,
) -> StoreResult<WriteOutcome> {
    let key_of: [&dyn ToSql; 3] = [&realm_id, &w.env, &w.key];
    let meta = tx
        .prepare_cached(&linking::secret_upsert(cas))?
        .query_row(
            numbered(&[&realm_id, &w.env, &w.key, &w.at, &w.by]).as_slice(),
            |r| {
                Ok(SecretMeta {
                    env: r.get("env")?,
                    key: r.get("key")?,
                    version: r.get("current_version")?,
                    created_at: r.get("created_at")?,
                    created_by: r.get("created_by")?,
                    updated_at: r.get("updated_at")?,
                    updated_by: r.get("updated_by")?,
                })
            },
        )
        .optional()?;
    let Some(meta) = meta else {
        let current = tx
            .prepare_cached(linking::CURRENT_VERSION)?
            .query_row(numbered(&key_of).as_slice(), |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        return Ok(WriteOutcome::CasMismatch { current });
    };
    execute(
        tx,
        linking::VERSION_INSERT,
        &[
            &realm_id,
            &w.env,
            &w.key,
            &meta.version,
            &w.sealed,
            &w.at,
            &w.by,
        ],
    )?;
    Ok(WriteOutcome::Written(meta))
}

/// Stores a lease; an id already taken is a conflict.
fn put_lease(tx: &Transaction<'_>, l: &LeaseRecord) -> StoreResult<()> {
    let out = execute(
        tx,
        linking::LEASE_INSERT,
        &[
            &l.id,
            &l.realm_id,
            &l.mount_id,
            &l.mount,
            &l.role,
            &l.plugin,
            &l.role_definition,
            &l.internal,
            &l.issued_at,
            &l.expires_at,
            &l.max_expires_at,
            &l.renewable,
            &l.revocable,
            &l.state,
            &l.issued_by,
            &l.token_id,
        ],
    );
    match out {
        Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
            if e.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    e.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            Err(StoreError::Conflict)
        }
        other => other.map(drop),
    }
}

/// The head a chain's next event links to (see [`linking::unsigned_head`] for a chain
/// without a signed head).
fn chain_head(tx: &Transaction<'_>, key: &ChainKey, chain: &str) -> StoreResult<ChainHead> {
    let signed = tx
        .prepare_cached(linking::HEAD_SELECT)?
        .query_row([chain], |r| {
            Ok((
                ChainHead {
                    chain: chain.to_owned(),
                    seq: r.get("seq")?,
                    hash: r.get("hash")?,
                    from_seq: r.get("from_seq")?,
                    from_hash: r.get("from_hash")?,
                },
                r.get::<_, String>("mac")?,
            ))
        })
        .optional()?;
    if let Some((head, mac)) = signed {
        return linking::verified_head(key, head, &mac);
    }
    let checkpoint: Option<(i64, String)> = tx
        .prepare_cached(linking::CHECKPOINT_SELECT)?
        .query_row([chain], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let from = checkpoint.as_ref().map_or(0, |c| c.0);
    let later = tx
        .prepare_cached(linking::LATER_EVENT)?
        .query_row(numbered(&[&chain, &from]).as_slice(), |_| Ok(()))
        .optional()?;
    linking::unsigned_head(chain, checkpoint, later.is_some())
}

/// Chains and inserts audit events, and re-signs the head of every chain they extend;
/// returns the stored rows in `gseq` order (which is their order in `events`).
fn append(
    tx: &Transaction<'_>,
    key: &ChainKey,
    events: &[&NewAuditEvent],
) -> StoreResult<Vec<AuditRow>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut heads = Heads::default();
    for chain in Heads::wanted(events) {
        heads.loaded(chain, chain_head(tx, key, chain))?;
    }
    if heads.need_system() {
        heads.loaded(SYSTEM_CHAIN, chain_head(tx, key, SYSTEM_CHAIN))?;
    }
    let linked = heads.link(key, events)?;
    let mut gseqs = Vec::with_capacity(linked.len());
    {
        let mut insert = tx.prepare_cached(linking::EVENT_INSERT_ONE)?;
        for l in &linked {
            let e = l.event;
            insert.execute(
                numbered(&[
                    &e.id,
                    &l.chain,
                    &l.seq,
                    &e.time,
                    &e.realm_id,
                    &e.action,
                    &e.outcome,
                    &e.actor,
                    &e.body,
                    &l.prev_hash,
                    &l.hash,
                ])
                .as_slice(),
            )?;
            gseqs.push(tx.last_insert_rowid());
        }
    }
    for head in heads.heads() {
        execute(
            tx,
            linking::HEAD_UPSERT,
            &[
                &head.chain,
                &head.seq,
                &head.hash,
                &head.from_seq,
                &head.from_hash,
                &key.sign_head(head),
            ],
        )?;
    }
    linking::stored_rows(linked, gseqs)
}
