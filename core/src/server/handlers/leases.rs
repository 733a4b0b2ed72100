//! Leases: `/api/v1/realms/{slug}/leases[/{**id}]`, `/leases/renew`, `/leases/revoke`,
//! `/leases/revoke-prefix`.

use salvo::oapi::ToSchema;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{Body, page_limit};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::policy::resolve_realm;
use super::super::state::state;
use super::engines::{call_info, duration};
use crate::engine::leases;
use crate::store::{LeaseFilter, LeaseRecord, lease_state};
use crate::util::rfc3339;

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
pub fn lease_json(l: &LeaseRecord) -> Value {
    json!({
        "id": l.id, "mount": l.mount, "role": l.role, "plugin": l.plugin, "state": l.state,
        "issued_at": rfc3339(l.issued_at), "expires_at": rfc3339(l.expires_at),
        "max_expires_at": rfc3339(l.max_expires_at), "renewable": l.renewable,
        "revocable": l.revocable, "issued_by": l.issued_by, "attempts": l.attempts,
        "last_error": l.last_error, "revoked_at": l.revoked_at.map(rfc3339),
    })
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
) -> ApiResult<Json<Value>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let limit = page_limit(limit.into_inner())?;
    // `?state=` (read by hand: `state` is the name of the state accessor here).
    let state_filter = req.query::<String>("state");
    if let Some(s) = &state_filter
        && ![
            lease_state::ACTIVE,
            lease_state::REVOKED,
            lease_state::EXPIRED,
            lease_state::IRREVOCABLE,
        ]
        .contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "state must be active, revoked, expired or irrevocable",
        ));
    }
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
    Ok(Json(json!({
        "items": rows.iter().map(lease_json).collect::<Vec<_>>(),
        "next_cursor": if has_more { rows.last().map(|l| l.id.clone()) } else { None },
        "has_more": has_more,
    })))
}

/// Reads one lease.
#[endpoint(tags("leases"))]
pub async fn get(
    slug: PathParam<String>,
    id: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Value>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let l = st
        .store
        .lease_get(&ctx.realm.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(Json(lease_json(&l)))
}

/// Renews a lease through its engine, bounded by its max ttl.
#[endpoint(tags("leases"))]
pub async fn renew(
    slug: PathParam<String>,
    body: Body<LeaseBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Value>> {
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
        &body.0.lease_id,
        ttl,
        call_info(req, depot),
    )
    .await?;
    audit_detail(depot, json!({"lease_id": l.id, "expires_at": l.expires_at}));
    Ok(Json(lease_json(&l)))
}

/// Revokes a lease through its engine.
#[endpoint(tags("leases"))]
pub async fn revoke(
    slug: PathParam<String>,
    body: Body<LeaseBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Value>> {
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
        &body.0.lease_id,
        st.config.reaper.grace,
        call_info(req, depot),
    )
    .await?;
    Ok(Json(lease_json(&l)))
}

/// Revokes every active lease whose id starts with a prefix.
#[endpoint(tags("leases"))]
pub async fn revoke_prefix(
    slug: PathParam<String>,
    body: Body<PrefixBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Value>> {
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
                    state: Some(lease_state::ACTIVE.into()),
                    after: after.clone(),
                    limit: 500,
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
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
                Ok(_) => revoked.push(l.id),
                Err(e) => failed.push(json!({"lease_id": l.id, "error": e.to_string()})),
            }
        }
    }
    audit_detail(
        depot,
        json!({"prefix": prefix, "revoked": revoked.len(), "failed": failed.len()}),
    );
    Ok(Json(json!({"revoked": revoked, "failed": failed})))
}
