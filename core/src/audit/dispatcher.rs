//! The dispatcher: a bounded channel in front of the store sink, and the counters every
//! sink reports to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Event, SYSTEM_CHAIN};
use crate::store::{AuditRow, NewAuditEvent, Store};

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
    /// Events dropped because the channel was full (should stay 0).
    pub dropped: AtomicU64,
    /// Events written to the store.
    pub stored: AtomicU64,
    /// Failed store writes (retried; the events are kept).
    pub store_failures: AtomicU64,
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

enum Msg {
    Event(Box<Event>),
    Flush(oneshot::Sender<()>),
}

/// The handle handlers emit through.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
    /// Every stored batch, in order, for sinks that are caught up (single-writer stores).
    pub live: broadcast::Sender<Arc<Vec<AuditRow>>>,
    /// Pipeline counters.
    pub stats: Arc<AuditStats>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

/// Most events written in one store transaction.
const BATCH: usize = 4096;

/// Stored batches kept for live sinks before a slow one must catch up from the store.
const LIVE_BATCHES: usize = 32;

impl Auditor {
    /// Starts the store sink with a channel of `capacity` events.
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(AuditStats::default());
        let (live, _) = broadcast::channel(LIVE_BATCHES);
        tokio::spawn(store_sink(store, rx, stats.clone(), live.clone()));
        Self { tx, live, stats }
    }

    /// Hands an event over without waiting; a full channel drops it, counted and logged.
    pub fn emit(&self, event: Event) {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Msg::Event(Box::new(event))).is_err() {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(dropped = n, "audit channel full: events dropped");
            }
        }
    }

    /// Waits until every event emitted before this call is in the store (or `timeout`).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_err() {
            return false;
        }
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

fn to_row(e: &Event) -> NewAuditEvent {
    NewAuditEvent {
        id: e.id.clone(),
        chain: e
            .realm_id
            .clone()
            .unwrap_or_else(|| SYSTEM_CHAIN.to_owned()),
        time: e.time_ms,
        realm_id: e.realm_id.clone(),
        action: e.action.clone(),
        outcome: e.outcome.clone(),
        actor: e.actor.user_id.clone(),
        body: serde_json::to_string(e).unwrap_or_default(),
    }
}

/// Writes batches to the store; on failure retries with backoff, keeping the events.
async fn store_sink(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Msg>,
    stats: Arc<AuditStats>,
    live: broadcast::Sender<Arc<Vec<AuditRow>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(to_row(&e)),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut backoff = Duration::from_millis(50);
        while !batch.is_empty() {
            match store.audit_append(&batch).await {
                Ok(rows) => {
                    stats
                        .stored
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    if store.single_writer() {
                        let _ = live.send(Arc::new(rows));
                    }
                }
                Err(e) => {
                    stats.store_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, events = batch.len(), "audit store write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
