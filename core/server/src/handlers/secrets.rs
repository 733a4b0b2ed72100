//! The KV API: `/api/v1/realms/{slug}/secrets[/{**key}]` and `/metadata/{**key}`.

use base64::Engine;
use salvo::oapi::ToSchema;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{Body, page_limit};
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{env_of, resolve_realm};
use super::super::state::{AppState, state};
use arcan_engine::kv::{self, SealError};
use arcan_engine::sealing::{Purpose, open_in_realm, seal_in_realm};
use arcan_rbac::{Capability, Request as Ask, evaluate};
use arcan_store::{SecretMeta, SecretWrite, VersionMeta, WriteOutcome};
use arcan_util::{now_ms, rfc3339};

impl From<SealError> for ApiError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::NoKey => ApiError::not_found("realm not found"),
            other => ApiError::internal(other),
        }
    }
}

/// Body of a write.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value (UTF-8 text).
    pub value: String,
    /// Check-and-set: the version expected to be current (0: must not exist).
    pub cas: Option<i64>,
}

/// Secret metadata (no value).
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretInfo {
    /// Key.
    pub key: String,
    /// Environment.
    pub env: String,
    /// Current version.
    pub version: i64,
    /// First write (RFC 3339).
    pub created_at: String,
    /// First writer (user id).
    pub created_by: String,
    /// Last write.
    pub updated_at: String,
    /// Last writer.
    pub updated_by: String,
}

impl From<SecretMeta> for SecretInfo {
    fn from(m: SecretMeta) -> Self {
        Self {
            key: m.key,
            env: m.env,
            version: m.version,
            created_at: rfc3339(m.created_at),
            created_by: m.created_by,
            updated_at: rfc3339(m.updated_at),
            updated_by: m.updated_by,
        }
    }
}

/// A secret with its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretValue {
    /// Metadata.
    #[serde(flatten)]
    pub info: SecretInfo,
    /// The version returned (may differ from the current one with `?version=`).
    pub value_version: i64,
    /// The value.
    pub value: String,
}

/// A page of secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretPage {
    /// Items, key order.
    pub items: Vec<SecretInfo>,
    /// Pass as `?cursor=` for the next page.
    pub next_cursor: Option<String>,
    /// More items follow.
    pub has_more: bool,
}

/// Metadata with version history.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretHistory {
    /// Metadata.
    #[serde(flatten)]
    pub info: SecretInfo,
    /// Every version, newest first.
    pub versions: Vec<VersionInfo>,
}

/// One version's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    /// Version number.
    pub version: i64,
    /// When written.
    pub created_at: String,
    /// By whom.
    pub created_by: String,
}

impl From<VersionMeta> for VersionInfo {
    fn from(v: VersionMeta) -> Self {
        Self {
            version: v.version,
            created_at: rfc3339(v.created_at),
            created_by: v.created_by,
        }
    }
}

fn checked_env(req: &Request) -> ApiResult<String> {
    let env = env_of(req);
    kv::validate_env(&env).map_err(ApiError::bad_request)?;
    Ok(env)
}

fn checked_key(key: &str) -> ApiResult<()> {
    kv::validate_key(key).map_err(ApiError::bad_request)
}

fn if_match(req: &Request) -> ApiResult<Option<i64>> {
    let Some(v) = req.headers().get("if-match") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match must be a version number"))?;
    s.trim()
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must be a version number, e.g. \"3\""))
}

