//! Realms: `/api/v1/realms[/{slug}]`.

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{access_for, candidate_realms, resolve_realm};
use super::super::state::state;
use arcan_rbac::{Capability, Decision, Scope, builtin_role, may_grant};
use arcan_store::{Binding, DataKey, Realm, Subject};
use arcan_util::{new_id, now_ms, rfc3339};

/// Body of realm creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRealm {
    /// URL name: 2–63 of `a-z 0-9 -`, starting with a letter or digit.
    pub slug: String,
    /// Display name (defaults to the slug).
    pub name: Option<String>,
}

/// A realm.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealmInfo {
    /// Id.
    pub id: String,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
}

impl From<&Realm> for RealmInfo {
    fn from(r: &Realm) -> Self {
        Self {
            id: r.id.to_string(),
            slug: r.slug.clone(),
            name: r.name.clone(),
            created_at: rfc3339(r.created_at),
        }
    }
}

/// Realm list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealmList {
    /// Realms visible to the caller.
    pub items: Vec<RealmInfo>,
}

fn validate_slug(slug: &str) -> Result<(), String> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("slug must be 2-63 characters of a-z 0-9 -, not starting or ending with -".into())
    }
}

/// Creates a realm; the creator becomes its admin.
#[endpoint(
    tags("realms"),
    status_codes(201, 400, 403, 409),
    responses((status_code = 201, body = RealmInfo, description = "The realm created"))
)]
pub async fn create(
    body: Body<CreateRealm>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<RealmInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let body = body.0;
    validate_slug(&body.slug).map_err(ApiError::bad_request)?;
    let name = body.name.unwrap_or_else(|| body.slug.clone());
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::bad_request("name must be 1-128 characters"));
    }
    let now = now_ms();
    let realm = Realm {
        id: new_id().into(),
        slug: body.slug,
        name,
        created_at: now,
        created_by: who.user_id.to_string(),
    };
    let _rotation = st.keyring.rotation.read().await;
    let (master_key_id, wrapped) = st.keyring.new_wrapped_dek().await?;
    let key = DataKey {
        realm_id: realm.id.clone(),
        master_key_id,
        wrapped,
        created_at: now,
    };
    let admin = Binding {
        id: new_id().into(),
        realm_id: realm.id.clone(),
        subject: Subject::User(who.user_id.clone()),
        role: "admin".into(),
        created_at: now,
        created_by: who.user_id.to_string(),
    };
    st.store
        .realm_create(&realm, &key, &admin)
        .await
        .map_err(|e| match e {
            arcan_store::StoreError::Conflict => {
                ApiError::conflict("a realm with this slug exists")
            }
            other => other.into(),
        })?;
    st.policy_changed();
    res.status_code(StatusCode::CREATED);
    Ok(Json(RealmInfo::from(&realm)))
}

/// Lists the realms the caller has a binding in (all, for superusers).
#[endpoint(tags("realms"))]
pub async fn list(depot: &mut Depot) -> ApiResult<Json<RealmList>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let mut items = Vec::new();
    for realm in candidate_realms(&st, &who).await? {
        if access_for(&st, &who, &realm).await?.sees_realm() {
            items.push(RealmInfo::from(&realm));
        }
    }
    Ok(Json(RealmList { items }))
}

/// Reads a realm.
#[endpoint(tags("realms"))]
pub async fn get(slug: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<RealmInfo>> {
    let _ = slug;
    let ctx = resolve_realm(depot)?;
    Ok(Json(RealmInfo::from(ctx.realm.as_ref())))
}

/// Deletes a realm and everything in it. Needs `realms:manage` and `policy:manage` there.
#[endpoint(
    tags("realms"),
    status_codes(204, 403, 404),
    responses((status_code = 204, description = "The realm is deleted"))
)]
pub async fn delete(
    slug: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let ctx = resolve_realm(depot)?;
    if let Decision::Deny(why) = who.decide_global(Capability::RealmsManage) {
        return Err(ApiError::forbidden(format!("permission denied: {why}")));
    }
    // Deleting a realm destroys every secret and right in it: the caller must hold the
    // whole admin role there, not just `policy:manage`.
    for cap in builtin_role("admin").unwrap_or_default() {
        may_grant(&ctx.access, *cap, &Scope::default()).map_err(|why| {
            ApiError::forbidden(format!("deleting a realm needs every admin right: {why}"))
        })?;
    }
    // Deleting a realm would drop the leases of credentials that still exist outside.
    let active = st
        .store
        .leases(
            &ctx.realm.id,
            &arcan_store::LeaseFilter {
                state: Some(arcan_store::LeaseState::Active),
                limit: 1,
                ..Default::default()
            },
        )
        .await?;
    if !active.is_empty() {
        return Err(ApiError::conflict(
            "the realm has active leases; revoke them (or unmount its engines) first",
        ));
    }
    // Tokens confined to the realm (and their descendants, which inherit the realm) go
    // with it; drop every cached principal so none outlives its realm on this node.
    st.store.realm_delete(&ctx.realm.id).await?;
    st.tokens.invalidate_all();
    st.realms.invalidate(slug.as_str());
    st.keyring.forget(&ctx.realm.id);
    st.policy_changed();
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
