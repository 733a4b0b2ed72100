//! Delivery sinks. Each runs in its own task, reading the durable audit log after its
//! cursor, delivering in order, and advancing the cursor only after a delivery succeeded
//! (at-least-once). Failures back off exponentially with jitter.

mod syslog;
mod webhook;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::dispatcher::{AuditStats, SinkStats};
use arcan_crypto::{CryptoError, Keyring, open, seal};
use arcan_lifecycle::{Lifecycle, Stage};
use arcan_store::prelude::*;
use arcan_store::{AuditRow, SinkRow};

pub use syslog::{SyslogConfig, SyslogProtocol};
pub use webhook::WebhookConfig;

/// A sink's configuration (sealed at rest: it may hold a webhook secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    /// HTTPS POST of signed JSON batches.
    Webhook(WebhookConfig),
    /// RFC 5424 over TCP (octet counting) or UDP.
    Syslog(SyslogConfig),
}

/// A sink in the config file or the API: a name and its configuration, in one flat
/// mapping (`name`, `kind`, then the kind's fields; unknown fields are errors).
#[derive(Debug, Clone)]
pub struct NamedSink {
    /// Unique name.
    pub name: String,
    /// Configuration.
    pub config: SinkConfig,
}

impl<'de> Deserialize<'de> for NamedSink {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // serde's `flatten` cannot be combined with `deny_unknown_fields`, so split by hand.
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let name = match map.remove("name") {
            Some(Value::String(n)) => n,
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let config = SinkConfig::deserialize(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self { name, config })
    }
}

impl SinkConfig {
    /// `webhook` or `syslog`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::Syslog(_) => "syslog",
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SinkConfig::Webhook(w) => w.validate(),
            SinkConfig::Syslog(s) => s.validate(),
        }
    }
}

const SINK_AAD: &[u8] = b"arcan:audit-sink:v1";

/// Seals a sink configuration with the system key.
pub fn seal_config(keyring: &Keyring, config: &SinkConfig) -> Result<Vec<u8>, CryptoError> {
    let json =
        zeroize::Zeroizing::new(serde_json::to_vec(config).map_err(|_| CryptoError::Encrypt)?);
    let key = keyring.system_key()?;
    seal(&key, &json, SINK_AAD)
}

/// Opens a sealed sink configuration.
pub fn open_config(keyring: &Keyring, sealed: &[u8]) -> Result<SinkConfig, CryptoError> {
    let key = keyring.system_key()?;
    let json = open(&key, sealed, SINK_AAD)?;
    serde_json::from_slice(&json).map_err(|_| CryptoError::Decrypt)
}

/// The JSON delivered for one stored event: its body plus chain position and hash.
pub fn delivered(row: &AuditRow) -> Value {
    let mut v: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("chain".into(), row.chain.clone().into());
        m.insert("seq".into(), row.seq.into());
        m.insert("hash".into(), row.hash.clone().into());
    }
    v
}

/// [`delivered`] as JSON text, spliced without re-parsing the stored body (the hot path of
/// every sink). The body is a JSON object written by [`super::dispatcher`].
pub fn delivered_json(row: &AuditRow) -> String {
    let body = row.body.trim_end();
    let Some(open) = body.strip_suffix('}') else {
        return delivered(row).to_string();
    };
    let chain = serde_json::to_string(&row.chain).unwrap_or_default();
    format!(
        "{open},\"chain\":{chain},\"seq\":{},\"hash\":\"{}\"}}",
        row.seq, row.hash
    )
}

/// Running sink tasks, by name.
pub struct SinkManager {
    store: Arc<dyn Store>,
    stats: Arc<AuditStats>,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    lifecycle: Arc<Lifecycle>,
}

impl std::fmt::Debug for SinkManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkManager").finish_non_exhaustive()
    }
}

impl SinkManager {
    /// A manager with no sinks running.
    /// Sinks run in the last stage of `lifecycle`: at shutdown each delivers what is stored,
    /// then ends (one that cannot deliver by the deadline resumes from its stored cursor at
    /// the next start).
    pub fn new(store: Arc<dyn Store>, auditor: &super::Auditor, lifecycle: Arc<Lifecycle>) -> Self {
        Self {
            store,
            stats: auditor.stats.clone(),
            running: Mutex::new(HashMap::new()),
            lifecycle,
        }
    }

