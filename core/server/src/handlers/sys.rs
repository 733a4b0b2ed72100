//! System endpoints: health, metrics and master-key operations.

use std::sync::Arc;

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use super::super::bootstrap::HeldKeys;
use super::super::error::{ApiError, ApiResult};
use super::super::state::{AppState, state};
use arcan_crypto::rotation::{self, Settled};
use arcan_crypto::{FileKeyProvider, KeyProvider};
use arcan_store::DataKey;

/// Health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    /// Store backend.
    pub store: String,
    /// Version of this binary.
    pub version: String,
}

/// Liveness and store reachability (no auth).
#[endpoint(tags("sys"), status_codes(200, 503))]
pub async fn health(depot: &mut Depot, res: &mut Response) -> Json<Health> {
    let st = state(depot).clone();
    let ok = st.store.ping().await.is_ok();
    if !ok {
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
    }
    Json(Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        store: st.store.backend().into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Prometheus metrics.
#[handler]
pub async fn metrics(depot: &mut Depot, res: &mut Response) {
    let st = state(depot).clone();
    let mut body = st.metrics.render();
    append_audit_metrics(&st, &mut body).await;
    res.add_header("content-type", "text/plain; version=0.0.4", true)
        .ok();
    res.render(body);
}

async fn append_audit_metrics(st: &super::super::state::AppState, out: &mut String) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let s = &st.audit.stats;
    let head = st.store.audit_head().await.unwrap_or(0);
    let _ = writeln!(
        out,
        "# TYPE arcan_audit_mode gauge\narcan_audit_mode{{mode=\"{}\"}} 1",
        super::audit::mode_name(st)
    );
    let _ = writeln!(
        out,
        "# TYPE arcan_audit_refused counter\narcan_audit_refused_total {}",
        s.refused.load(Relaxed)
    );
    let _ = writeln!(out, "# TYPE arcan_audit_events counter");
    for (what, v) in [
        ("emitted", s.emitted.load(Relaxed)),
        ("dropped", s.dropped.load(Relaxed)),
        ("stored", s.stored.load(Relaxed)),
    ] {
        let _ = writeln!(out, "arcan_audit_events_total{{stage=\"{what}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# TYPE arcan_audit_store_failures counter\narcan_audit_store_failures_total {}",
        s.store_failures.load(Relaxed)
    );
    let _ = writeln!(out, "# TYPE arcan_audit_sink_delivered counter");
    let sinks = s.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (name, k) in &sinks {
        let _ = writeln!(
            out,
            "arcan_audit_sink_delivered_total{{sink=\"{name}\"}} {}",
            k.delivered.load(Relaxed)
        );
    }
    let _ = writeln!(out, "# TYPE arcan_audit_sink_failed counter");
    for (name, k) in &sinks {
        let _ = writeln!(
            out,
            "arcan_audit_sink_failed_total{{sink=\"{name}\"}} {}",
            k.failed.load(Relaxed)
        );
    }
    let _ = writeln!(out, "# TYPE arcan_audit_sink_lag gauge");
    for (name, k) in &sinks {
        let _ = writeln!(
            out,
            "arcan_audit_sink_lag{{sink=\"{name}\"}} {}",
            (head - k.cursor.load(Relaxed)).max(0)
        );
    }
}

/// Master-key status.
#[derive(Debug, Serialize, ToSchema)]
pub struct MasterKeyStatus {
    /// Id of the current master key.
    pub key_id: String,
    /// Data keys checked.
    pub data_keys: usize,
    /// Data keys that unwrap with the current master key.
    pub ok: usize,
}

/// Verifies that every realm's data key unwraps with the current master key.
#[endpoint(tags("sys"))]
pub async fn master_key_verify(depot: &mut Depot) -> ApiResult<Json<MasterKeyStatus>> {
    let st = state(depot).clone();
    let provider = st.keyring.provider();
    let keys = st.store.data_keys_all().await?;
    let mut ok = 0;
    for k in &keys {
        if provider.unwrap(&k.wrapped).await.is_ok() {
            ok += 1;
        }
    }
    Ok(Json(MasterKeyStatus {
        key_id: provider.key_id().to_owned(),
        data_keys: keys.len(),
        ok,
    }))
}

/// Rotates the file master key: generates a new one, re-wraps every data key under it in
/// one transaction, then swaps the key file and the in-memory provider. Secret values are
/// untouched (they are sealed by the data keys), so the data stays readable throughout.
///
/// Crash-safe (see [`arcan_crypto::rotation`]): the new key is durable on disk before the
/// store commit; a failure before the commit removes it and keeps the old key; a failure
/// after it keeps `master.key.new` (the key in use) for the next start or rewrap to install.
/// A pending key left by an earlier rewrap is settled first, never removed blindly.
#[endpoint(tags("sys"))]
pub async fn master_key_rewrap(depot: &mut Depot) -> ApiResult<Json<MasterKeyStatus>> {
    let st = state(depot).clone();
    let _guard = st
        .keyring
        .rotation
        .try_write()
        .map_err(|_| ApiError::conflict("a rewrap or realm creation is in progress; retry"))?;
    let path = st.config.data_dir.join("master.key");
    let held = HeldKeys::read(st.store.as_ref()).await?;
    match held.settle(&path).await? {
        Settled::Installed(p) => {
            tracing::warn!(key_id = %p.key_id(), "installed the key of an earlier rewrap first");
            st.keyring.set_provider(Arc::new(p));
        }
        Settled::Kept => {
            return Err(ApiError::conflict(
                "master.key.new exists and does not provably belong to an earlier rewrap; inspect it",
            ));
        }
        Settled::Discarded | Settled::Nothing => {}
    }
    let new = rotation::create_pending(&path)?;
    let committed = rewrap_store(&st, &new).await;
    let count = match committed {
        Ok(n) => n,
        Err(e) => {
            // Nothing was committed: the old key stays the only key.
            if let Err(d) = rotation::discard_pending(&path) {
                tracing::error!(error = %d, "could not remove master.key.new after a failed rewrap");
            }
            return Err(e);
        }
    };
    // Committed: the store's keys are wrapped under the new key from here on.
    let key_id = new.key_id().to_owned();
    st.keyring.set_provider(Arc::new(new));
    if let Err(e) = rotation::install_pending(&path) {
        tracing::error!(key_id = %key_id, error = %e,
            "master key rotated in the store but master.key.new could not be installed; it holds the key in use, and the next start or rewrap installs it");
        return Err(ApiError::internal(e));
    }
    tracing::info!(key_id = %key_id, data_keys = count, "master key rotated");
    Ok(Json(MasterKeyStatus {
        key_id,
        data_keys: count,
        ok: count,
    }))
}

/// Re-wraps every data key and the system key under `new`, in one store transaction.
async fn rewrap_store(st: &AppState, new: &FileKeyProvider) -> ApiResult<usize> {
    let old = st.keyring.provider();
    let mut rewrapped = Vec::new();
    for k in st.store.data_keys_all().await? {
        let dek = old.unwrap(&k.wrapped).await?;
        rewrapped.push(DataKey {
            wrapped: new.wrap(&dek).await?,
            master_key_id: new.key_id().to_owned(),
            ..k
        });
    }
    let system = st.keyring.system_key()?;
    let system_wrapped = hex::encode(new.wrap(system.as_slice()).await?);
    st.store
        .data_keys_replace(
            &rewrapped,
            &[(arcan_crypto::SYSTEM_KEY_META.to_owned(), system_wrapped)],
        )
        .await?;
    Ok(rewrapped.len())
}
