//! The lease reaper: revokes expired leases through their engines.
//!
//! Each round claims a batch of due leases in the store (with PostgreSQL, `FOR UPDATE
//! SKIP LOCKED` makes every lease go to one node only), revokes them a few at a time with
//! a per-lease deadline, and records the outcome: revoked, expired (not revocable), or a
//! failure retried with exponential backoff until `max_attempts`, after which the lease is
//! marked irrevocable, logged as an error and audited. It runs as its own task, so request
//! serving never waits on it, owned by the [`Lifecycle`] (see [`spawn`] for shutdown).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::leases::{claim_ms, revoke_claimed};
use crate::registry::Engines;
use arcan_audit::{Actor, Event};
use arcan_config::ReaperConfig;
use arcan_lifecycle::{Lifecycle, Stage};
use arcan_plugin_host::CallInfo;
use arcan_store::{LeaseRecord, LeaseState, Outcome, RealmId};
use arcan_util::{new_id, now_ms, rfc3339};

/// Revocations running at once.
const PARALLEL: usize = 4;

/// Starts the reaper loop in the work stage of `lifecycle`. At shutdown it claims nothing
/// more and lets the revocations it started finish (each within `revoke_timeout`); leases it
/// claimed but had not started stay claimed, and the next start (or another node) revokes
/// them once the claim lapses. Aborted at the drain deadline, a revocation in flight is
/// abandoned whole: its lease stays active and claimed, never marked revoked half-way.
pub fn spawn(engines: Arc<Engines>, cfg: ReaperConfig, lifecycle: &Lifecycle) {
    let stop = lifecycle.token(Stage::Work);
    lifecycle.spawn(Stage::Work, "reaper", async move {
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if stop.is_cancelled() {
                return;
            }
            match run_once(&engines, &cfg, &stop).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(leases = n, "reaper round done"),
                Err(e) => tracing::error!(error = %e, "reaper round failed"),
            }
        }
    });
}

/// The delay before retry `attempt` (1-based): `backoff · 2^(attempt-1)` with ±25 %
/// jitter, at most an hour.
pub fn backoff(cfg: &ReaperConfig, attempt: u32) -> Duration {
    let base = cfg.backoff.as_millis() as f64 * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    let jitter = rand::thread_rng().gen_range(0.75..1.25);
    Duration::from_millis((base * jitter).min(3_600_000.0) as u64)
}

