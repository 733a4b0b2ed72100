//! Machine-identity auth methods: `/api/v1/auth/methods` (global `auth:manage`).
//!
//! A method is a trust anchor for the whole deployment (which issuer's tokens, which
//! Kubernetes cluster), so defining one is a global right; what its logins may do in a
//! realm is granted per login role, under that realm's rules (see [`super::login_roles`]).

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::machine::{self, MethodKind};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::principal;
use super::super::state::{AppState, state};
use super::login_roles::check_removal;
use arcan_store::{AuthMethod, StoreError};
use arcan_util::{new_id, now_ms, rfc3339};

/// Body of `POST /auth/methods`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableMethod {
    /// 1–32 of `a-z 0-9 _ -`; the login path is `/auth/methods/{name}/login`.
    pub name: String,
    /// `jwt` or `kubernetes`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The type's configuration (see docs/auth.md); unknown keys are refused.
    pub config: Value,
}

/// Body of `PUT /auth/methods/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMethod {
    /// Free text (unchanged when absent).
    pub description: Option<String>,
    /// The complete new configuration. A Kubernetes method keeps its `token_reviewer_jwt`
    /// when it is omitted, unless `kubernetes_host` or `kubernetes_ca_cert` change.
    pub config: Value,
}

/// An auth method (its secrets never appear).
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `jwt` or `kubernetes`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    pub description: String,
    /// The normalised configuration, without secrets.
    pub config: Value,
    /// Whether a Kubernetes reviewer token is stored.
    pub token_reviewer_jwt_set: bool,
    /// Creation.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Creator (user id).
    pub created_by: String,
}

/// Auth methods.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodList {
    /// By name.
    pub items: Vec<MethodInfo>,
}

fn info(m: &AuthMethod) -> ApiResult<MethodInfo> {
    Ok(MethodInfo {
        id: m.id.clone(),
        name: m.name.clone(),
        kind: m.kind.clone(),
        description: m.description.clone(),
        config: machine::public_config(m)?,
        token_reviewer_jwt_set: m.secrets.is_some(),
        created_at: rfc3339(m.created_at),
        updated_at: rfc3339(m.updated_at),
        created_by: m.created_by.clone(),
    })
}

fn description_ok(d: &str) -> ApiResult<()> {
    if d.chars().count() > 256 {
        return Err(ApiError::bad_request("description: at most 256 characters"));
    }
    Ok(())
}

/// The method named in the path, or 404.
pub async fn method_named(st: &AppState, name: &str) -> ApiResult<AuthMethod> {
    st.store
        .auth_method_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found("auth method not found"))
}

/// Lists auth methods.
#[endpoint(tags("auth"), status_codes(200, 401, 403))]
pub async fn list(depot: &mut Depot) -> ApiResult<Json<MethodList>> {
    let st = state(depot).clone();
    let items = st
        .store
        .auth_methods()
        .await?
        .iter()
        .map(info)
        .collect::<ApiResult<_>>()?;
    Ok(Json(MethodList { items }))
}

/// Reads an auth method.
#[endpoint(tags("auth"), status_codes(200, 401, 403, 404))]
pub async fn read(name: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<MethodInfo>> {
    let st = state(depot).clone();
    Ok(Json(info(&method_named(&st, &name).await?)?))
}

/// Enables an auth method. A JWT method with a remote key source fetches its keys first:
/// a source that cannot be reached or has no usable key is refused (400).
#[endpoint(
    tags("auth"),
    status_codes(201, 400, 401, 403, 409),
    responses((status_code = 201, body = MethodInfo, description = "The method enabled"))
)]
pub async fn enable(
    body: Body<EnableMethod>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<MethodInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let body = body.0;
    audit_detail(
        depot,
        json!({
            "method": arcan_machine_auth::error::shown(&body.name, 32),
            "type": arcan_machine_auth::error::shown(&body.kind, 16),
        }),
    );
    if !machine::name_ok(&body.name) {
        return Err(ApiError::bad_request(
            "name: 1-32 characters of a-z 0-9 _ -",
        ));
    }
    let kind = MethodKind::parse(&body.kind)?;
    description_ok(&body.description)?;
    if st.store.auth_method_by_name(&body.name).await?.is_some() {
        return Err(ApiError::conflict("an auth method with this name exists"));
    }
    let id = new_id();
    let stored = machine::store_config(&st.keyring, &id, kind, body.config, None)?;
    let now = now_ms();
    let method = AuthMethod {
        id,
        name: body.name,
        kind: kind.as_str().to_owned(),
        description: body.description,
        config: stored.config,
        secrets: stored.secrets,
        created_at: now,
        created_by: who.user_id.to_string(),
        updated_at: now,
    };
    let verifier = st.machine.fresh(&method, &st.keyring)?;
    verifier.check_upstream().await?;
    st.store
        .auth_method_create(&method)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::conflict("an auth method with this name exists"),
            other => other.into(),
        })?;
    st.machine.remember(&method, verifier);
    res.status_code(StatusCode::CREATED);
    Ok(Json(info(&method)?))
}

