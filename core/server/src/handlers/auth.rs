//! Users: `/api/v1/auth/register` and `/api/v1/auth/login`.

use std::sync::LazyLock;
use std::time::Instant;

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::login_guard::Refusal;
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::authenticate;
use super::super::middleware::rate_limit::client_of;
use super::super::state::state;
use arcan_crypto::{generate_token, hash_password, hash_token, verify_password};
use arcan_rbac::{Capability, Decision};
use arcan_store::{StoreError, TokenRecord, User};
use arcan_util::{new_id, now_ms, rfc3339};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Email + password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Email address.
    pub email: String,
    /// Password (at least 12 characters).
    pub password: String,
}

/// A new user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Creation time.
    pub created_at: String,
}

/// A login token (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginToken {
    /// The token.
    pub token: String,
    /// Token id.
    pub token_id: String,
    /// Expiry.
    pub expires_at: String,
}

fn normalize_email(email: &str) -> ApiResult<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if valid {
        Ok(e)
    } else {
        Err(ApiError::bad_request("invalid email address"))
    }
}

/// Registers a user. Open when `auth.open_registration` is on (dev mode); otherwise a
/// superuser token is required.
#[endpoint(
    tags("auth"),
    status_codes(201, 400, 401, 403, 409),
    responses((status_code = 201, body = UserInfo, description = "The user registered"))
)]
pub async fn register(
    body: Body<Credentials>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<UserInfo>> {
    let st = state(depot).clone();
    if !st.config.open_registration() {
        let who = authenticate(&st, req).await?;
        depot.insert_typed(who.clone());
        super::super::middleware::audit::caller_known(req, depot);
        super::super::middleware::audit::caller_known(req, depot);
        if let Decision::Deny(why) = who.decide_global(Capability::UsersManage) {
            return Err(ApiError::forbidden(format!(
                "registration is closed; registering users needs `users:manage` ({why})"
            )));
        }
    }
    let body = body.0;
    let email = normalize_email(&body.email)?;
    if body.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::bad_request(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let password = body.password;
    let slot = st.logins.hash_slot().await.map_err(refused)?;
    let hash = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        hash_password(&password)
    })
    .await
    .map_err(ApiError::internal)??;
    let user = User {
        id: new_id().into(),
        kind: arcan_store::UserKind::Human,
        email,
        password_hash: hash,
        superuser: false,
        global_capabilities: st.config.auth.default_global_capabilities.clone(),
        created_at: now_ms(),
    };
    st.store.user_create(&user).await.map_err(|e| match e {
        StoreError::Conflict => ApiError::conflict("a user with this email exists"),
        other => other.into(),
    })?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(UserInfo {
        id: user.id.into(),
        email: user.email,
        created_at: rfc3339(user.created_at),
    }))
}

/// A valid hash to verify against when the user does not exist, so timing does not tell.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("arcan-dummy-password").unwrap_or_default());

/// A throttle refusal as the API answers it (password and machine logins alike).
pub(crate) fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Locked(d) => ApiError::login_throttled(d.as_secs_f64().ceil() as u64),
        Refusal::Busy => ApiError::busy("too many password checks in progress; retry shortly"),
    }
}

/// Logs in with email and password; returns a token with the configured login TTL.
/// Failed attempts are throttled per account (see [`LoginGuard`](super::super::login_guard::LoginGuard)); a locked account is
/// refused with 429 before any password is hashed.
#[endpoint(tags("auth"), status_codes(200, 400, 401, 429, 503))]
pub async fn login(
    body: Body<Credentials>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<LoginToken>> {
    let st = state(depot).clone();
    let body = body.0;
    let email = normalize_email(&body.email)
        .map_err(|_| ApiError::unauthorized("invalid email or password"))?;
    let ip = client_of(req, depot);
    let throttled = |depot: &mut Depot, r: Refusal| {
        audit_detail(depot, json!({"account": email, "throttle": "refused"}));
        refused(r)
    };
    // A locked account is refused before it may take a hashing slot; an attempt is only
    // counted once it holds one (a busy server does not count against the account).
    if let Some(left) = st.logins.locked(&email, ip, Instant::now()) {
        return Err(throttled(depot, Refusal::Locked(left)));
    }
    let slot = st.logins.hash_slot().await.map_err(refused)?;
    let attempt = match st.logins.begin(&email, ip, Instant::now()) {
        Ok(a) => a,
        Err(r) => return Err(throttled(depot, r)),
    };
    let user = st.store.user_by_email(&email).await?;
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        verify_password(&password, &phc)
    })
    .await
    .map_err(ApiError::internal)?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            if let Some(lock) = attempt.arms_lock {
                audit_detail(
                    depot,
                    json!({
                        "account": email, "throttle": "locked", "lock_seconds": lock.as_secs_f64(),
                    }),
                );
            }
            return Err(ApiError::unauthorized("invalid email or password"));
        }
    };
    st.logins.succeeded(&email, ip);
    let secret = generate_token();
    let now = now_ms();
    let record = TokenRecord {
        id: new_id().into(),
        hash: hash_token(&secret),
        user_id: user.id.clone(),
        parent_id: None,
        name: "login".into(),
        capabilities: None,
        realm_id: None,
        env: None,
        key_glob: None,
        expires_at: now + st.config.auth.login_ttl.as_millis() as i64,
        created_at: now,
        revoked_at: None,
        identity: None,
    };
    st.store.token_create(&record).await?;
    Ok(Json(LoginToken {
        token: secret.to_string(),
        token_id: record.id.into(),
        expires_at: rfc3339(record.expires_at),
    }))
}
