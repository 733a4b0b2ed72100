//! Issuing credentials as leases, renewing and revoking them, and unmounting an engine
//! without losing track of what it issued.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EngineError;
use super::registry::Engines;
use super::sealing::{Purpose, open_in_realm, seal_in_realm};
use arcan_plugin_host::{CallError, CallInfo, ErrorKind};
use arcan_store::{LeaseId, LeaseRecord, LeaseState, MountRecord, RealmId, TokenId};
use arcan_util::{add_secs_ms, now_ms};

/// A role as the host stores it: TTL policy around the engine's own definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRole {
    /// Seconds a credential lives unless the request asks for less.
    pub default_ttl: u64,
    /// Seconds a lease may live at most, renewals included.
    pub max_ttl: u64,
    /// The engine's normalised role definition.
    pub definition: Value,
}

impl StoredRole {
    /// Parses a stored role.
    pub fn parse(s: &str) -> Result<Self, EngineError> {
        serde_json::from_str(s)
            .map_err(|e| EngineError::Store(arcan_store::StoreError::Corrupt(e.to_string())))
    }
}

/// A credential just issued: its lease and the data returned once to the caller.
#[derive(Debug)]
pub struct Issued {
    /// The lease.
    pub lease: LeaseRecord,
    /// The credential (never stored).
    pub data: Value,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Issues a credential for `role` of the mount `mount` in `realm`.
pub async fn issue(
    engines: &Engines,
    realm: (&RealmId, &str),
    mount: &str,
    role: &str,
    ttl: Option<Duration>,
    info: CallInfo,
) -> Result<Issued, EngineError> {
    let (realm_id, realm_slug) = realm;
    let store = &engines.services.store;
    let record = store
        .mount_get(realm_id, mount)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("no engine is mounted at `{mount}`")))?;
    let h = engines.handle(realm_slug, record).await?;
    let role_rec = store
        .engine_role_get(realm_id, &h.record.id, role)
        .await?
        .ok_or_else(|| {
            EngineError::NotFound(format!("role `{role}` does not exist on `{mount}`"))
        })?;
    let stored = StoredRole::parse(&role_rec.definition)?;
    let ttl = match ttl.map(secs) {
        Some(0) => return Err(EngineError::Invalid("ttl must be at least 1s".into())),
        Some(t) if t > stored.max_ttl => {
            return Err(EngineError::Invalid(format!(
                "ttl {t}s exceeds the role's max_ttl of {}s",
                stored.max_ttl
            )));
        }
        Some(t) => t,
        None => stored.default_ttl.min(stored.max_ttl),
    };
    let definition = stored.definition.to_string();
    let info = CallInfo {
        role: Some(role.to_owned()),
        ..info
    };
    let cred = engines
        .call(&h, info.clone())
        .issue(h.record.config.clone(), definition.clone(), ttl)
        .await?;
    let undo = |why: EngineError| async {
        // Nothing half-created: an issued credential that cannot be tracked is revoked now.
        let revoked = engines.call(&h, info.clone()).revoke(
            h.record.config.clone(),
            definition.clone(),
            cred.internal.clone(),
        );
        if let Err(e) = revoked.await {
            tracing::error!(mount = %h.record.name, error = %e, "could not revoke an untracked credential");
        }
        why
    };
    let data: Value = match serde_json::from_str(&cred.data) {
        Ok(v) => v,
        Err(_) => {
            return Err(undo(EngineError::Call(CallError::Engine {
                plugin: h.scope.plugin.clone(),
                kind: ErrorKind::Internal,
                message: "the engine returned credential data that is not JSON".into(),
                retry_after: None,
            }))
            .await);
        }
    };
    let granted = match cred.ttl_seconds {
        0 => ttl,
        t => t.min(ttl),
    };
    let now = now_ms();
    let (Some(expires_at), Some(max_expires_at)) =
        (add_secs_ms(now, granted), add_secs_ms(now, stored.max_ttl))
    else {
        return Err(undo(EngineError::Invalid(format!(
            "the role's max_ttl of {}s is too large to be represented; lower it",
            stored.max_ttl
        )))
        .await);
    };
    let id = format!("{mount}/{role}/{}", uuid::Uuid::new_v4().simple());
    let internal = match seal_in_realm(
        store.as_ref(),
        &engines.services.keyring,
        realm_id,
        Purpose::Lease,
        &[&id],
        cred.internal.as_bytes(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return Err(undo(e.into()).await),
    };
    let lease = LeaseRecord {
        id: id.into(),
        realm_id: realm_id.clone(),
        mount_id: h.record.id.clone(),
        mount: mount.to_owned(),
        role: role.to_owned(),
        plugin: h.scope.plugin.clone(),
        role_definition: definition.clone(),
        internal,
        issued_at: now,
        expires_at,
        max_expires_at,
        renewable: cred.renewable,
        revocable: cred.revocable,
        state: LeaseState::Active,
        issued_by: info.user_id.clone(),
        token_id: info.token_id.clone().map(TokenId::from),
        attempts: 0,
        next_attempt_at: None,
        claimed_until: None,
        last_error: None,
        revoked_at: None,
    };
    if let Err(e) = store.lease_create(&lease).await {
        return Err(undo(e.into()).await);
    }
    Ok(Issued { lease, data })
}