/// Writes a new version of a secret.
#[endpoint(tags("secrets"), parameters(("env" = Option<String>, Query, description = "Environment (default `default`)")))]
pub async fn put(
    slug: PathParam<String>,
    key: PathParam<String>,
    body: Body<SetSecret>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<SecretInfo>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let who = principal(depot)?;
    let env = checked_env(req)?;
    checked_key(&key)?;
    let body = body.0;
    let max = st.config.kv.max_value_bytes;
    if body.value.len() > max {
        return Err(ApiError::too_large(format!("value exceeds {max} bytes")));
    }
    let cas = match (body.cas, if_match(req)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request("`cas` and If-Match disagree"));
        }
        (a, b) => a.or(b),
    };
    if cas.is_some_and(|c| c < 0) {
        return Err(ApiError::bad_request("cas must be 0 or a positive version"));
    }
    let value_hmac = arcan_audit::audit_hmac(&st.keyring, body.value.as_bytes())?;
    audit_detail(depot, serde_json::json!({"value_hmac": value_hmac}));
    let sealed = kv::seal_value(
        st.store.as_ref(),
        &st.keyring,
        &ctx.realm.id,
        &env,
        &key,
        body.value.as_bytes(),
    )
    .await?;
    let write = SecretWrite {
        env,
        key: key.into_inner(),
        sealed,
        by: who.user_id.to_string(),
        at: now_ms(),
    };
    match st.store.secret_put(&ctx.realm.id, &write, cas).await? {
        WriteOutcome::Written(meta) => {
            audit_detail(
                depot,
                serde_json::json!({"version": meta.version, "value_hmac": value_hmac}),
            );
            if let Ok(v) = format!("\"{}\"", meta.version).parse() {
                res.headers_mut().insert("etag", v);
            }
            Ok(Json(meta.into()))
        }
        WriteOutcome::CasMismatch { current } => Err(ApiError::precondition(format!(
            "check-and-set failed: current version is {current}, expected {}",
            cas.unwrap_or_default()
        ))),
    }
}

/// Reads a secret (current version, or `?version=N`).
#[endpoint(tags("secrets"), parameters(("env" = Option<String>, Query, description = "Environment")))]
pub async fn get(
    slug: PathParam<String>,
    key: PathParam<String>,
    version: QueryParam<i64, false>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<SecretValue>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let env = checked_env(req)?;
    checked_key(&key)?;
    let version = version.into_inner();
    let found = st
        .store
        .secret_get(&ctx.realm.id, &env, &key, version)
        .await?
        .ok_or_else(|| ApiError::not_found("secret not found"))?;
    let plain = kv::open_value(
        st.store.as_ref(),
        &st.keyring,
        &ctx.realm.id,
        &env,
        &key,
        &found.sealed,
    )
    .await?;
    // Values are written as JSON strings, so they are UTF-8.
    let value = std::str::from_utf8(&plain)
        .map_err(|_| ApiError::internal("stored secret is not UTF-8"))?
        .to_owned();
    if let Ok(v) = format!("\"{}\"", found.meta.version).parse() {
        res.headers_mut().insert("etag", v);
    }
    res.headers_mut().insert(
        "cache-control",
        salvo::http::HeaderValue::from_static("no-store"),
    );
    Ok(Json(SecretValue {
        info: found.meta.into(),
        value_version: found.version,
        value,
    }))
}

/// Deletes a secret (history kept; a later write continues the version numbers).
#[endpoint(
    tags("secrets"),
    status_codes(204, 404),
    responses((status_code = 204, description = "The secret is deleted")),
    parameters(("env" = Option<String>, Query, description = "Environment"))
)]
pub async fn delete(
    slug: PathParam<String>,
    key: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let who = principal(depot)?;
    let env = checked_env(req)?;
    checked_key(&key)?;
    if !st
        .store
        .secret_delete(&ctx.realm.id, &env, &key, &who.user_id, now_ms())
        .await?
    {
        return Err(ApiError::not_found("secret not found"));
    }
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}

/// Rows read per further store query of a listing that skipped invisible keys.
const LIST_SCAN_BATCH: i64 = 200;
/// Store queries one listing page may make while skipping keys the caller may not see.
const LIST_SCAN_BATCHES: usize = 8;
/// What a listing cursor is sealed for.
const CURSOR_PURPOSE: Purpose = Purpose::SecretsCursor;

