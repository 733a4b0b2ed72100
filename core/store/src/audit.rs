//! The durable audit log: hash-chained events (a chain per realm and one for the system),
//! their signed heads, retention, and the delivery sinks that read the log with cursors.
//! The dispatcher's and the reaper's trusted path, and realm-scoped queries.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::{AuditFilter, AuditRow, NewAuditEvent, SinkRow, StoreResult};
use arcan_crypto::{ChainHead, ChainKey};

/// Persistence of the audit log and its sinks.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events to their hash chains in one transaction; returns the stored rows
    /// (with their delivery order `gseq`), sorted by `gseq`.
    async fn audit_append(&self, events: &[NewAuditEvent]) -> StoreResult<Vec<AuditRow>>;
    /// True when this process is the store's only writer (SQLite), so the rows
    /// [`audit_append`](AuditStore::audit_append) returns are every new event, in order.
    fn single_writer(&self) -> bool;
    /// Sets the key that links and signs audit chains (derived from the system key at
    /// boot); appends fail until it is set.
    fn set_chain_key(&self, key: ChainKey);
    /// Every batch of audit rows this process commits, in `gseq` order, for sinks that are
    /// caught up (single-writer stores; `None` elsewhere).
    fn audit_feed(&self) -> Option<broadcast::Receiver<Arc<Vec<AuditRow>>>>;
    /// A chain's signed head and its signature.
    async fn audit_signed_head(&self, chain: &str) -> StoreResult<Option<(ChainHead, String)>>;
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
