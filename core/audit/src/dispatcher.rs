//! The dispatcher: the store sink in front of the audit chains, with group commit, and the
//! counters every sink reports to.
//!
//! Two queues feed it. Request events (a read's, a refusal's, a failed change's) are taken
//! first; side events (plugins', the reaper's) come after, so a plugin that emits a lot can
//! delay only other side events, never a request's. In strict mode every event comes with a
//! receipt: the request that waits on it is answered only once it is durable, and a store
//! failure fails the waiting requests instead of being retried behind their back. Events
//! without a receipt (async mode, background tasks) are retried until stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Event, SYSTEM_CHAIN};
use arcan_lifecycle::{Lifecycle, Stage};
use arcan_store::prelude::*;
use arcan_store::{NewAuditEvent, RealmId};

/// When a request is acknowledged relative to its audit event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// Only after its event is durable (a change's event in the change's transaction).
    #[default]
    Strict,
    /// Before its event is stored; a crash or a full queue can lose events (weaker).
    Async,
}

impl AuditMode {
    /// The mode's name in config, metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Strict => "strict",
            AuditMode::Async => "async",
        }
    }
}

/// Counters of one delivery sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Failed delivery attempts.
    pub failed: AtomicU64,
    /// Last delivered `gseq`.
    pub cursor: AtomicI64,
}

/// Counters of the whole audit pipeline.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events handed to the dispatcher.
    pub emitted: AtomicU64,
    /// Events dropped because a queue was full (async mode and side events only).
    pub dropped: AtomicU64,
    /// Events written to the store by the dispatcher.
    pub stored: AtomicU64,
    /// Failed store writes.
    pub store_failures: AtomicU64,
    /// Requests refused because their event could not be made durable (strict mode).
    pub refused: AtomicU64,
    /// Per-sink counters.
    pub sinks: Mutex<BTreeMap<String, Arc<SinkStats>>>,
}

