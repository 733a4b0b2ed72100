//! RBAC administration: `/api/v1/realms/{slug}/roles`, `/bindings`, `/policy/explain`.

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{access_for, resolve_realm};
use super::super::state::{AppState, state};
use crate::auth::{lookup, parse_capabilities};
use arcan_crypto::hash_token;
use arcan_rbac::{
    Access, Capability, Decision, Request as Ask, Scope, builtin_role, evaluate, is_builtin_role,
    may_grant,
};
use arcan_store::{Binding, Role, StoreError, Subject, UserKind};
use arcan_util::{new_id, now_ms, rfc3339};

/// A role (built-in or custom).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// Name: 1–64 of `a-z 0-9 _ -`.
    pub name: String,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Only this environment.
    pub env: Option<String>,
    /// Only keys matching this glob.
    pub key_glob: Option<String>,
}

/// Roles of a realm.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// Built-in roles first, then custom ones.
    pub items: Vec<RoleInfo>,
}

/// A role with its kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleInfo {
    /// The role.
    #[serde(flatten)]
    pub role: RoleBody,
    /// Built-in roles cannot be changed.
    pub builtin: bool,
}

/// Body of a binding.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    /// `user:<email or id>` or `token:<id>`.
    pub subject: String,
    /// Role name.
    pub role: String,
}

/// A binding.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingInfo {
    /// Id.
    pub id: String,
    /// `user:<id>` or `token:<id>`.
    pub subject: String,
    /// Role.
    pub role: String,
    /// Creation.
    pub created_at: String,
    /// Creator (user id).
    pub created_by: String,
}

impl From<&Binding> for BindingInfo {
    fn from(b: &Binding) -> Self {
        Self {
            id: b.id.to_string(),
            subject: format!("{}:{}", b.subject.kind(), b.subject.id()),
            role: b.role.clone(),
            created_at: rfc3339(b.created_at),
            created_by: b.created_by.clone(),
        }
    }
}

/// Bindings of a realm.
#[derive(Debug, Serialize, ToSchema)]
pub struct BindingList {
    /// Oldest first.
    pub items: Vec<BindingInfo>,
}

/// Body of an explain request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    /// The token to explain (the raw `arc_…` secret).
    pub token: String,
    /// Capability, e.g. `secrets:read`.
    pub action: String,
    /// Key, for secret actions.
    pub key: Option<String>,
    /// Environment (default `default`).
    pub env: Option<String>,
}

/// The decision and its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// Allowed or not.
    pub allowed: bool,
    /// Which binding allows it, or why it is denied.
    pub reason: String,
}

/// The escalation rule: every capability handed out (by a role or a binding) must be held
/// by the caller at least as widely, unless the caller holds `policy:escalate`.
pub(crate) fn check_delegation(
    access: &Access,
    caps: &[Capability],
    scope: &Scope,
) -> ApiResult<()> {
    for cap in caps {
        may_grant(access, *cap, scope).map_err(ApiError::forbidden)?;
    }
    Ok(())
}

/// The capabilities and narrowing of a role in a realm (built-in or custom), if it exists.
pub(crate) async fn role_rights(
    st: &AppState,
    realm_id: &arcan_store::RealmId,
    name: &str,
) -> ApiResult<Option<(Vec<Capability>, Scope)>> {
    if let Some(caps) = builtin_role(name) {
        return Ok(Some((caps.to_vec(), Scope::default())));
    }
    let Some(role) = st.store.role_get(realm_id, name).await? else {
        return Ok(None);
    };
    Ok(Some((
        parse_capabilities(&role.capabilities).map_err(ApiError::internal)?,
        Scope::new(role.env, role.key_glob.as_deref()).map_err(ApiError::internal)?,
    )))
}

fn role_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// Lists roles.
#[endpoint(tags("policy"))]
pub async fn roles(slug: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<RoleList>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let mut items: Vec<RoleInfo> = ["admin", "member", "viewer"]
        .iter()
        .filter_map(|n| {
            builtin_role(n).map(|caps| RoleInfo {
                role: RoleBody {
                    name: (*n).to_owned(),
                    capabilities: caps.iter().map(|c| c.as_str().to_owned()).collect(),
                    env: None,
                    key_glob: None,
                },
                builtin: true,
            })
        })
        .collect();
    for r in st.store.roles(&ctx.realm.id).await? {
        items.push(RoleInfo {
            role: RoleBody {
                name: r.name,
                capabilities: r.capabilities,
                env: r.env,
                key_glob: r.key_glob,
            },
            builtin: false,
        });
    }
    Ok(Json(RoleList { items }))
}