/// One round: claims due leases and revokes them. Returns how many it handled.
pub async fn run_once(
    engines: &Arc<Engines>,
    cfg: &ReaperConfig,
    stop: &CancellationToken,
) -> Result<usize, arcan_store::StoreError> {
    let store = engines.services.store.clone();
    let now = now_ms();
    let due = store
        .leases_claim_due(
            now,
            now + claim_ms(engines, cfg.grace),
            i64::from(cfg.batch),
        )
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let slugs: HashMap<RealmId, String> = store
        .realms_all()
        .await?
        .into_iter()
        .map(|r| (r.id, r.slug))
        .collect();
    let n = due.len();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = JoinSet::new();
    for lease in due {
        let engines = engines.clone();
        let cfg = cfg.clone();
        let gate = gate.clone();
        let stop = stop.clone();
        let slug = slugs.get(&lease.realm_id).cloned().unwrap_or_default();
        tasks.spawn(async move {
            let _permit = gate.acquire().await;
            // Shutting down: start nothing new (the lease stays claimed for the next start).
            if !stop.is_cancelled() {
                reap(&engines, &cfg, &slug, lease).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(n)
}

async fn reap(engines: &Arc<Engines>, cfg: &ReaperConfig, realm: &str, lease: LeaseRecord) {
    let store = &engines.services.store;
    let info = CallInfo {
        request_id: format!("reaper-{}", new_id()),
        ..CallInfo::default()
    };
    // The revocation runs in a task of its own: a plugin call that holds its worker thread
    // (a guest spinning until the call deadline) must not also hold the timer that cuts it
    // off, or `revoke_timeout` could never fire before the call deadline.
    // The task is aborted when the timeout fires, or when this attempt is dropped (the
    // reaper aborted at the shutdown deadline), so no revocation outlives its attempt.
    let mut call = AbortOnDrop({
        let (engines, realm, lease, info) = (
            engines.clone(),
            realm.to_owned(),
            lease.clone(),
            info.clone(),
        );
        tokio::spawn(async move { revoke_claimed(&engines, &realm, &lease, info).await })
    });
    let outcome = match tokio::time::timeout(cfg.revoke_timeout, &mut call.0).await {
        Ok(joined) => joined.unwrap_or_else(|e| {
            Err(crate::EngineError::Conflict(format!(
                "revocation task failed: {e}"
            )))
        }),
        Err(_) => {
            call.0.abort();
            Err(crate::EngineError::Conflict(format!(
                "revocation did not finish within {:?}",
                cfg.revoke_timeout
            )))
        }
    };
    let recorded = match outcome {
        Ok(state) => {
            emit(
                engines,
                realm,
                &lease,
                &info,
                "lease.revoke",
                Outcome::Success,
                None,
            )
            .await;
            store
                .lease_finish(&lease.realm_id, &lease.id, state, now_ms(), None)
                .await
        }
        Err(e) => {
            let attempts = lease.attempts + 1;
            let why = e.to_string();
            if attempts >= cfg.max_attempts as i32 {
                tracing::error!(lease = %lease.id, realm, attempts, error = %why,
                    "lease is irrevocable: revocation kept failing; revoke the credential by hand");
                emit(
                    engines,
                    realm,
                    &lease,
                    &info,
                    "lease.irrevocable",
                    Outcome::Error,
                    Some(&why),
                )
                .await;
                let finished = store
                    .lease_finish(
                        &lease.realm_id,
                        &lease.id,
                        LeaseState::Irrevocable,
                        now_ms(),
                        Some(&why),
                    )
                    .await;
                // Record the last attempt too (the count shown is the attempts made); the
                // lease is no longer active, so nothing claims it again.
                match finished {
                    Ok(()) => {
                        store
                            .lease_failed(&lease.realm_id, &lease.id, attempts, now_ms(), &why)
                            .await
                    }
                    e => e,
                }
            } else {
                let next = now_ms() + backoff(cfg, attempts as u32).as_millis() as i64;
                tracing::warn!(lease = %lease.id, realm, attempts, error = %why, "lease revocation failed; will retry");
                emit(
                    engines,
                    realm,
                    &lease,
                    &info,
                    "lease.revoke",
                    Outcome::Failure,
                    Some(&why),
                )
                .await;
                store
                    .lease_failed(&lease.realm_id, &lease.id, attempts, next, &why)
                    .await
            }
        }
    };
    if let Err(e) = recorded {
        tracing::error!(lease = %lease.id, error = %e, "cannot record the reaper outcome; the claim expires and another round retries");
    }
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn emit(
    engines: &Engines,
    realm: &str,
    lease: &LeaseRecord,
    info: &CallInfo,
    action: &str,
    outcome: Outcome,
    error: Option<&str>,
) {
    let sv = &engines.services;
    if !sv.audit_enabled {
        return;
    }
    let now = now_ms();
    let stored = sv
        .audit
        .background(Event {
            id: new_id(),
            time: rfc3339(now),
            time_ms: now,
            request_id: Some(info.request_id.clone()),
            actor: Actor {
                auth_method: "system".into(),
                user_id: Some("system:reaper".into()),
                ..Actor::default()
            },
            realm_id: Some(lease.realm_id.to_string()),
            realm: Some(realm.to_owned()),
            action: action.into(),
            target: lease.id.to_string(),
            outcome,
            status: None,
            detail: Some(serde_json::json!({
                "mount": lease.mount, "role": lease.role, "plugin": lease.plugin,
                "attempt": lease.attempts + 1, "error": error,
            })),
        })
        .await;
    if !stored {
        tracing::error!(lease = %lease.id, action, "the audit dispatcher has stopped; the reaper's event is lost");
    }
}
