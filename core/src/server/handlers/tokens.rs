//! API tokens: `/api/v1/tokens`.
//!
//! A created token is always a narrowing of its issuer: its capabilities are a subset of
//! what the issuer holds, it inherits the issuer's realm, environment and key-glob
//! restrictions, and a token minted from an API token expires no later than that token
//! (login sessions may mint tokens that outlive the session, up to `auth.max_token_ttl`).

use salvo::oapi::ToSchema;
use salvo::oapi::extract::PathParam;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{access_for, candidate_realms, realm_by_slug};
use super::super::state::{AppState, state};
use crate::auth::{Principal, parse_capabilities};
use crate::crypto::{generate_token, hash_token};
use crate::rbac::{Capability, Request as Ask, Scope, evaluate};
use crate::store::TokenRecord;
use crate::util::{new_id, now_ms, rfc3339};

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
}

impl From<&TokenRecord> for TokenInfo {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            user_id: t.user_id.clone(),
            capabilities: t.capabilities.clone(),
            realm_id: t.realm_id.clone(),
            env: t.env.clone(),
            key_glob: t.key_glob.clone(),
            expires_at: rfc3339(t.expires_at),
            created_at: rfc3339(t.created_at),
            revoked_at: t.revoked_at.map(rfc3339),
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

/// Does the issuer hold `cap` in the realm (or, without a realm, in any realm)?
async fn issuer_holds(
    st: &AppState,
    who: &Principal,
    cap: Capability,
    realm_slug: Option<&str>,
    env: Option<&str>,
) -> ApiResult<bool> {
    if cap.is_global() {
        return Ok(who.has_global(cap));
    }
    if who.superuser && realm_slug.is_none() && who.realm_id.is_none() {
        return Ok(true);
    }
    let realms = match realm_slug {
        Some(slug) => realm_by_slug(st, slug)
            .await?
            .map(|r| vec![(*r).clone()])
            .unwrap_or_default(),
        None => candidate_realms(st, who).await?,
    };
    for realm in realms {
        let access = access_for(st, who, &realm).await?;
        if evaluate(
            &access,
            Ask {
                capability: cap,
                env,
                key: None,
            },
        )
        .allowed()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates a token narrower than (or equal to) the caller's.
#[endpoint(tags("tokens"), status_codes(201, 400, 403, 404))]
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
        (Some(id), None) => candidate_realms(&st, &who)
            .await?
            .into_iter()
            .find(|r| r.id == *id)
            .map(std::sync::Arc::new),
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
        crate::engine::kv::validate_env(e).map_err(ApiError::bad_request)?;
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
    let slug = realm.as_ref().map(|r| r.slug.as_str());
    if !who.superuser && !issuer_holds(&st, &who, Capability::TokensCreate, slug, None).await? {
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
            if !in_ceiling || !issuer_holds(&st, &who, *cap, slug, env.as_deref()).await? {
                return Err(ApiError::forbidden(format!(
                    "cannot grant `{cap}`: capabilities must be a subset of the issuer's rights"
                )));
            }
        }
    }

    let secret = generate_token();
    let record = TokenRecord {
        id: new_id(),
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
    };
    st.store.token_create(&record).await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(CreatedToken {
        token: secret.to_string(),
        info: TokenInfo::from(&record),
    }))
}

/// Lists the caller's tokens.
#[endpoint(tags("tokens"))]
pub async fn list(depot: &mut Depot) -> ApiResult<Json<TokenList>> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let items = st
        .store
        .tokens_of_user(&who.user_id)
        .await?
        .iter()
        .map(TokenInfo::from)
        .collect();
    Ok(Json(TokenList { items }))
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
        user_id: who.user_id.clone(),
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

/// Revokes one of the caller's tokens (any token, for superusers).
#[endpoint(tags("tokens"), status_codes(204, 404))]
pub async fn revoke(id: PathParam<String>, depot: &mut Depot, res: &mut Response) -> ApiResult<()> {
    let st = state(depot).clone();
    let who = principal(depot)?;
    let token = st
        .store
        .token_by_id(&id)
        .await?
        .filter(|t| who.superuser || t.user_id == who.user_id)
        .ok_or_else(|| ApiError::not_found("token not found"))?;
    st.store.token_revoke(&token.id, now_ms()).await?;
    st.tokens.invalidate(&token.hash);
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