/// Creates or replaces a custom role.
#[endpoint(
    tags("policy"),
    status_codes(201, 400, 403, 404),
    responses((status_code = 201, body = RoleBody, description = "The role as stored"))
)]
pub async fn put_role(
    slug: PathParam<String>,
    body: Body<RoleBody>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<RoleBody>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let body = body.0;
    if !role_name_ok(&body.name) {
        return Err(ApiError::bad_request(
            "role name must be 1-64 characters of a-z 0-9 _ -",
        ));
    }
    if is_builtin_role(&body.name) {
        return Err(ApiError::bad_request(format!(
            "`{}` is a built-in role",
            body.name
        )));
    }
    if body.capabilities.is_empty() {
        return Err(ApiError::bad_request(
            "a role needs at least one capability",
        ));
    }
    let caps = parse_capabilities(&body.capabilities).map_err(ApiError::bad_request)?;
    if let Some(c) = caps.iter().find(|c| c.is_global()) {
        return Err(ApiError::bad_request(format!(
            "`{c}` is global and cannot be granted by a realm role"
        )));
    }
    if let Some(env) = &body.env {
        arcan_engine::kv::validate_env(env).map_err(ApiError::bad_request)?;
    }
    let scope =
        Scope::new(body.env.clone(), body.key_glob.as_deref()).map_err(ApiError::bad_request)?;
    check_delegation(&ctx.access, &caps, &scope)?;
    // Replacing a role takes away what it granted: that too needs its rights.
    if let Some((old_caps, old_scope)) = role_rights(&st, &ctx.realm.id, &body.name).await? {
        check_delegation(&ctx.access, &old_caps, &old_scope).map_err(|e| {
            ApiError::forbidden(format!(
                "cannot replace role `{}`: {}",
                body.name, e.message
            ))
        })?;
    }
    let role = Role {
        name: body.name,
        capabilities: caps.iter().map(|c| c.as_str().to_owned()).collect(),
        env: body.env,
        key_glob: body.key_glob,
        created_at: now_ms(),
    };
    st.store.role_put(&ctx.realm.id, &role).await?;
    st.policy_changed();
    res.status_code(StatusCode::CREATED);
    Ok(Json(RoleBody {
        name: role.name,
        capabilities: role.capabilities,
        env: role.env,
        key_glob: role.key_glob,
    }))
}

/// Deletes a custom role and its bindings.
#[endpoint(
    tags("policy"),
    status_codes(204, 400, 404),
    responses((status_code = 204, description = "The role is deleted"))
)]
pub async fn delete_role(
    slug: PathParam<String>,
    name: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    if is_builtin_role(&name) {
        return Err(ApiError::bad_request("built-in roles cannot be deleted"));
    }
    // Deleting a role unbinds everyone bound to it: only someone holding its rights may.
    if let Some((caps, scope)) = role_rights(&st, &ctx.realm.id, &name).await? {
        check_delegation(&ctx.access, &caps, &scope).map_err(|e| {
            ApiError::forbidden(format!("cannot delete role `{}`: {}", &*name, e.message))
        })?;
    }
    if !st.store.role_delete(&ctx.realm.id, &name).await? {
        return Err(ApiError::not_found("role not found"));
    }
    st.policy_changed();
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}

/// Lists bindings.
#[endpoint(tags("policy"))]
pub async fn bindings(slug: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<BindingList>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let items = st
        .store
        .bindings(&ctx.realm.id)
        .await?
        .iter()
        .map(BindingInfo::from)
        .collect();
    Ok(Json(BindingList { items }))
}