    /// Starts (or restarts) a sink from its stored cursor.
    pub fn start(&self, name: &str, config: SinkConfig, cursor: i64) {
        let stats = self.stats.sink(name);
        stats.cursor.store(cursor, Ordering::Relaxed);
        let live = self.store.audit_feed();
        let stop = self.lifecycle.token(Stage::Sinks);
        let task = self.lifecycle.spawn(
            Stage::Sinks,
            "audit sink",
            run(
                self.store.clone(),
                name.to_owned(),
                config,
                stats,
                live,
                stop,
            ),
        );
        if let Some(old) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), task)
        {
            old.abort();
        }
    }

    /// Stops a sink.
    pub fn stop(&self, name: &str) {
        if let Some(h) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            h.abort();
        }
        self.stats.remove_sink(name);
    }

    /// Starts every stored sink.
    pub async fn start_all(&self, keyring: &Keyring) -> anyhow::Result<()> {
        for SinkRow {
            name,
            config,
            cursor,
            ..
        } in self.store.sinks().await?
        {
            let config = open_config(keyring, &config)
                .map_err(|e| anyhow::anyhow!("audit sink {name}: {e}"))?;
            self.start(&name, config, cursor);
        }
        Ok(())
    }
}

/// Events per delivery.
const BATCH: i64 = 1000;

/// How long a caught-up sink waits for more rows before it delivers what it has: under
/// load one request then carries many writer rounds instead of one each (a webhook at
/// thousands of requests a second costs both ends more than the events do).
const LINGER: Duration = Duration::from_millis(10);

/// `first` and the live batches that follow on from it, up to [`BATCH`] rows or until
/// [`LINGER`] passed. A batch that does not follow on (a gap), a lagging or closed feed
/// ends the merge and sends the sink back to the store (`tail` unset).
async fn follow_on(
    first: Arc<Vec<AuditRow>>,
    live: &mut broadcast::Receiver<Arc<Vec<AuditRow>>>,
    tail: &mut Option<i64>,
) -> Arc<Vec<AuditRow>> {
    let until = tokio::time::Instant::now() + LINGER;
    let mut merged: Option<Vec<AuditRow>> = None;
    while merged.as_ref().map_or(first.len(), Vec::len) < BATCH as usize {
        let next = match live.try_recv() {
            Ok(next) => next,
            Err(broadcast::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(until, live.recv()).await {
                    Ok(Ok(next)) => next,
                    Ok(Err(_)) => {
                        *tail = None;
                        break;
                    }
                    Err(_) => break,
                }
            }
            Err(_) => {
                *tail = None;
                break;
            }
        };
        if tail.is_some_and(|t| next.first().is_some_and(|r| r.gseq == t + 1)) {
            *tail = next.last().map(|r| r.gseq);
            merged
                .get_or_insert_with(|| first.as_ref().clone())
                .extend(next.iter().cloned());
        } else if next
            .last()
            .is_some_and(|r| tail.is_some_and(|t| r.gseq <= t))
        {
            // Already delivered: skip it.
        } else {
            *tail = None;
            break;
        }
    }
    merged.map_or(first, Arc::new)
}

