//! API tokens: `/api/v1/tokens`.
//!
//! A created token is always a narrowing of its issuer: its capabilities are a subset of
//! what the issuer holds, it inherits the issuer's realm, environment and key-glob
//! restrictions, and a token minted from an API token expires no later than that token
//! (login sessions may mint tokens that outlive the session, up to `auth.max_token_ttl`).

use salvo::oapi::ToSchema;
use std::collections::HashSet;

use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{access_for, candidate_realms, realm_by_slug};
use super::super::state::{AppState, state};
use crate::auth::{Principal, parse_capabilities};
use arcan_crypto::{generate_token, hash_token};
use arcan_rbac::{Capability, Decision, Scope};
use arcan_store::{Realm, StoreError, TokenId, TokenRecord};
use arcan_util::{new_id, now_ms, rfc3339};

/// Body of token creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Label.
    pub name: Option<String>,
    /// Lifetime, e.g. `90d`, `12h` (default 30d; at most `auth.max_token_ttl`).
    pub ttl: Option<String>,
    /// Capability ceiling (default: the issuer's).
    pub capabilities: Option<Vec<String>>,
    /// Restrict to one realm (slug).
    pub realm: Option<String>,
    /// Restrict to one environment.
    pub env: Option<String>,
    /// Restrict to keys matching a glob.
    pub key_glob: Option<String>,
}

/// Token metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    /// Id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Owner user id.
    pub user_id: String,
    /// The token it was minted from (null for login sessions and the bootstrap token).
    pub parent_id: Option<String>,
    /// Capability ceiling (null: all of the user's rights).
    pub capabilities: Option<Vec<String>>,
    /// Realm restriction (id).
    pub realm_id: Option<String>,
    /// Environment restriction.
    pub env: Option<String>,
    /// Key restriction.
    pub key_glob: Option<String>,
    /// Expiry.
    pub expires_at: String,
    /// Creation.
    pub created_at: String,
    /// Revocation, if revoked.
    pub revoked_at: Option<String>,
    /// For tokens of a machine login and those minted from them: who the login proved to be
    /// (`{method, type, role, subject, issuer, claims}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            user_id: t.user_id.to_string(),
            parent_id: t.parent_id.clone().map(String::from),
            capabilities: t.capabilities.clone(),
            realm_id: t.realm_id.clone().map(String::from),
            env: t.env.clone(),
            key_glob: t.key_glob.clone(),
            expires_at: rfc3339(t.expires_at),
            created_at: rfc3339(t.created_at),
            revoked_at: t.revoked_at.map(rfc3339),
            identity: t
                .identity
                .as_deref()
                .and_then(|i| serde_json::from_str(i).ok()),
        }
    }
}

/// A created token (the secret is shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret token.
    pub token: String,
    /// Its metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// A token list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The caller's tokens, newest first.
    pub items: Vec<TokenInfo>,
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfInfo {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Superuser.
    pub superuser: bool,
    /// Global capabilities.
    pub global_capabilities: Vec<String>,
    /// Token metadata.
    pub token: TokenInfo,
}

