//! Login roles: `/api/v1/auth/methods/{name}/roles` (global `auth:manage`, and the realm
//! rules for what they grant).
//!
//! A role's grants are ordinary realm bindings of its principal, so granting realm access
//! through a login role takes exactly what creating those bindings by hand takes: in every
//! granted realm the caller must see the realm, hold `policy:manage` there, and hold every
//! granted capability at least as widely (the escalation rule). Replacing or deleting a
//! role takes the rights of every grant it removes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::machine::{self, MethodKind, RoleBounds};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{access_for, realm_by_slug};
use super::super::state::{AppState, state};
use super::auth_methods::method_named;
use super::policy::{check_delegation, role_rights};
use crate::auth::{Principal, parse_capabilities};
use arcan_crypto::{generate_token, hash_token};
use arcan_rbac::{Capability, Decision, Request as Ask, Scope, evaluate};
use arcan_store::{
    AuthMethod, AuthRole, Binding, Realm, RealmGrant, RealmId, Role, RolePut, Subject, TokenRecord,
    User, UserKind, managed_role_name,
};
use arcan_util::{new_id, now_ms, rfc3339};

/// Most grants one role may list.
pub const MAX_GRANTS: usize = 32;
/// Default login token lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Keys of a role body that are not part of the method-specific definition.
const COMMON_KEYS: [&str; 4] = ["grants", "token_ttl", "token_max_ttl", "revoke_tokens"];

/// One grant of a login role: an existing role of a realm, or a capability list (with
/// optional environment and key narrowing) for which the login role manages a realm role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Realm slug.
    pub realm: String,
    /// A built-in or custom role of the realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Or: realm capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// With `capabilities`: only this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// With `capabilities`: only keys matching this glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_glob: Option<String>,
}

/// A login role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleInfo {
    /// The method's name.
    pub method: String,
    /// The role's name.
    pub name: String,
    /// The principal whose bindings the grants are (`auth:<method>/<role>`).
    pub principal: String,
    /// The principal's user id.
    pub principal_id: String,
    /// The lineage anchor: parent of every login token (revoke it to cut every login).
    pub anchor_token_id: String,
    /// The method type's bounds, as stored (`bound_audiences`, `bound_claims`, … for `jwt`;
    /// `bound_service_account_names`, … for `kubernetes`).
    pub definition: Map<String, Value>,
    /// The grants, from the principal's live bindings.
    pub grants: Vec<GrantBody>,
    /// Default login token lifetime.
    pub token_ttl: String,
    /// Longest login token lifetime.
    pub token_max_ttl: String,
    /// Creation.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// Login roles of a method.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// By name.
    pub items: Vec<RoleInfo>,
}

fn principal_email(method: &str, role: &str) -> String {
    format!("auth:{method}/{role}")
}