async fn seal_cursor(
    st: &AppState,
    realm_id: &arcan_store::RealmId,
    parts: &[&str],
    key: &str,
) -> ApiResult<String> {
    let sealed = seal_in_realm(
        st.store.as_ref(),
        &st.keyring,
        realm_id,
        CURSOR_PURPOSE,
        parts,
        key.as_bytes(),
    )
    .await?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

async fn open_cursor(
    st: &AppState,
    realm_id: &arcan_store::RealmId,
    parts: &[&str],
    cursor: &str,
) -> ApiResult<String> {
    let invalid = || ApiError::bad_request("invalid cursor");
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| invalid())?;
    let plain = open_in_realm(
        st.store.as_ref(),
        &st.keyring,
        realm_id,
        CURSOR_PURPOSE,
        parts,
        &sealed,
    )
    .await
    .map_err(|e| match e {
        SealError::Crypto(_) => invalid(),
        other => other.into(),
    })?;
    String::from_utf8(plain.to_vec()).map_err(|_| invalid())
}

/// Lists secrets in an environment (metadata only), cursor-paginated.
#[endpoint(tags("secrets"), parameters(("env" = Option<String>, Query, description = "Environment")))]
pub async fn list(
    slug: PathParam<String>,
    prefix: QueryParam<String, false>,
    cursor: QueryParam<String, false>,
    limit: QueryParam<i64, false>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<SecretPage>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let env = checked_env(req)?;
    let limit = page_limit(limit.into_inner())?;
    let prefix = prefix.into_inner().unwrap_or_default();
    let (realm_id, parts) = (&ctx.realm.id, [env.as_str(), prefix.as_str()]);
    let mut pos = match cursor.into_inner() {
        Some(c) => Some(open_cursor(&st, realm_id, &parts, &c).await?),
        None => None,
    };
    // A role narrowed to a key glob lists only the keys it covers; the scan skips the
    // others (at most `LIST_SCAN_BATCHES` batches per page, so a page is bounded work).
    let visible = |key: &str| {
        evaluate(
            &ctx.access,
            Ask {
                capability: Capability::SecretsList,
                env: Some(&env),
                key: Some(key),
            },
        )
        .allowed()
    };
    // The first read is just the page (plus one, to tell whether more follow), as for an
    // unfiltered listing; only when keys were skipped do further reads take larger batches.
    let mut batch = limit + 1;
    let mut items = Vec::new();
    let mut has_more = false;
    'scan: for _ in 0..LIST_SCAN_BATCHES {
        let rows = st
            .store
            .secret_list(realm_id, &env, &prefix, pos.as_deref(), batch)
            .await?;
        has_more = rows.len() as i64 == batch;
        for m in rows {
            if !visible(&m.key) {
                pos = Some(m.key);
                continue;
            }
            if items.len() as i64 == limit {
                has_more = true;
                break 'scan;
            }
            pos = Some(m.key.clone());
            items.push(SecretInfo::from(m));
        }
        if !has_more {
            break;
        }
        batch = batch.max(LIST_SCAN_BATCH);
    }
    // The cursor is the last key consumed (possibly one the caller may not see), sealed
    // under the realm's data key: opaque, and bound to this realm, env and prefix.
    let next_cursor = match (has_more, pos) {
        (true, Some(key)) => Some(seal_cursor(&st, realm_id, &parts, &key).await?),
        _ => None,
    };
    Ok(Json(SecretPage {
        items,
        next_cursor,
        has_more,
    }))
}

/// Metadata and version history of a secret.
#[endpoint(tags("secrets"), parameters(("env" = Option<String>, Query, description = "Environment")))]
pub async fn history(
    slug: PathParam<String>,
    key: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<SecretHistory>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let env = checked_env(req)?;
    checked_key(&key)?;
    let (meta, versions) = st
        .store
        .secret_history(&ctx.realm.id, &env, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("secret not found"))?;
    Ok(Json(SecretHistory {
        info: meta.into(),
        versions: versions.into_iter().map(VersionInfo::from).collect(),
    }))
}