/// Replaces an auth method's configuration (its type cannot change). The caller needs, in
/// every realm one of its roles grants in, the rights of those grants (as to remove them).
#[endpoint(tags("auth"), status_codes(200, 400, 401, 403, 404))]
pub async fn update(
    name: PathParam<String>,
    body: Body<UpdateMethod>,
    depot: &mut Depot,
) -> ApiResult<Json<MethodInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let body = body.0;
    let mut method = method_named(&st, &name).await?;
    let kind = MethodKind::of(&method)?;
    audit_detail(depot, json!({"method": method.name, "type": kind.as_str()}));
    // Whoever controls the method's issuer or cluster controls who its roles' logins are:
    // changing it takes the same rights in every granted realm as removing the grants.
    for role in st.store.auth_roles(&method.id).await? {
        check_removal(&st, &who, &method, &role).await?;
    }
    if let Some(d) = &body.description {
        description_ok(d)?;
    }
    // The stored reviewer token may only go where it went before: an omitted token is
    // kept only while the API server and its CA stay the same.
    let kept = match kind {
        MethodKind::Kubernetes if body.config.get("token_reviewer_jwt").is_none() => {
            let old = machine::public_config(&method)?;
            let same = ["kubernetes_host", "kubernetes_ca_cert"]
                .iter()
                .all(|k| same_value(old.get(*k), body.config.get(*k)));
            let kept = machine::reviewer_jwt(&st.keyring, &method)?;
            if kept.is_some() && !same {
                return Err(ApiError::bad_request(
                    "token_reviewer_jwt: kubernetes_host or kubernetes_ca_cert changes, so the \
                     stored reviewer token is not kept; give it again",
                ));
            }
            kept
        }
        _ => None,
    };
    let stored = machine::store_config(&st.keyring, &method.id, kind, body.config, kept)?;
    method.config = stored.config;
    method.secrets = stored.secrets;
    if let Some(d) = body.description {
        method.description = d;
    }
    method.updated_at = now_ms().max(method.updated_at + 1);
    let verifier = st.machine.fresh(&method, &st.keyring)?;
    verifier.check_upstream().await?;
    if !st.store.auth_method_update(&method).await? {
        return Err(ApiError::not_found("auth method not found"));
    }
    st.machine.remember(&method, verifier);
    Ok(Json(info(&method)?))
}

/// Equal JSON values, a missing key and `null` being the same.
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    norm(a) == norm(b)
}

/// Disables an auth method: deletes its login roles, their grants and every token their
/// logins minted. Needs, in every realm a role grants in, the rights of those grants.
#[endpoint(
    tags("auth"),
    status_codes(204, 401, 403, 404),
    responses((status_code = 204, description = "The method and its logins are gone"))
)]
pub async fn disable(
    name: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let method = method_named(&st, &name).await?;
    audit_detail(depot, json!({"method": method.name, "type": method.kind}));
    for role in st.store.auth_roles(&method.id).await? {
        check_removal(&st, &who, &method, &role).await?;
    }
    let revoked = st.store.auth_method_delete(&method, now_ms()).await?;
    for hash in &revoked {
        st.tokens.invalidate(hash);
    }
    st.policy_changed();
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