fn human(ms: i64) -> String {
    humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// The grants of a role, from its principal's bindings (a managed role shown as its
/// capability list), in the realms the caller can see: an invisible realm stays invisible.
async fn grants_of(
    st: &AppState,
    who: &Principal,
    m: &AuthMethod,
    role: &AuthRole,
) -> ApiResult<Vec<GrantBody>> {
    let managed = managed_role_name(&m.name, &role.name);
    let realms = realms_by_id(st).await?;
    let mut out = Vec::new();
    for b in st.store.auth_role_bindings(role).await? {
        let Some(realm) = realms.get(&b.realm_id) else {
            continue;
        };
        if !access_for(st, who, realm).await?.sees_realm() {
            continue;
        }
        let slug = &realm.slug;
        if b.role == managed {
            if let Some(r) = st.store.role_get(&b.realm_id, &managed).await? {
                out.push(GrantBody {
                    realm: slug.clone(),
                    role: None,
                    capabilities: Some(r.capabilities),
                    env: r.env,
                    key_glob: r.key_glob,
                });
            }
        } else {
            out.push(GrantBody {
                realm: slug.clone(),
                role: Some(b.role),
                capabilities: None,
                env: None,
                key_glob: None,
            });
        }
    }
    Ok(out)
}

async fn info(
    st: &AppState,
    who: &Principal,
    m: &AuthMethod,
    role: &AuthRole,
) -> ApiResult<RoleInfo> {
    let definition = match serde_json::from_str(&role.definition) {
        Ok(Value::Object(map)) => map,
        _ => return Err(ApiError::internal("stored login role definition")),
    };
    Ok(RoleInfo {
        method: m.name.clone(),
        name: role.name.clone(),
        principal: principal_email(&m.name, &role.name),
        principal_id: role.user_id.to_string(),
        anchor_token_id: role.anchor_id.to_string(),
        definition,
        grants: grants_of(st, who, m, role).await?,
        token_ttl: human(role.token_ttl),
        token_max_ttl: human(role.token_max_ttl),
        created_at: rfc3339(role.created_at),
        updated_at: rfc3339(role.updated_at),
    })
}

/// The login role named in the path, or 404.
async fn role_named(st: &AppState, m: &AuthMethod, name: &str) -> ApiResult<AuthRole> {
    st.store
        .auth_role_get(&m.id, name)
        .await?
        .ok_or_else(|| ApiError::not_found("login role not found"))
}

/// Lists a method's login roles.
#[endpoint(tags("auth"), status_codes(200, 401, 403, 404))]
pub async fn list(name: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<RoleList>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let m = method_named(&st, &name).await?;
    let mut items = Vec::new();
    for role in st.store.auth_roles(&m.id).await? {
        items.push(info(&st, &who, &m, &role).await?);
    }
    Ok(Json(RoleList { items }))
}

/// Reads a login role.
#[endpoint(tags("auth"), status_codes(200, 401, 403, 404))]
pub async fn read(
    name: PathParam<String>,
    role: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<RoleInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let m = method_named(&st, &name).await?;
    let r = role_named(&st, &m, &role).await?;
    Ok(Json(info(&st, &who, &m, &r).await?))
}

/// The caller's rights in a realm it must manage, or why not.
async fn managed_access(
    st: &AppState,
    who: &Principal,
    realm: &Realm,
) -> ApiResult<std::sync::Arc<arcan_rbac::Access>> {
    let access = access_for(st, who, realm).await?;
    if !access.sees_realm() {
        return Err(ApiError::bad_request(format!(
            "grants: no realm `{}`",
            realm.slug
        )));
    }
    if let Decision::Deny(why) = evaluate(&access, Ask::plain(Capability::PolicyManage)) {
        return Err(ApiError::forbidden(format!(
            "grants: granting in realm `{}` needs `policy:manage` there ({why})",
            realm.slug
        )));
    }
    Ok(access)
}

/// The removal rule for every grant a role holds now, in every realm its writes touch
/// (where its principal is bound, or its managed role exists): the caller must be able to
/// take each away (root always can).
pub async fn check_removal(
    st: &AppState,
    who: &Principal,
    m: &AuthMethod,
    role: &AuthRole,
) -> ApiResult<()> {
    let realms = realms_by_id(st).await?;
    let managed = managed_role_name(&m.name, &role.name);
    let bindings = st.store.auth_role_bindings(role).await?;
    for realm_id in st.store.auth_role_realms(m, role).await? {
        let Some(realm) = realms.get(&realm_id) else {
            continue;
        };
        let mut names: BTreeSet<String> = bindings
            .iter()
            .filter(|b| b.realm_id == realm_id)
            .map(|b| b.role.clone())
            .collect();
        names.insert(managed.clone());
        let visible = access_for(st, who, realm).await?.sees_realm();
        let refuse = |why: String| {
            let place = if visible {
                format!("realm `{}`", realm.slug)
            } else {
                "a realm you cannot see".to_owned()
            };
            ApiError::forbidden(format!(
                "login role `{}/{}` grants in {place}, which you cannot take away: {why}",
                m.name, role.name
            ))
        };
        for name in names {
            let Some((caps, scope)) = role_rights(st, &realm.id, &name).await? else {
                continue;
            };
            let access = managed_access(st, who, realm)
                .await
                .map_err(|e| refuse(e.message))?;
            check_delegation(&access, &caps, &scope).map_err(|e| refuse(e.message))?;
        }
    }
    Ok(())
}

/// What one grant binds in its realm.
enum Granted {
    /// An existing built-in or custom role.
    Role(String),
    /// The role the login role manages, with the grant's capability list.
    Managed(Role),
}

/// Every realm by id.
pub(crate) async fn realms_by_id(st: &AppState) -> ApiResult<BTreeMap<RealmId, Realm>> {
    Ok(st
        .store
        .realms_all()
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect())
}

/// Checks one grant against the caller's rights in its realm and builds what the store
/// applies there.
async fn grant(
    st: &AppState,
    who: &Principal,
    managed: &str,
    g: &GrantBody,
    now: i64,
) -> ApiResult<(RealmId, Granted)> {
    let realm = realm_by_slug(st, &g.realm)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("grants: no realm `{}`", g.realm)))?;
    let access = managed_access(st, who, &realm).await?;
    match (&g.role, &g.capabilities) {
        (Some(name), None) => {
            if g.env.is_some() || g.key_glob.is_some() {
                return Err(ApiError::bad_request(
                    "grants: env and key_glob go with capabilities, not with a role",
                ));
            }
            if name.starts_with("auth.") {
                return Err(ApiError::bad_request(format!(
                    "grants: `{name}` is managed by a login role and cannot be granted"
                )));
            }
            let (caps, scope) = role_rights(st, &realm.id, name).await?.ok_or_else(|| {
                ApiError::bad_request(format!("grants: no role `{name}` in realm `{}`", g.realm))
            })?;
            check_delegation(&access, &caps, &scope)?;
            Ok((realm.id.clone(), Granted::Role(name.clone())))
        }
        (None, Some(names)) => {
            if names.is_empty() {
                return Err(ApiError::bad_request(
                    "grants: a capability list needs at least one capability",
                ));
            }
            let caps = parse_capabilities(names)
                .map_err(|e| ApiError::bad_request(format!("grants: {e}")))?;
            if let Some(c) = caps.iter().find(|c| c.is_global()) {
                return Err(ApiError::bad_request(format!(
                    "grants: `{c}` is global and cannot be granted in a realm"
                )));
            }
            if let Some(env) = &g.env {
                arcan_engine::kv::validate_env(env)
                    .map_err(|e| ApiError::bad_request(format!("grants: {e}")))?;
            }
            let scope = Scope::new(g.env.clone(), g.key_glob.as_deref())
                .map_err(|e| ApiError::bad_request(format!("grants: {e}")))?;
            check_delegation(&access, &caps, &scope)?;
            let mut names: Vec<String> = caps.iter().map(|c| c.as_str().to_owned()).collect();
            names.sort();
            names.dedup();
            Ok((
                realm.id.clone(),
                Granted::Managed(Role {
                    name: managed.to_owned(),
                    capabilities: names,
                    env: g.env.clone(),
                    key_glob: g.key_glob.clone(),
                    created_at: now,
                }),
            ))
        }
        _ => Err(ApiError::bad_request(
            "grants: each grant names either a role or capabilities",
        )),
    }
}