/// Where the next rows come from: the store after the cursor, or the live feed of batches
/// stored by this process once the sink has caught up (single-writer stores only).
async fn next_rows(
    store: &dyn Store,
    cursor: i64,
    live: &mut Option<broadcast::Receiver<Arc<Vec<AuditRow>>>>,
    tail: &mut Option<i64>,
) -> Result<Arc<Vec<AuditRow>>, arcan_store::StoreError> {
    if *tail == Some(cursor)
        && let Some(live) = live.as_mut()
    {
        match live.recv().await {
            // The next batch follows the last one delivered: nothing is in between.
            Ok(batch) if batch.first().is_some_and(|r| r.gseq == cursor + 1) => {
                *tail = batch.last().map(|r| r.gseq);
                return Ok(follow_on(batch, live, tail).await);
            }
            // Older (already delivered), or a gap: read the store.
            Ok(batch) if batch.last().is_some_and(|r| r.gseq <= cursor) => {
                return Ok(Arc::default());
            }
            Ok(_) | Err(_) => *tail = None, // gap, lagged or closed: catch up from the store
        }
    }
    loop {
        let rows = store.audit_after(cursor, BATCH).await?;
        let Some(live) = live.as_mut().filter(|_| rows.is_empty()) else {
            return Ok(Arc::new(rows));
        };
        // Caught up. Anything stored from now on arrives on the live feed; drain what is
        // already queued there. A batch newer than the read means rows landed meanwhile:
        // read the store again rather than trust the feed to follow on.
        let mut newer = false;
        while let Ok(batch) = live.try_recv() {
            newer |= batch.last().is_some_and(|r| r.gseq > cursor);
        }
        if !newer {
            *tail = Some(cursor);
            return Ok(Arc::new(rows));
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    name: String,
    config: SinkConfig,
    stats: Arc<SinkStats>,
    mut live: Option<broadcast::Receiver<Arc<Vec<AuditRow>>>>,
    stop: CancellationToken,
) {
    let mut deliverer = match Deliverer::new(&config) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(sink = %name, error = %e, "audit sink cannot start");
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut tail: Option<i64> = None;
    let mut pending: Arc<Vec<AuditRow>> = Arc::default();
    loop {
        let cursor = stats.cursor.load(Ordering::Relaxed);
        if pending.is_empty() {
            let next = if stop.is_cancelled() {
                // Shutting down (after the last event was stored): deliver what the store
                // holds after the cursor, then end.
                tail = None;
                store.audit_after(cursor, BATCH).await.map(Arc::new)
            } else {
                tokio::select! {
                    r = next_rows(store.as_ref(), cursor, &mut live, &mut tail) => r,
                    () = stop.cancelled() => continue,
                }
            };
            pending = match next {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, "audit sink cannot read the log");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if pending.is_empty() && stop.is_cancelled() {
                return;
            }
        }
        let Some(last) = pending.last().map(|r| r.gseq) else {
            if tail.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        match deliverer.deliver(&pending).await {
            Ok(()) => {
                stats
                    .delivered
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                stats.cursor.store(last, Ordering::Relaxed);
                if let Err(e) = store.sink_advance(&name, last).await {
                    tracing::warn!(sink = %name, error = %e, "cannot persist audit sink cursor");
                }
                pending = Arc::default();
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sink = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "audit delivery failed");
                let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
                tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

enum Deliverer {
    Webhook(webhook::Webhook),
    Syslog(syslog::Syslog),
}

impl Deliverer {
    fn new(config: &SinkConfig) -> anyhow::Result<Self> {
        Ok(match config {
            SinkConfig::Webhook(c) => Deliverer::Webhook(webhook::Webhook::new(c)?),
            SinkConfig::Syslog(c) => Deliverer::Syslog(syslog::Syslog::new(c)),
        })
    }

    async fn deliver(&mut self, rows: &[AuditRow]) -> anyhow::Result<()> {
        match self {
            Deliverer::Webhook(w) => w.deliver(rows).await,
            Deliverer::Syslog(s) => s.deliver(rows).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_json_equals_parsed() {
        let row = AuditRow {
            gseq: 7,
            id: "e1".into(),
            chain: "realm\"1".into(),
            seq: 3,
            time: 0,
            realm_id: None,
            action: "a".into(),
            outcome: arcan_store::Outcome::Success,
            actor: None,
            body: r#"{"id":"e1","detail":{"k":"v}"}}"#.into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let spliced: Value = serde_json::from_str(&delivered_json(&row)).expect("valid json");
        assert_eq!(spliced, delivered(&row));
    }

    #[test]
    fn named_sinks_parse_strictly() {
        let ok: NamedSink = serde_json::from_value(serde_json::json!({
            "name": "s", "kind": "syslog", "address": "127.0.0.1:514", "protocol": "udp"
        }))
        .expect("valid");
        assert_eq!(ok.config.kind(), "syslog");
        for bad in [
            serde_json::json!({"kind": "syslog", "address": "a:1", "protocol": "udp"}),
            serde_json::json!({"name": "s", "kind": "syslog", "address": "a:1", "protocol": "udp", "x": 1}),
            serde_json::json!({"name": "s", "kind": "ftp"}),
            serde_json::json!({"name": "s", "kind": "webhook", "url": "https://x"}),
        ] {
            assert!(
                serde_json::from_value::<NamedSink>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let yaml: NamedSink = serde_norway::from_str(
            "name: w\nkind: webhook\nurl: https://h/x\nsecret: 0123456789abcdef\nca_cert: /tmp/ca.pem\n",
        )
        .expect("yaml");
        assert_eq!(yaml.config.kind(), "webhook");
    }
}