impl AuditStats {
    /// The counters of a sink, created on first use.
    pub fn sink(&self, name: &str) -> Arc<SinkStats> {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Forgets a removed sink.
    pub fn remove_sink(&self, name: &str) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// Why an event is not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotDurable {
    /// The store refused or failed the write.
    #[error("the audit event could not be stored")]
    StoreFailed,
    /// The event was not stored within the configured wait.
    #[error("the audit event was not stored in time")]
    Timeout,
    /// The queue was full (side events) or the dispatcher has stopped.
    #[error("the audit queue is full")]
    Full,
}

/// A receipt: resolves to `true` once the event is durable.
pub type Receipt = oneshot::Receiver<bool>;

enum Msg {
    Event(Box<Event>, Option<oneshot::Sender<bool>>),
    Flush(oneshot::Sender<()>),
}

/// The handle events are recorded through.
#[derive(Clone)]
pub struct Auditor {
    requests: mpsc::Sender<Msg>,
    side: mpsc::Sender<Msg>,
    /// Set on single-writer stores (SQLite): their writer already group-commits every
    /// queued write in one transaction, so a request's event goes straight to it and shares
    /// the commit (one fsync) of the KV writes and other events queued with it.
    direct: Option<Arc<dyn Store>>,
    mode: AuditMode,
    wait: Duration,
    /// Pipeline counters.
    pub stats: Arc<AuditStats>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The dispatcher's name in the [`Lifecycle`]: aborted at shutdown, events it held were
/// not stored.
pub const DISPATCHER_TASK: &str = "audit dispatcher";

/// Most events written in one store transaction.
const BATCH: usize = 4096;

/// Events without a receipt kept for retry after a store failure before new ones are
/// dropped (counted).
const RETRY_LIMIT: usize = 4 * BATCH;

impl Auditor {
    /// Starts the store sink with queues of `capacity` events; requests wait at most `wait`
    /// for their event in strict mode.
    /// The dispatcher runs in the audit stage of `lifecycle`: at shutdown it stores what is
    /// queued, then ends.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        mode: AuditMode,
        wait: Duration,
        lifecycle: &Lifecycle,
    ) -> Self {
        let (requests, rx) = mpsc::channel(capacity.max(1));
        let (side, side_rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(AuditStats::default());
        let direct = store.single_writer().then(|| store.clone());
        let stop = lifecycle.token(Stage::Audit);
        lifecycle.spawn(
            Stage::Audit,
            DISPATCHER_TASK,
            store_sink(store, rx, side_rx, stats.clone(), mode, stop),
        );
        Self {
            requests,
            side,
            direct,
            mode,
            wait,
            stats,
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Strict mode: stores a request's event and waits until it is durable (group commit:
    /// one transaction covers every event queued meanwhile).
    pub async fn record(&self, event: Event) -> Result<(), NotDurable> {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        if let Some(store) = &self.direct {
            let row = [to_row(&event)];
            let out = match tokio::time::timeout(self.wait, store.audit_append(&row)).await {
                Ok(Ok(_)) => {
                    self.stats.stored.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(Err(e)) => {
                    self.stats.store_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "audit store write failed");
                    Err(NotDurable::StoreFailed)
                }
                Err(_) => Err(NotDurable::Timeout),
            };
            if out.is_err() {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            return out;
        }
        let (done, receipt) = oneshot::channel();
        let sent = tokio::time::timeout(
            self.wait,
            self.requests.send(Msg::Event(Box::new(event), Some(done))),
        )
        .await;
        let out = match sent {
            Err(_) => Err(NotDurable::Timeout),
            Ok(Err(_)) => Err(NotDurable::Full),
            Ok(Ok(())) => match tokio::time::timeout(self.wait, receipt).await {
                Ok(Ok(true)) => Ok(()),
                Ok(_) => Err(NotDurable::StoreFailed),
                Err(_) => Err(NotDurable::Timeout),
            },
        };
        if out.is_err() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Async mode: hands a request's event over without waiting; a full queue drops it,
    /// counted and logged.
    pub fn emit(&self, event: Event) {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        if self
            .requests
            .try_send(Msg::Event(Box::new(event), None))
            .is_err()
        {
            self.count_drop();
        }
    }

    /// A side event (a plugin's, the reaper's), queued behind request events. In strict
    /// mode it comes with a receipt for the request that caused it to wait on; a full side
    /// queue refuses it.
    pub fn side_event(&self, event: Event) -> Result<Option<Receipt>, NotDurable> {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        let (done, receipt) = match self.mode {
            AuditMode::Strict => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            AuditMode::Async => (None, None),
        };
        match self.side.try_send(Msg::Event(Box::new(event), done)) {
            Ok(()) => Ok(receipt),
            Err(_) => {
                self.count_drop();
                Err(NotDurable::Full)
            }
        }
    }

    /// A background task's event (the reaper's: what it did has happened): waits for room
    /// in the side queue, never dropped on a full queue, and retried after a store failure
    /// until stored. `false` only when the dispatcher has stopped.
    pub async fn background(&self, event: Event) -> bool {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        self.side
            .send(Msg::Event(Box::new(event), None))
            .await
            .is_ok()
    }

    /// Waits for a receipt within the configured wait.
    pub async fn durable(&self, receipt: Receipt) -> Result<(), NotDurable> {
        match tokio::time::timeout(self.wait, receipt).await {
            Ok(Ok(true)) => Ok(()),
            Ok(_) => Err(NotDurable::StoreFailed),
            Err(_) => Err(NotDurable::Timeout),
        }
    }

    fn count_drop(&self) {
        let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::error!(dropped = n, "audit queue full: events dropped");
        }
    }

    /// Waits until every event queued before this call is in the store (or `timeout`).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.side.send(Msg::Flush(done)).await.is_err() {
            return false;
        }
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// The store row of an event.
pub fn to_row(e: &Event) -> NewAuditEvent {
    NewAuditEvent {
        id: e.id.clone(),
        chain: e
            .realm_id
            .clone()
            .unwrap_or_else(|| SYSTEM_CHAIN.to_owned()),
        time: e.time_ms,
        realm_id: e.realm_id.clone().map(RealmId::from),
        action: e.action.clone(),
        outcome: e.outcome,
        actor: e.actor.user_id.clone(),
        body: serde_json::to_string(e).unwrap_or_default(),
    }
}

/// One round's events and who waits on them.
#[derive(Default)]
struct Round {
    rows: Vec<NewAuditEvent>,
    receipts: Vec<(usize, oneshot::Sender<bool>)>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Round {
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Event(e, receipt) => {
                if let Some(r) = receipt {
                    self.receipts.push((self.rows.len(), r));
                }
                self.rows.push(to_row(&e));
            }
            Msg::Flush(w) => self.flushes.push(w),
        }
    }
}

/// Writes rounds to the store. After a failure, waiting events fail (their requests are
/// refused); events nobody waits on are kept and retried with the next round.
async fn store_sink(
    store: Arc<dyn Store>,
    mut requests: mpsc::Receiver<Msg>,
    mut side: mpsc::Receiver<Msg>,
    stats: Arc<AuditStats>,
    mode: AuditMode,
    stop: CancellationToken,
) {
    let mut retry: Vec<NewAuditEvent> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut backoff = Duration::from_millis(20);
    let max_backoff = match mode {
        AuditMode::Strict => Duration::from_millis(500),
        AuditMode::Async => Duration::from_secs(5),
    };
    loop {
        let mut round = Round {
            rows: std::mem::take(&mut retry),
            ..Round::default()
        };
        if round.rows.is_empty() {
            // Stopping (shutdown, after all work ended): what is queued comes first (biased),
            // so the dispatcher ends once both queues are empty.
            let first = tokio::select! {
                biased;
                m = requests.recv() => m,
                m = side.recv() => m,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { return };
            round.take(first);
        }
        while round.rows.len() < BATCH {
            match requests.try_recv() {
                Ok(m) => round.take(m),
                Err(_) => break,
            }
        }
        while round.rows.len() < BATCH {
            match side.try_recv() {
                Ok(m) => round.take(m),
                Err(_) => break,
            }
        }
        match store.audit_append(&round.rows).await {
            Ok(_) => {
                stats
                    .stored
                    .fetch_add(round.rows.len() as u64, Ordering::Relaxed);
                for (_, r) in round.receipts {
                    let _ = r.send(true);
                }
                for w in flushes.drain(..).chain(round.flushes) {
                    let _ = w.send(());
                }
                backoff = Duration::from_millis(20);
            }
            Err(e) => {
                stats.store_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, events = round.rows.len(), "audit store write failed");
                let mut waited = vec![false; round.rows.len()];
                for (i, r) in round.receipts {
                    waited[i] = true;
                    let _ = r.send(false);
                }
                retry = round
                    .rows
                    .into_iter()
                    .zip(waited)
                    .filter_map(|(row, w)| (!w).then_some(row))
                    .collect();
                if retry.len() > RETRY_LIMIT {
                    let n = retry.len() - RETRY_LIMIT;
                    retry.truncate(RETRY_LIMIT);
                    stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::error!(dropped = n, "audit retry buffer full: events dropped");
                }
                // Flush waiters wait for the retried events.
                flushes.extend(round.flushes);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}