fn duration_field(body: &Map<String, Value>, key: &str) -> ApiResult<Option<Duration>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => humantime::parse_duration(s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{key}: `{s}`: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{key}: a duration such as `15m` expected"
        ))),
    }
}

/// Creates or replaces a login role.
#[endpoint(tags("auth"), status_codes(200, 400, 401, 403, 404))]
pub async fn put(
    name: PathParam<String>,
    role: PathParam<String>,
    body: Body<Map<String, Value>>,
    depot: &mut Depot,
) -> ApiResult<Json<RoleInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let m = method_named(&st, &name).await?;
    let kind = MethodKind::of(&m)?;
    let role_name = role.into_inner();
    let mut body = body.0;
    // What was asked, for the event of a refusal too (names bounded; no secrets in a role).
    audit_detail(
        depot,
        json!({
            "method": m.name, "type": kind.as_str(),
            "role": arcan_machine_auth::error::shown(&role_name, 32),
            "grants": body.get("grants").cloned().unwrap_or(Value::Null),
        }),
    );
    if !machine::name_ok(&role_name) {
        return Err(ApiError::bad_request(
            "role: 1-32 characters of a-z 0-9 _ -",
        ));
    }
    let grants: Vec<GrantBody> = match body.get("grants") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("grants: {e}")))?,
    };
    if grants.len() > MAX_GRANTS {
        return Err(ApiError::bad_request(format!(
            "grants: at most {MAX_GRANTS}"
        )));
    }
    let ttl = duration_field(&body, "token_ttl")?.unwrap_or(DEFAULT_TTL);
    let max_ttl = duration_field(&body, "token_max_ttl")?.unwrap_or(ttl);
    let limit = st.config.auth.max_token_ttl;
    if ttl < Duration::from_secs(1) || ttl > max_ttl || max_ttl > limit {
        return Err(ApiError::bad_request(format!(
            "token_ttl: 1s <= token_ttl <= token_max_ttl <= {} (auth.max_token_ttl)",
            humantime::format_duration(limit)
        )));
    }
    let asked_revoke = match body.get("revoke_tokens") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("revoke_tokens: a boolean expected")),
    };
    for k in COMMON_KEYS {
        body.remove(k);
    }
    let bounds = RoleBounds::parse(kind, Value::Object(body))?;
    if let RoleBounds::Kubernetes(r) = &bounds {
        // Without a reviewer the caller's token is the TokenReview's bearer, which the API
        // server accepts only for its own audiences.
        if r.audience.is_some() && m.secrets.is_none() {
            return Err(ApiError::bad_request(format!(
                "audience: {}",
                arcan_machine_auth::kubernetes::config::AUDIENCE_NEEDS_REVIEWER
            )));
        }
    }
    let definition = bounds.to_json()?;

    let now = now_ms();
    let existing = st.store.auth_role_get(&m.id, &role_name).await?;
    if let Some(old) = &existing {
        check_removal(&st, &who, &m, old).await?;
    }
    let principal_id = existing
        .as_ref()
        .map(|r| r.user_id.clone())
        .unwrap_or_else(|| new_id().into());
    let managed = managed_role_name(&m.name, &role_name);
    let mut by_realm: BTreeMap<RealmId, RealmGrant> = BTreeMap::new();
    for g in &grants {
        let (realm_id, granted) = grant(&st, &who, &managed, g, now).await?;
        let entry = by_realm
            .entry(realm_id.clone())
            .or_insert_with(|| RealmGrant {
                realm_id: realm_id.clone(),
                bindings: Vec::new(),
                managed: None,
            });
        let bound = match granted {
            Granted::Role(r) => r,
            Granted::Managed(role) => {
                if entry.managed.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "grants: at most one capability list per realm (`{}`)",
                        g.realm
                    )));
                }
                entry.managed = Some(role);
                managed.clone()
            }
        };
        if entry.bindings.iter().any(|b| b.role == bound) {
            return Err(ApiError::bad_request(format!(
                "grants: `{}` is granted twice in realm `{}`",
                bound, g.realm
            )));
        }
        entry.bindings.push(Binding {
            id: new_id().into(),
            realm_id,
            subject: Subject::User(principal_id.clone()),
            role: bound,
            created_at: now,
            created_by: who.user_id.to_string(),
        });
    }
    // Tokens minted under other bounds, or before a realm was added, must not carry the
    // new realm or outlive the bounds that admitted them: such a write re-arms the role.
    let revoke_tokens = match &existing {
        Some(old) => {
            let old_bounds: Value =
                serde_json::from_str(&old.definition).map_err(ApiError::internal)?;
            let new_bounds: Value =
                serde_json::from_str(&definition).map_err(ApiError::internal)?;
            let old_realms: BTreeSet<RealmId> = st
                .store
                .auth_role_realms(&m, old)
                .await?
                .into_iter()
                .collect();
            asked_revoke
                || old_bounds != new_bounds
                || by_realm.keys().any(|r| !old_realms.contains(r))
        }
        None => false,
    };
    let grants_applied: Vec<RealmGrant> = by_realm.into_values().collect();

    let email = principal_email(&m.name, &role_name);
    let new_user = User {
        id: principal_id.clone(),
        kind: UserKind::LoginRole,
        email: email.clone(),
        password_hash: "!".into(),
        superuser: false,
        global_capabilities: Vec::new(),
        created_at: now,
    };
    let new_anchor = |now: i64| TokenRecord {
        id: new_id().into(),
        // Nobody holds the secret: the anchor can parent tokens but never be presented.
        hash: hash_token(&generate_token()),
        user_id: principal_id.clone(),
        parent_id: None,
        name: format!("login-role:{}/{}", m.name, role_name),
        capabilities: Some(Vec::new()),
        realm_id: None,
        env: None,
        key_glob: None,
        expires_at: now + 100 * 365 * 24 * 3600 * 1000,
        created_at: now,
        revoked_at: None,
        identity: None,
    };
    let old_anchor = match &existing {
        Some(r) if revoke_tokens => st.store.token_by_id(&r.anchor_id).await?,
        _ => None,
    };
    let anchor = (existing.is_none() || revoke_tokens).then(|| new_anchor(now));
    let record = AuthRole {
        id: existing.as_ref().map_or_else(new_id, |r| r.id.clone()),
        method_id: m.id.clone(),
        name: role_name.clone(),
        user_id: principal_id.clone(),
        anchor_id: match (&anchor, &existing) {
            (Some(a), _) => a.id.clone(),
            (None, Some(r)) => r.anchor_id.clone(),
            (None, None) => unreachable!("a new role always gets an anchor"),
        },
        definition,
        token_ttl: ttl.as_millis() as i64,
        token_max_ttl: max_ttl.as_millis() as i64,
        created_at: existing.as_ref().map_or(now, |r| r.created_at),
        created_by: existing
            .as_ref()
            .map_or_else(|| who.user_id.to_string(), |r| r.created_by.clone()),
        updated_at: now,
    };
    audit_detail(
        depot,
        json!({
            "method": m.name, "type": kind.as_str(), "role": role_name, "grants": grants,
            "token_ttl": human(record.token_ttl), "token_max_ttl": human(record.token_max_ttl),
            "revoke_tokens": revoke_tokens,
        }),
    );
    let revoked = st
        .store
        .auth_role_put(
            &m,
            &record,
            RolePut {
                principal: existing.is_none().then_some(&new_user),
                anchor: anchor.as_ref(),
                revoke: old_anchor.as_ref(),
                grants: &grants_applied,
            },
            now,
        )
        .await?;
    for hash in &revoked {
        st.tokens.invalidate(hash);
    }
    st.policy_changed();
    Ok(Json(info(&st, &who, &m, &record).await?))
}

/// Deletes a login role: its grants, its principal and every token its logins minted.
#[endpoint(
    tags("auth"),
    status_codes(204, 401, 403, 404),
    responses((status_code = 204, description = "The role and its logins are gone"))
)]
pub async fn delete(
    name: PathParam<String>,
    role: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let m = method_named(&st, &name).await?;
    let r = role_named(&st, &m, &role).await?;
    audit_detail(
        depot,
        json!({"method": m.name, "type": m.kind, "role": r.name}),
    );
    check_removal(&st, &who, &m, &r).await?;
    let revoked = st.store.auth_role_delete(&m, &r, now_ms()).await?;
    for hash in &revoked {
        st.tokens.invalidate(hash);
    }
    st.policy_changed();
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
