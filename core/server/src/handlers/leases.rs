//! Leases: `/api/v1/realms/{slug}/leases[/{**id}]`, `/leases/renew`, `/leases/revoke`,
//! `/leases/revoke-prefix`.

use salvo::oapi::ToSchema;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{Body, page_limit};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::policy::resolve_realm;
use super::super::state::state;
use super::engines::{call_info, duration};
use arcan_engine::leases;
use arcan_store::{LeaseFilter, LeaseId, LeaseRecord, LeaseState};
use arcan_util::rfc3339;

/// Body naming a lease.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    /// The lease id.
    pub lease_id: String,
    /// Renew only: the extension asked for, e.g. `1h` (default: the original duration).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Body of a revoke by prefix.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefixBody {
    /// Lease ids starting with this, e.g. `pg/readonly/` (at least the mount name).
    pub prefix: String,
}

/// The public view of a lease (no engine state).
#[derive(Debug, Serialize, ToSchema)]
pub struct Lease {
    /// `<mount>/<role>/<uuid>`.
    pub id: String,
    /// Mount name at issue.
    pub mount: String,
    /// Role name.
    pub role: String,
    /// Plugin name.
    pub plugin: String,
    /// `active`, `revoked`, `expired` or `irrevocable`.
    pub state: String,
    /// Issue time (RFC 3339).
    pub issued_at: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// Renewals never go past this (RFC 3339).
    pub max_expires_at: String,
    /// Renew is allowed.
    pub renewable: bool,
    /// Revoke has work to do (otherwise it simply expires).
    pub revocable: bool,
    /// Id of the issuing user.
    pub issued_by: Option<String>,
    /// Failed revocation attempts.
    pub attempts: i32,
    /// The last revocation error.
    pub last_error: Option<String>,
    /// When it was revoked (RFC 3339).
    pub revoked_at: Option<String>,
}

impl From<&LeaseRecord> for Lease {
    fn from(l: &LeaseRecord) -> Self {
        Self {
            id: l.id.to_string(),
            mount: l.mount.clone(),
            role: l.role.clone(),
            plugin: l.plugin.clone(),
            state: l.state.to_string(),
            issued_at: rfc3339(l.issued_at),
            expires_at: rfc3339(l.expires_at),
            max_expires_at: rfc3339(l.max_expires_at),
            renewable: l.renewable,
            revocable: l.revocable,
            issued_by: l.issued_by.clone(),
            attempts: l.attempts,
            last_error: l.last_error.clone(),
            revoked_at: l.revoked_at.map(rfc3339),
        }
    }
}

/// A page of leases.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeasePage {
    /// Leases in id order.
    pub items: Vec<Lease>,
    /// Pass as `?cursor=` for the next page.
    pub next_cursor: Option<String>,
    /// More leases follow.
    pub has_more: bool,
}

/// A lease a revoke by prefix could not revoke.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeFailure {
    /// The lease id.
    pub lease_id: String,
    /// Why its engine did not revoke it.
    pub error: String,
}

/// What a revoke by prefix did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrefixRevocation {
    /// Ids of the leases revoked.
    pub revoked: Vec<String>,
    /// The leases that stay active, with why.
    pub failed: Vec<RevokeFailure>,
}

/// Lists leases (`?prefix=`, `?state=`, cursor pagination).
#[endpoint(tags("leases"), parameters(("state" = Option<String>, Query, description = "active, revoked, expired or irrevocable")))]
pub async fn list(
    slug: PathParam<String>,
    prefix: QueryParam<String, false>,
    cursor: QueryParam<String, false>,
    limit: QueryParam<i64, false>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<LeasePage>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let limit = page_limit(limit.into_inner())?;
    // `?state=` (read by hand: `state` is the name of the state accessor here).
    let state_filter = req
        .query::<String>("state")
        .map(|s| s.parse::<LeaseState>())
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("state must be active, revoked, expired or irrevocable")
        })?;
    let mut rows = st
        .store
        .leases(
            &ctx.realm.id,
            &LeaseFilter {
                prefix: prefix.into_inner(),
                state: state_filter,
                after: cursor.into_inner(),
                limit: limit + 1,
            },
        )
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(Json(LeasePage {
        items: rows.iter().map(Lease::from).collect(),
        next_cursor: if has_more {
            rows.last().map(|l| l.id.to_string())
        } else {
            None
        },
        has_more,
    }))
}

/// Reads one lease.
#[endpoint(tags("leases"))]
pub async fn get(
    slug: PathParam<String>,
    id: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Lease>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let l = st
        .store
        .lease_get(&ctx.realm.id, &LeaseId::from(id.into_inner()))
        .await?
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(Json(Lease::from(&l)))
}

/// Renews a lease through its engine, bounded by its max ttl.
#[endpoint(tags("leases"))]
pub async fn renew(
    slug: PathParam<String>,
    body: Body<LeaseBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Lease>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let ttl = body
        .0
        .ttl
        .as_deref()
        .map(|t| duration("ttl", t))
        .transpose()?;
    audit_detail(depot, json!({"lease_id": body.0.lease_id}));
    let l = leases::renew(
        &st.engines,
        (&ctx.realm.id, &ctx.realm.slug),
        &LeaseId::from(body.0.lease_id.as_str()),
        ttl,
        call_info(req, depot),
    )
    .await?;
    audit_detail(depot, json!({"lease_id": l.id, "expires_at": l.expires_at}));
    Ok(Json(Lease::from(&l)))
}

/// Revokes a lease through its engine.
#[endpoint(tags("leases"))]
pub async fn revoke(
    slug: PathParam<String>,
    body: Body<LeaseBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Lease>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    if body.0.ttl.is_some() {
        return Err(ApiError::bad_request("ttl is not used when revoking"));
    }
    audit_detail(depot, json!({"lease_id": body.0.lease_id}));
    let l = leases::revoke(
        &st.engines,
        (&ctx.realm.id, &ctx.realm.slug),
        &LeaseId::from(body.0.lease_id.as_str()),
        st.config.reaper.grace,
        call_info(req, depot),
    )
    .await?;
    Ok(Json(Lease::from(&l)))
}

/// Revokes every active lease whose id starts with a prefix.
#[endpoint(tags("leases"))]
pub async fn revoke_prefix(
    slug: PathParam<String>,
    body: Body<PrefixBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<PrefixRevocation>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let prefix = body.0.prefix;
    if prefix.is_empty() {
        return Err(ApiError::bad_request("prefix must name at least a mount"));
    }
    let info = call_info(req, depot);
    let (mut revoked, mut failed) = (Vec::new(), Vec::new());
    let mut after = None;
    loop {
        let page = st
            .store
            .leases(
                &ctx.realm.id,
                &LeaseFilter {
                    prefix: Some(prefix.clone()),
                    state: Some(LeaseState::Active),
                    after: after.clone(),
                    limit: 500,
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.to_string());
        for l in page {
            match leases::revoke(
                &st.engines,
                (&ctx.realm.id, &ctx.realm.slug),
                &l.id,
                st.config.reaper.grace,
                info.clone(),
            )
            .await
            {
                Ok(_) => revoked.push(l.id.into_string()),
                Err(e) => failed.push(RevokeFailure {
                    lease_id: l.id.into_string(),
                    error: e.to_string(),
                }),
            }
        }
    }
    audit_detail(
        depot,
        json!({"prefix": prefix, "revoked": revoked.len(), "failed": failed.len()}),
    );
    Ok(Json(PrefixRevocation { revoked, failed }))
}