/// Does the issuer hold `cap` in the realm (or, without a realm, in any realm it is bound
/// in)? See [`Access::holds`](arcan_rbac::Access::holds).
async fn issuer_holds(
    st: &AppState,
    who: &Principal,
    cap: Capability,
    realm: Option<&Realm>,
) -> ApiResult<bool> {
    if cap.is_global() || (realm.is_none() && who.realm_id.is_none() && who.superuser) {
        // Global capabilities, and a superuser's realm capabilities (which hold in every
        // realm), are decided without a realm.
        return Ok(who.global_access().holds(cap));
    }
    let realms = match realm {
        Some(r) => vec![r.clone()],
        None => candidate_realms(st, who).await?,
    };
    for realm in realms {
        if access_for(st, who, &realm).await?.holds(cap) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates a token narrower than (or equal to) the caller's.
#[endpoint(
    tags("tokens"),
    status_codes(201, 400, 403, 404),
    responses((status_code = 201, body = CreatedToken, description = "The token created"))
)]
pub async fn create(
    body: Body<CreateToken>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<CreatedToken>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let body = body.0;
    let now = now_ms();

    let ttl = match &body.ttl {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("invalid ttl `{t}`: {e}")))?,
        None => std::time::Duration::from_secs(30 * 24 * 3600),
    };
    if ttl > st.config.auth.max_token_ttl || ttl.as_secs() == 0 {
        return Err(ApiError::bad_request(format!(
            "ttl must be between 1s and {}",
            humantime::format_duration(st.config.auth.max_token_ttl)
        )));
    }
    let expires_at = i64::try_from(ttl.as_millis())
        .ok()
        .and_then(|ms| now.checked_add(ms))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "ttl `{}` is too large",
                humantime::format_duration(ttl)
            ))
        })?;
    // A login session may mint longer-lived tokens (its rights bound them, not its
    // lifetime); a token minted through the API may not outlive itself.
    if who.derived && expires_at > who.expires_at {
        return Err(ApiError::bad_request("ttl outlives the issuing token"));
    }

    // Inherit the issuer's restrictions; a request may only narrow them.
    let realm = match (&who.realm_id, &body.realm) {
        (_, Some(slug)) => {
            let r = realm_by_slug(&st, slug)
                .await?
                .ok_or_else(|| ApiError::not_found("realm not found"))?;
            if who.realm_id.as_ref().is_some_and(|id| *id != r.id)
                || !access_for(&st, &who, &r).await?.sees_realm()
            {
                return Err(ApiError::not_found("realm not found"));
            }
            Some(r)
        }
        // A confined token mints confined tokens; if its realm is gone, so is it.
        (Some(id), None) => Some(
            candidate_realms(&st, &who)
                .await?
                .into_iter()
                .find(|r| r.id == *id)
                .map(std::sync::Arc::new)
                .ok_or_else(|| {
                    st.tokens.invalidate(&who.token_hash);
                    ApiError::unauthorized("invalid or expired token")
                })?,
        ),
        (None, None) => None,
    };
    let env = match (&who.ceiling.scope.env, body.env) {
        (Some(mine), Some(asked)) if *mine != asked => {
            return Err(ApiError::forbidden(format!(
                "the issuing token is limited to environment `{mine}`"
            )));
        }
        (mine, asked) => asked.or_else(|| mine.clone()),
    };
    if let Some(e) = &env {
        arcan_engine::kv::validate_env(e).map_err(ApiError::bad_request)?;
    }
    let mine_glob = who
        .ceiling
        .scope
        .key_glob
        .as_ref()
        .map(|g| g.as_str().to_owned());
    let key_glob = match (mine_glob, body.key_glob) {
        (Some(mine), Some(asked)) if mine != asked => {
            return Err(ApiError::forbidden(format!(
                "the issuing token is limited to keys `{mine}`"
            )));
        }
        (mine, asked) => asked.or(mine),
    };
    Scope::new(None, key_glob.as_deref()).map_err(ApiError::bad_request)?;

    let caps = match &body.capabilities {
        Some(names) => Some(parse_capabilities(names).map_err(ApiError::bad_request)?),
        None => who.ceiling.capabilities.clone(),
    };
    let in_realm = realm.as_deref();
    if !issuer_holds(&st, &who, Capability::TokensCreate, in_realm).await? {
        return Err(ApiError::forbidden(
            "creating tokens requires `tokens:create`",
        ));
    }
    if let Some(caps) = &caps {
        for cap in caps {
            let in_ceiling = who
                .ceiling
                .capabilities
                .as_ref()
                .is_none_or(|c| c.contains(cap));
            if !in_ceiling || !issuer_holds(&st, &who, *cap, in_realm).await? {
                return Err(ApiError::forbidden(format!(
                    "cannot grant `{cap}`: capabilities must be a subset of the issuer's rights"
                )));
            }
        }
    }

    let secret = generate_token();
    let record = TokenRecord {
        id: new_id().into(),
        hash: hash_token(&secret),
        user_id: who.user_id.clone(),
        parent_id: Some(who.token_id.clone()),
        name: body.name.unwrap_or_else(|| "api".into()),
        capabilities: caps.map(|c| c.iter().map(|c| c.as_str().to_owned()).collect()),
        realm_id: realm.map(|r| r.id.clone()),
        env,
        key_glob,
        expires_at,
        created_at: now,
        revoked_at: None,
        identity: who.identity.as_ref().map(|v| v.to_string()),
    };
    st.store.token_create(&record).await.map_err(|e| match e {
        // The issuing token was revoked while this request was in flight.
        StoreError::Conflict => ApiError::unauthorized("invalid or expired token"),
        other => other.into(),
    })?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(CreatedToken {
        token: secret.to_string(),
        info: TokenInfo::from(&record),
    }))
}