/// The call context of an engine call about `lease`.
fn lease_info(lease: &LeaseRecord, info: CallInfo) -> CallInfo {
    CallInfo {
        lease_id: Some(lease.id.to_string()),
        role: Some(lease.role.clone()),
        ..info
    }
}

/// The mount a lease came from, if it is still mounted.
async fn lease_mount(
    engines: &Engines,
    lease: &LeaseRecord,
) -> Result<Option<MountRecord>, EngineError> {
    Ok(engines
        .services
        .store
        .mount_by_id(&lease.realm_id, &lease.mount_id)
        .await?)
}

async fn internal_of(engines: &Engines, lease: &LeaseRecord) -> Result<String, EngineError> {
    let plain = open_in_realm(
        engines.services.store.as_ref(),
        &engines.services.keyring,
        &lease.realm_id,
        Purpose::Lease,
        &[&lease.id],
        &lease.internal,
    )
    .await?;
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

/// Renews an active lease by `ttl` (default: its original duration), bounded by its max ttl.
pub async fn renew(
    engines: &Engines,
    realm: (&RealmId, &str),
    lease_id: &LeaseId,
    ttl: Option<Duration>,
    info: CallInfo,
) -> Result<LeaseRecord, EngineError> {
    let (realm_id, realm_slug) = realm;
    let store = &engines.services.store;
    let lease = store
        .lease_get(realm_id, lease_id)
        .await?
        .ok_or_else(|| EngineError::NotFound("lease not found".into()))?;
    let now = now_ms();
    if lease.state != LeaseState::Active {
        return Err(EngineError::Conflict(format!("lease is {}", lease.state)));
    }
    if lease.expires_at <= now {
        return Err(EngineError::Conflict("lease has expired".into()));
    }
    if !lease.renewable {
        return Err(EngineError::Invalid("lease is not renewable".into()));
    }
    let room_ms = lease.max_expires_at - now;
    if room_ms < 1000 {
        return Err(EngineError::Conflict("lease reached its max ttl".into()));
    }
    // An increment beyond the max ttl (however large) is clipped to it, as any other is.
    let want_ms = match ttl.map(secs) {
        Some(0) => return Err(EngineError::Invalid("ttl must be at least 1s".into())),
        Some(t) => i64::try_from(t)
            .ok()
            .and_then(|t| t.checked_mul(1000))
            .unwrap_or(i64::MAX),
        None => lease.expires_at.saturating_sub(lease.issued_at).max(1000),
    }
    .min(room_ms);
    let want = (want_ms as u64).div_ceil(1000);
    let record = lease_mount(engines, &lease).await?.ok_or_else(|| {
        EngineError::Conflict(format!("engine `{}` is no longer mounted", lease.mount))
    })?;
    let h = engines.handle(realm_slug, record).await?;
    let info = lease_info(&lease, info);
    let internal = internal_of(engines, &lease).await?;
    let granted = engines
        .call(&h, info)
        .renew(
            h.record.config.clone(),
            lease.role_definition.clone(),
            internal,
            want,
        )
        .await?;
    let granted = granted.min(want);
    if granted == 0 {
        return Err(EngineError::Conflict(
            "the engine granted no extension".into(),
        ));
    }
    // `granted <= want`, and `want` seconds fit in the room left before the max ttl.
    let granted_ms = i64::try_from(granted)
        .ok()
        .and_then(|g| g.checked_mul(1000))
        .unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(granted_ms.min(want_ms));
    if !store.lease_extend(realm_id, lease_id, expires_at).await? {
        return Err(EngineError::Conflict("lease is no longer active".into()));
    }
    Ok(LeaseRecord {
        expires_at,
        ..lease
    })
}

/// Revokes a lease that this node has claimed, through its engine. Returns the final state.
pub async fn revoke_claimed(
    engines: &Engines,
    realm_slug: &str,
    lease: &LeaseRecord,
    info: CallInfo,
) -> Result<LeaseState, EngineError> {
    if !lease.revocable {
        return Ok(LeaseState::Expired);
    }
    let record = lease_mount(engines, lease).await?.ok_or_else(|| {
        EngineError::Conflict(format!("engine `{}` is no longer mounted", lease.mount))
    })?;
    let h = engines.handle(realm_slug, record).await?;
    let info = lease_info(lease, info);
    let internal = internal_of(engines, lease).await?;
    engines
        .call(&h, info)
        .revoke(
            h.record.config.clone(),
            lease.role_definition.clone(),
            internal,
        )
        .await?;
    Ok(LeaseState::Revoked)
}

/// How long a revocation holds its claim on a lease.
pub fn claim_ms(engines: &Engines, grace: Duration) -> i64 {
    let call = engines.services.limits.call_timeout;
    grace.max(call * 2).as_millis() as i64
}

/// Revokes a lease now (API). Revoking a lease that is no longer active is a no-op.
pub async fn revoke(
    engines: &Engines,
    realm: (&RealmId, &str),
    lease_id: &LeaseId,
    grace: Duration,
    info: CallInfo,
) -> Result<LeaseRecord, EngineError> {
    let (realm_id, realm_slug) = realm;
    let store = &engines.services.store;
    let now = now_ms();
    let Some(lease) = store
        .lease_claim(realm_id, lease_id, now, now + claim_ms(engines, grace))
        .await?
    else {
        return match store.lease_get(realm_id, lease_id).await? {
            None => Err(EngineError::NotFound("lease not found".into())),
            Some(l) if l.state != LeaseState::Active => Ok(l),
            Some(_) => Err(EngineError::Conflict(
                "a revocation of this lease is in progress".into(),
            )),
        };
    };
    if !lease.revocable {
        // Release the claim; the reaper marks it expired after its expiry.
        store
            .lease_failed(
                realm_id,
                lease_id,
                lease.attempts,
                lease.expires_at,
                "revocation requested; this credential is not revocable and expires by itself",
            )
            .await?;
        return Err(EngineError::Conflict(
            "this credential cannot be revoked; it expires by itself".into(),
        ));
    }
    match revoke_claimed(engines, realm_slug, &lease, info).await {
        Ok(state) => {
            let at = now_ms();
            store
                .lease_finish(realm_id, lease_id, state, at, None)
                .await?;
            Ok(LeaseRecord {
                state,
                revoked_at: Some(at),
                ..lease
            })
        }
        Err(e) => {
            // The reaper retries it after expiry; the claim is released now.
            store
                .lease_failed(
                    realm_id,
                    lease_id,
                    lease.attempts + 1,
                    now_ms(),
                    &e.to_string(),
                )
                .await?;
            Err(e)
        }
    }
}

/// What unmounting did to the mount's leases.
#[derive(Debug, Default, Serialize)]
pub struct UnmountReport {
    /// Leases revoked through the engine.
    pub revoked: usize,
    /// Leases that expire by themselves (nothing to revoke).
    pub expired: usize,
    /// Leases that could not be revoked (reported irrevocable when forced).
    pub failed: Vec<String>,
}

/// Revokes every active lease of a mount, then removes it. Without `force`, a lease that
/// cannot be revoked keeps the mount (409); with `force`, such leases are marked
/// irrevocable (visible in listings and status) and the mount is removed.
pub async fn unmount(
    engines: &Engines,
    realm: (&RealmId, &str),
    mount: &str,
    force: bool,
    grace: Duration,
    info: CallInfo,
) -> Result<UnmountReport, EngineError> {
    let (realm_id, realm_slug) = realm;
    let store = &engines.services.store;
    let record = store
        .mount_get(realm_id, mount)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("no engine is mounted at `{mount}`")))?;
    let mut report = UnmountReport::default();
    for lease in store.leases_of_mount(realm_id, &record.id).await? {
        let now = now_ms();
        let Some(lease) = store
            .lease_claim(realm_id, &lease.id, now, now + claim_ms(engines, grace))
            .await?
        else {
            report.failed.push(lease.id.into());
            continue;
        };
        match revoke_claimed(engines, realm_slug, &lease, info.clone()).await {
            Ok(state) => {
                store
                    .lease_finish(realm_id, &lease.id, state, now_ms(), None)
                    .await?;
                if state == LeaseState::Expired {
                    report.expired += 1;
                } else {
                    report.revoked += 1;
                }
            }
            Err(e) if force => {
                let why = format!("{e}; engine unmounted with force");
                store
                    .lease_finish(
                        realm_id,
                        &lease.id,
                        LeaseState::Irrevocable,
                        now_ms(),
                        Some(&why),
                    )
                    .await?;
                tracing::error!(lease = %lease.id, realm = %realm_slug, error = %why, "lease irrevocable");
                report.failed.push(lease.id.into());
            }
            Err(e) => {
                store
                    .lease_failed(
                        realm_id,
                        &lease.id,
                        lease.attempts + 1,
                        now_ms(),
                        &e.to_string(),
                    )
                    .await?;
                report.failed.push(lease.id.into());
            }
        }
    }
    if !report.failed.is_empty() && !force {
        return Err(EngineError::Conflict(format!(
            "{} lease(s) of `{mount}` could not be revoked ({}); fix the cause and retry, or unmount with force=true to report them irrevocable",
            report.failed.len(),
            report.failed.join(", ")
        )));
    }
    // The unmount's event commits with the delete: give it the report first.
    if let Some(scope) = arcan_store::change::ChangeScope::current() {
        scope.set_detail(serde_json::json!({
            "mount": mount,
            "leases": serde_json::to_value(&report).unwrap_or_default(),
        }));
    }
    store.mount_delete(realm_id, &record.id).await?;
    engines.forget(&record.id);
    Ok(report)
}