/// Binds a user or token to a role.
#[endpoint(
    tags("policy"),
    status_codes(201, 400, 404, 409),
    responses((status_code = 201, body = BindingInfo, description = "The binding created"))
)]
pub async fn bind(
    slug: PathParam<String>,
    body: Body<CreateBinding>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<BindingInfo>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let who = principal(depot)?;
    let body = body.0;
    if body.role.starts_with("auth.") {
        return Err(ApiError::bad_request(format!(
            "`{}` is managed by a login role and cannot be bound",
            body.role
        )));
    }
    let (caps, scope) = role_rights(&st, &ctx.realm.id, &body.role)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("no role `{}` in this realm", body.role)))?;
    check_delegation(&ctx.access, &caps, &scope).map_err(|e| {
        ApiError::forbidden(format!("cannot bind role `{}`: {}", body.role, e.message))
    })?;
    let subject = match body.subject.split_once(':') {
        Some(("user", who)) => {
            let user = if who.contains('@') {
                st.store.user_by_email(&who.to_lowercase()).await?
            } else {
                st.store.user_by_id(&who.into()).await?
            };
            let user = user.ok_or_else(|| ApiError::bad_request(format!("no user `{who}`")))?;
            if user.kind == UserKind::LoginRole {
                return Err(ApiError::bad_request(format!(
                    "`{}` is a login role's principal: grant realms through the login role",
                    user.email
                )));
            }
            Subject::User(user.id)
        }
        Some(("token", id)) => {
            let token = st
                .store
                .token_by_id(&id.into())
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("no token `{id}`")))?;
            // A machine login's token has its realms from its login role only.
            if st
                .store
                .user_by_id(&token.user_id)
                .await?
                .is_some_and(|u| u.kind == UserKind::LoginRole)
            {
                return Err(ApiError::bad_request(format!(
                    "token `{id}` is a machine login's: grant realms through its login role"
                )));
            }
            Subject::Token(token.id)
        }
        _ => {
            return Err(ApiError::bad_request(
                "subject must be `user:<email or id>` or `token:<id>`",
            ));
        }
    };
    let binding = Binding {
        id: new_id().into(),
        realm_id: ctx.realm.id.clone(),
        subject,
        role: body.role,
        created_at: now_ms(),
        created_by: who.user_id.to_string(),
    };
    st.store
        .binding_create(&binding)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::conflict("this binding exists"),
            other => other.into(),
        })?;
    st.policy_changed();
    res.status_code(StatusCode::CREATED);
    Ok(Json(BindingInfo::from(&binding)))
}

/// Removes a binding.
#[endpoint(
    tags("policy"),
    status_codes(204, 404),
    responses((status_code = 204, description = "The binding is removed"))
)]
pub async fn unbind(
    slug: PathParam<String>,
    id: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    // Removing a binding takes its rights away from someone: the same rule as granting.
    let binding = st
        .store
        .bindings(&ctx.realm.id)
        .await?
        .into_iter()
        .find(|b| b.id == id.as_str())
        .ok_or_else(|| ApiError::not_found("binding not found"))?;
    if let Some((caps, scope)) = role_rights(&st, &ctx.realm.id, &binding.role).await? {
        check_delegation(&ctx.access, &caps, &scope).map_err(|e| {
            ApiError::forbidden(format!(
                "cannot remove a binding to role `{}`: {}",
                binding.role, e.message
            ))
        })?;
    }
    if !st.store.binding_delete(&ctx.realm.id, &binding.id).await? {
        return Err(ApiError::not_found("binding not found"));
    }
    st.policy_changed();
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}

/// Explains whether a token may perform an action in this realm, and why.
#[endpoint(tags("policy"))]
pub async fn explain(
    slug: PathParam<String>,
    body: Body<ExplainBody>,
    depot: &mut Depot,
) -> ApiResult<Json<Explanation>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let body = body.0;
    let cap: Capability = body.action.parse().map_err(ApiError::bad_request)?;
    let env = body.env.unwrap_or_else(|| "default".into());
    let subject = match lookup(st.store.as_ref(), &hash_token(&body.token), now_ms()).await {
        Ok(p) => p,
        Err(crate::auth::AuthError::InvalidToken) => {
            return Ok(Json(Explanation {
                allowed: false,
                reason: "the token is invalid, revoked or expired".into(),
            }));
        }
        Err(crate::auth::AuthError::Store(e)) => return Err(e.into()),
    };
    let access = access_for(&st, &subject, &ctx.realm).await?;
    if !access.sees_realm() {
        return Ok(Json(Explanation {
            allowed: false,
            reason: "the token has no binding in this realm".into(),
        }));
    }
    let decision = evaluate(
        &access,
        Ask {
            capability: cap,
            env: Some(&env),
            key: body.key.as_deref(),
        },
    );
    Ok(Json(match decision {
        Decision::Allow(by) => Explanation {
            allowed: true,
            reason: format!("allowed by {by}"),
        },
        Decision::Deny(why) => Explanation {
            allowed: false,
            reason: why,
        },
    }))
}
