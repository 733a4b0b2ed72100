//! Guardian #1: a valid bearer token or 401.

use std::sync::Arc;

use salvo::prelude::*;

use super::super::error::{ApiError, ApiResult, render_error};
use super::super::state::{AppState, state};
use super::rate_limit::{bearer, client_ip, client_of};
use crate::auth::{AuthError, Principal, lookup};
use arcan_crypto::{TOKEN_PREFIX, hash_token};
use arcan_util::now_ms;

/// Authenticates the request's bearer token (cached lookup).
pub async fn authenticate(st: &AppState, req: &Request) -> ApiResult<Arc<Principal>> {
    let token = bearer(req).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(ApiError::unauthorized("invalid or expired token"));
    }
    let hash = hash_token(token);
    let now = now_ms();
    if let Some(p) = st.tokens.get(&hash) {
        if p.expires_at > now {
            return Ok(p);
        }
        st.tokens.invalidate(&hash);
        return Err(ApiError::unauthorized("invalid or expired token"));
    }
    // An uncached token costs a store lookup: a client already over its budget for
    // invalid tokens gets none, so random bearers cannot buy unlimited lookups.
    if let Some(secs) = st
        .limits
        .penalised(client_ip(req, &st.config.rate_limit.trusted_proxies))
    {
        st.metrics.rate_limited.inc();
        return Err(ApiError::rate_limited(secs));
    }
    match lookup(st.store.as_ref(), &hash, now).await {
        Ok(p) => {
            let p = Arc::new(p);
            st.tokens.insert(hash, p.clone());
            Ok(p)
        }
        Err(AuthError::InvalidToken) => Err(ApiError::unauthorized("invalid or expired token")),
        Err(AuthError::Store(e)) => Err(e.into()),
    }
}

/// The hoop: puts an `Arc<Principal>` in the depot or answers 401 (429 when the client IP
/// is over its unauthenticated budget).
#[handler]
pub async fn auth(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let st = state(depot).clone();
    match authenticate(&st, req).await {
        Ok(p) => {
            depot.insert_typed(p);
        }
        Err(mut err) => {
            if err.status == StatusCode::UNAUTHORIZED {
                let ip = client_of(req, depot);
                if let Err(secs) = st.limits.check_ip(ip) {
                    st.metrics.rate_limited.inc();
                    st.limits.penalise(ip, secs);
                    err = ApiError::rate_limited(secs);
                }
            }
            render_error(&err, depot, res);
            ctrl.skip_rest();
        }
    }
}

/// The principal of an authenticated request.
pub fn principal(depot: &Depot) -> ApiResult<Arc<Principal>> {
    depot
        .get_typed::<Arc<Principal>>()
        .cloned()
        .map_err(|_| ApiError::unauthorized("missing bearer token"))
}
