//! Guardian #2 (RBAC, 403) together with the realm lookup of guardian #3 (404).
//!
//! Each route declares what it needs with [`need`]; the hoop resolves the realm from the
//! `{slug}` path parameter, computes the caller's access in it and evaluates the
//! capability with the request's environment (`?env=`) and key (`{**key}`). A realm that
//! does not exist and a realm the caller has no binding in look the same: 404.

use std::sync::Arc;

use salvo::prelude::*;

use super::super::error::{ApiError, ApiResult, render_error};
use super::super::state::{AppState, state};
use super::auth::principal;
use crate::auth::Principal;
use arcan_rbac::{
    Access, Capability, Decision, Grant, Request as Ask, Scope, ScopeKind, builtin_role, evaluate,
};
use arcan_store::{Realm, Subject};

/// What a route requires.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Any valid token.
    Authenticated,
    /// A global capability.
    Global(Capability),
    /// Any binding in the realm of the path.
    RealmMember,
    /// A capability in the realm of the path.
    Realm(Capability),
}

/// The guard hoop for one route.
#[derive(Debug, Clone, Copy)]
pub struct Guard(pub Need);

/// A guard requiring `cap` in the path's realm.
pub fn need(cap: Capability) -> Guard {
    Guard(Need::Realm(cap))
}

/// The realm a request resolved to and the caller's access there.
#[derive(Debug, Clone)]
pub struct RealmCtx {
    /// The realm.
    pub realm: Arc<Realm>,
    /// The caller's access in it.
    pub access: Arc<Access>,
}

/// Guardian #3 for handlers: the realm resolved by the policy hoop, or 404.
pub fn resolve_realm(depot: &Depot) -> ApiResult<RealmCtx> {
    depot
        .get_typed::<RealmCtx>()
        .cloned()
        .map_err(|_| ApiError::not_found("realm not found"))
}

/// The environment of a request (`?env=`, default `default`).
pub fn env_of(req: &Request) -> String {
    req.query::<String>("env")
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Looks a realm up by slug (cached).
pub async fn realm_by_slug(st: &AppState, slug: &str) -> ApiResult<Option<Arc<Realm>>> {
    if let Some(r) = st.realms.get(slug) {
        return Ok(Some(r));
    }
    let Some(r) = st.store.realm_by_slug(slug).await? else {
        return Ok(None);
    };
    let r = Arc::new(r);
    st.realms.insert(slug.to_owned(), r.clone());
    Ok(Some(r))
}

/// The realms a principal may have rights in: all of them for superusers, else those where
/// the user or the token has a binding. Callers still check [`access_for`].
pub async fn candidate_realms(st: &AppState, p: &Principal) -> ApiResult<Vec<Realm>> {
    let all = st.store.realms_all().await?;
    if p.superuser {
        return Ok(all);
    }
    let bound = st.store.realms_bound(&p.user_id, &p.token_id).await?;
    Ok(all.into_iter().filter(|r| bound.contains(&r.id)).collect())
}

/// Computes (cached) what a principal may do in a realm.
pub async fn access_for(st: &AppState, p: &Principal, realm: &Realm) -> ApiResult<Arc<Access>> {
    let key = (realm.id.clone(), p.token_id.clone());
    if let Some(a) = st.access.get(&key) {
        return Ok(a);
    }
    let mut access = Access {
        grants: Vec::new(),
        ..p.global_access()
    };
    let confined_elsewhere = p.realm_id.as_ref().is_some_and(|r| *r != realm.id);
    if confined_elsewhere {
        access.superuser = false;
    } else {
        for b in st
            .store
            .bindings_for(&realm.id, &p.user_id, &p.token_id)
            .await?
        {
            let (capabilities, scope) = match builtin_role(&b.role) {
                Some(caps) => (caps.to_vec(), Scope::default()),
                None => match st.store.role_get(&realm.id, &b.role).await? {
                    Some(role) => (
                        crate::auth::parse_capabilities(&role.capabilities)
                            .map_err(ApiError::internal)?,
                        Scope::new(role.env, role.key_glob.as_deref())
                            .map_err(ApiError::internal)?,
                    ),
                    None => continue,
                },
            };
            let who = match &b.subject {
                Subject::User(_) => "user",
                Subject::Token(_) => "token",
            };
            access.grants.push(Grant {
                source: format!("binding {} ({who} → role {})", b.id, b.role),
                capabilities,
                scope,
            });
        }
    }
    let access = Arc::new(access);
    st.access.insert(key, access.clone());
    Ok(access)
}

/// Runs the check for `need`; on success a [`RealmCtx`] is in the depot for realm routes.
pub async fn check(st: &AppState, need: Need, req: &Request, depot: &mut Depot) -> ApiResult<()> {
    let p = principal(depot)?;
    let cap = match need {
        Need::Authenticated => return Ok(()),
        Need::Global(cap) => {
            return match p.decide_global(cap) {
                Decision::Allow(_) => Ok(()),
                Decision::Deny(why) => {
                    Err(ApiError::forbidden(format!("permission denied: {why}")))
                }
            };
        }
        Need::RealmMember => None,
        Need::Realm(cap) => Some(cap),
    };
    let slug: String = req
        .param("slug")
        .ok_or_else(|| ApiError::not_found("realm not found"))?;
    let realm = realm_by_slug(st, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found("realm not found"))?;
    let access = access_for(st, &p, &realm).await?;
    if !access.sees_realm() {
        return Err(ApiError::not_found("realm not found"));
    }
    // The caller may see the realm: from here on its events belong to the realm's log,
    // refusals included.
    depot.insert_typed(RealmCtx {
        realm: realm.clone(),
        access: access.clone(),
    });
    if let Some(capability) = cap {
        // Only key routes name an environment and a key; for every other route a
        // narrowed grant does not apply (see `ScopeKind`).
        let env = env_of(req);
        let key: Option<String> = req.param("key");
        let ask = match capability.scope_kind() {
            ScopeKind::Unscoped | ScopeKind::Delegating => Ask::plain(capability),
            ScopeKind::Keyed | ScopeKind::Listing => Ask {
                capability,
                env: Some(&env),
                key: key.as_deref(),
            },
        };
        if let Decision::Deny(why) = evaluate(&access, ask) {
            return Err(ApiError::forbidden(format!("permission denied: {why}")));
        }
    }
    Ok(())
}

#[async_trait]
impl Handler for Guard {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let st = state(depot).clone();
        if let Err(e) = check(&st, self.0, req, depot).await {
            render_error(&e, depot, res);
            ctrl.skip_rest();
        }
    }
}
