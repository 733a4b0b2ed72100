//! Machine login: `POST /api/v1/auth/methods/{name}/login` (public, rate limited per client
//! address, failures throttled per login role and client network).
//!
//! The presented JWT goes through its method's pipeline (see `arcan_machine_auth`); a
//! verified identity gets an ordinary `arc_` token whose lineage parent is the role's
//! anchor, whose capability list is the union of what the role's grants give, and which is
//! confined to the realm when the role grants exactly one. Every refusal names its check and
//! is audited with it; the JWT itself is never stored or logged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::login_guard::Refusal as Throttle;
use super::super::machine::MethodKind;
use super::super::machine::{Proven, RoleBounds, public_config};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::rate_limit::client_of;
use super::super::state::{AppState, state};
use super::auth::refused;
use super::login_roles::realms_by_id;
use super::policy::role_rights;
use arcan_crypto::{generate_token, hash_token};
use arcan_machine_auth::LoginContext;
use arcan_machine_auth::error::shown;
use arcan_store::{AuthMethod, AuthRole, RealmId, StoreError, TokenRecord};
use arcan_util::{new_id, now_ms, rfc3339};

/// Body of a machine login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineLogin {
    /// The login role.
    pub role: String,
    /// The presented token (an OIDC ID token, a Kubernetes service-account token).
    pub jwt: String,
    /// Lifetime of the Arcan token (default the role's `token_ttl`, at most its
    /// `token_max_ttl`).
    pub ttl: Option<String>,
}

/// A machine login's token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineToken {
    /// The token.
    pub token: String,
    /// Token id.
    pub token_id: String,
    /// Expiry.
    pub expires_at: String,
    /// The method.
    pub method: String,
    /// The login role.
    pub role: String,
    /// Realms the token has rights in (slugs).
    pub realms: Vec<String>,
    /// Its capability list.
    pub capabilities: Vec<String>,
}

/// The identity a login proved, as the token and the audit carry it.
fn identity(m: &AuthMethod, kind: MethodKind, role: &AuthRole, proven: &Proven) -> Value {
    match proven {
        Proven::Jwt(id) => json!({
            "method": m.name, "type": kind.as_str(), "role": role.name,
            "subject": id.subject, "issuer": id.issuer, "claims": id.claims,
        }),
        Proven::Kubernetes(id) => json!({
            "method": m.name, "type": kind.as_str(), "role": role.name,
            "subject": id.username,
            "issuer": public_config(m)
                .ok()
                .and_then(|c| c.get("kubernetes_host").cloned())
                .unwrap_or(Value::Null),
            "claims": {
                "namespace": id.namespace, "service_account": id.service_account,
                "uid": id.uid, "pod": id.pod,
            },
        }),
    }
}

/// The realms and the union of capabilities the role's grants give now.
async fn granted(
    st: &AppState,
    role: &AuthRole,
) -> ApiResult<(BTreeMap<RealmId, String>, BTreeSet<String>)> {
    let all = realms_by_id(st).await?;
    let mut realms = BTreeMap::new();
    let mut caps = BTreeSet::new();
    for b in st.store.auth_role_bindings(role).await? {
        let Some(realm) = all.get(&b.realm_id) else {
            continue;
        };
        let Some((rights, _)) = role_rights(st, &b.realm_id, &b.role).await? else {
            continue;
        };
        if rights.is_empty() {
            continue;
        }
        realms.insert(b.realm_id.clone(), realm.slug.clone());
        caps.extend(rights.iter().map(|c| c.as_str().to_owned()));
    }
    Ok((realms, caps))
}

/// What a refused token claims to be (`iss`, `sub`), read without any check, for the
/// refusal's event: bounded, control characters replaced, and marked unverified. A token
/// that is not a readable JWT (or too large) gives nothing.
fn unverified(jwt: &str, max_bytes: usize) -> Value {
    use base64::Engine as _;
    let claims = (jwt.len() <= max_bytes)
        .then(|| jwt.split('.').nth(1))
        .flatten()
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let field = |k: &str| {
        claims
            .as_ref()
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .map(|v| Value::String(shown(v, 256)))
            .unwrap_or(Value::Null)
    };
    json!({"iss": field("iss"), "sub": field("sub")})
}

fn ttl_of(body: Option<&str>, role: &AuthRole, limit: Duration) -> ApiResult<Duration> {
    // A role stored before `auth.max_token_ttl` was lowered is held to the new limit.
    let max = Duration::from_millis(role.token_max_ttl.max(0) as u64).min(limit);
    let ttl = match body {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("ttl: `{}`: {e}", shown(t, 32))))?,
        None => Duration::from_millis(role.token_ttl.max(0) as u64).min(max),
    };
    if ttl < Duration::from_secs(1) || ttl > max {
        return Err(ApiError::bad_request(format!(
            "ttl: between 1s and the role's token_max_ttl {}",
            humantime::format_duration(max)
        )));
    }
    Ok(ttl)
}