/// Most tokens one listing returns.
const LIST_LIMIT: i64 = 10_000;

/// The ids of `root` and of every token descending from it among `tokens`.
fn lineage(root: &TokenId, tokens: &[TokenRecord]) -> HashSet<TokenId> {
    let mut tree = HashSet::from([root.clone()]);
    loop {
        let before = tree.len();
        for t in tokens {
            if t.parent_id.as_ref().is_some_and(|p| tree.contains(p)) {
                tree.insert(t.id.clone());
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// Lists tokens: a full token (no capability list, no narrowing) sees all of its user's
/// tokens, a narrowed one only itself and its descendants; `?all=true` with the global
/// `tokens:manage` lists every user's.
#[endpoint(tags("tokens"), status_codes(200, 403))]
pub async fn list(all: QueryParam<bool, false>, depot: &mut Depot) -> ApiResult<Json<TokenList>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let records = if all.into_inner().unwrap_or(false) {
        if let Decision::Deny(why) = who.decide_global(Capability::TokensManage) {
            return Err(ApiError::forbidden(format!("permission denied: {why}")));
        }
        st.store.tokens_all(LIST_LIMIT).await?
    } else {
        let mine = st.store.tokens_of_user(&who.user_id).await?;
        if who.is_full() {
            mine
        } else {
            let tree = lineage(&who.token_id, &mine);
            mine.into_iter().filter(|t| tree.contains(&t.id)).collect()
        }
    };
    Ok(Json(TokenList {
        items: records.iter().map(TokenInfo::from).collect(),
    }))
}

/// Describes the calling token.
#[endpoint(tags("tokens"))]
pub async fn lookup_self(depot: &mut Depot) -> ApiResult<Json<SelfInfo>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let token = st
        .store
        .token_by_id(&who.token_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
    Ok(Json(SelfInfo {
        user_id: who.user_id.to_string(),
        email: who.email.clone(),
        superuser: who.superuser,
        global_capabilities: who
            .global_capabilities
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        token: TokenInfo::from(&token),
    }))
}

/// Revokes a token and all of its descendants. Allowed on the calling token and its
/// descendants, on any token of the caller's user from a full token, and on any token
/// with the global `tokens:manage`; anything else is "not found".
#[endpoint(
    tags("tokens"),
    status_codes(204, 404),
    responses((status_code = 204, description = "The token and its descendants are revoked"))
)]
pub async fn revoke(id: PathParam<String>, depot: &mut Depot, res: &mut Response) -> ApiResult<()> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let not_found = || ApiError::not_found("token not found");
    let token = st
        .store
        .token_by_id(&TokenId::from(id.into_inner()))
        .await?
        .ok_or_else(not_found)?;
    let allowed = if who.has_global(Capability::TokensManage) {
        true
    } else if token.user_id != who.user_id {
        false
    } else if who.is_full() || token.id == who.token_id {
        true
    } else {
        let mine = st.store.tokens_of_user(&who.user_id).await?;
        lineage(&who.token_id, &mine).contains(&token.id)
    };
    if !allowed {
        return Err(not_found());
    }
    audit_detail(depot, serde_json::json!({"token_id": token.id}));
    let revoked = st.store.token_revoke(&token.id, now_ms()).await?;
    for hash in &revoked {
        st.tokens.invalidate(hash);
    }
    audit_detail(
        depot,
        serde_json::json!({
            "token_id": token.id, "revoked": revoked.len(),
        }),
    );
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