/// Logs in with a machine identity.
#[endpoint(
    tags("auth"),
    status_codes(200, 400, 401, 403, 404, 429, 502, 503),
    responses((status_code = 200, body = MachineToken, description = "The login token"))
)]
pub async fn login(
    name: PathParam<String>,
    body: Body<MachineLogin>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<MachineToken>> {
    let st = state(depot).clone();
    let body = body.0;
    let method_name = name.into_inner();
    let mut detail = json!({"method": shown(&method_name, 32), "role": shown(&body.role, 32)});
    audit_detail(depot, detail.clone());
    let Some(m) = st.store.auth_method_by_name(&method_name).await? else {
        let message = "auth method not found";
        detail["check"] = "method".into();
        detail["reason"] = message.into();
        audit_detail(depot, detail);
        return Err(ApiError::not_found(message));
    };
    let kind = MethodKind::of(&m)?;
    detail["type"] = kind.as_str().into();
    audit_detail(depot, detail.clone());
    let Some(role) = st.store.auth_role_get(&m.id, &body.role).await? else {
        let message = format!(
            "role: no login role `{}` in auth method `{}`",
            shown(&body.role, 32),
            m.name
        );
        detail["check"] = "role".into();
        detail["reason"] = message.clone().into();
        audit_detail(depot, detail);
        return Err(ApiError::bad_request(message));
    };
    let ttl =
        ttl_of(body.ttl.as_deref(), &role, st.config.auth.max_token_ttl).inspect_err(|e| {
            detail["check"] = "ttl".into();
            detail["reason"] = e.message.clone().into();
            audit_detail(depot, detail.clone());
        })?;

    let account = format!("login-role:{}/{}", m.name, role.name);
    let ip = client_of(req, depot);
    let refuse_throttled = |depot: &mut Depot, detail: &mut Value, r: Throttle| {
        detail["throttle"] = "refused".into();
        audit_detail(depot, detail.clone());
        refused(r)
    };
    if let Some(left) = st.logins.locked(&account, ip, Instant::now()) {
        return Err(refuse_throttled(depot, &mut detail, Throttle::Locked(left)));
    }
    let attempt = match st.logins.begin(&account, ip, Instant::now()) {
        Ok(a) => a,
        Err(r) => return Err(refuse_throttled(depot, &mut detail, r)),
    };

    let bounds = serde_json::from_str::<Value>(&role.definition)
        .map_err(ApiError::internal)
        .and_then(|v| RoleBounds::parse(kind, v).map_err(|e| ApiError::internal(e.message)))?;
    let verifier = st.machine.verifier(&m, &st.keyring)?;
    let ctx = LoginContext::new(&role.name, Some(ip));
    let proven = match verifier.verify(&body.jwt, &bounds, &ctx).await {
        Ok(p) => p,
        Err(r) => {
            use arcan_machine_auth::Class;
            detail["check"] = r.check.as_str().into();
            detail["reason"] = r.message.clone().into();
            detail["unverified"] = unverified(&body.jwt, st.config.auth.machine.max_jwt_bytes);
            if matches!(r.class, Class::Upstream | Class::Busy) {
                // An upstream outage says nothing about the caller: not counted.
                st.logins.refund(&account, ip, &attempt);
            } else if let Some(lock) = attempt.arms_lock {
                detail["throttle"] = "locked".into();
                detail["lock_seconds"] = lock.as_secs_f64().into();
            }
            audit_detail(depot, detail);
            return Err(r.into());
        }
    };
    st.logins.succeeded(&account, ip);

    let identity = identity(&m, kind, &role, &proven);
    detail["subject"] = identity["subject"].clone();
    detail["issuer"] = identity["issuer"].clone();
    detail["claims"] = identity["claims"].clone();
    let (realms, caps) = granted(&st, &role).await?;
    if realms.is_empty() {
        let message = format!("login role `{}` grants no realm", role.name);
        detail["check"] = "grants".into();
        detail["reason"] = message.clone().into();
        audit_detail(depot, detail);
        return Err(ApiError::forbidden(message));
    }
    let now = now_ms();
    let expires_at = i64::try_from(ttl.as_millis())
        .ok()
        .and_then(|ms| now.checked_add(ms))
        .ok_or_else(|| ApiError::bad_request("ttl: too large"))?;
    let secret = generate_token();
    let record = TokenRecord {
        id: new_id().into(),
        hash: hash_token(&secret),
        user_id: role.user_id.clone(),
        parent_id: Some(role.anchor_id.clone()),
        name: format!("login:{}/{}", m.name, role.name),
        capabilities: Some(caps.iter().cloned().collect()),
        realm_id: (realms.len() == 1)
            .then(|| realms.keys().next().cloned())
            .flatten(),
        env: None,
        key_glob: None,
        expires_at,
        created_at: now,
        revoked_at: None,
        identity: Some(identity.to_string()),
    };
    detail["token_id"] = record.id.to_string().into();
    detail["expires_at"] = rfc3339(expires_at).into();
    detail["realms"] = realms.values().cloned().collect::<Vec<_>>().into();
    audit_detail(depot, detail.clone());
    if let Err(e) = st.store.token_create(&record).await {
        return Err(match e {
            StoreError::Conflict => {
                let message = format!(
                    "login role `{}` is revoked (its anchor token was revoked; re-arm it with \
                     `revoke_tokens: true`)",
                    role.name
                );
                detail["check"] = "anchor".into();
                if let Value::Object(map) = &mut detail {
                    map.remove("token_id");
                    map.remove("expires_at");
                }
                detail["reason"] = message.clone().into();
                audit_detail(depot, detail);
                ApiError::forbidden(message)
            }
            other => other.into(),
        });
    }
    Ok(Json(MachineToken {
        token: secret.to_string(),
        token_id: record.id.into(),
        expires_at: rfc3339(expires_at),
        method: m.name,
        role: role.name,
        realms: realms.into_values().collect(),
        capabilities: caps.into_iter().collect(),
    }))
}
