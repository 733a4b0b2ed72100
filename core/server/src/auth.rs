//! Identity: who is calling, resolved from a bearer token.
//!
//! Tokens are looked up by SHA-256; the raw token is never stored or logged. Results are
//! cached for [`CACHE_TTL`](crate::state::CACHE_TTL); revocation on this node
//! evicts at once.

use arcan_rbac::{Access, Capability, Ceiling, Decision, Request, Scope, evaluate};
use arcan_store::prelude::*;
use arcan_store::{RealmId, StoreError, TokenId, TokenRecord, User, UserId};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id.
    pub user_id: UserId,
    /// User email.
    pub email: String,
    /// Token id (safe to log).
    pub token_id: TokenId,
    /// Token hash (cache key).
    pub token_hash: String,
    /// Superuser (the bootstrap root).
    pub superuser: bool,
    /// Global capabilities of the user, intersected with the token ceiling.
    pub global_capabilities: Vec<Capability>,
    /// Token ceiling.
    pub ceiling: Ceiling,
    /// Realm the token is restricted to.
    pub realm_id: Option<RealmId>,
    /// Token expiry (unix ms).
    pub expires_at: i64,
    /// Minted from another token through the API (not a login or bootstrap token).
    pub derived: bool,
    /// What a machine login proved (`{method, type, role, subject, issuer, claims}`),
    /// for its token and every token minted from it.
    pub identity: Option<serde_json::Value>,
}

impl Principal {
    /// The principal's rights outside any realm (its global capabilities under the token
    /// ceiling), for [`evaluate`].
    pub fn global_access(&self) -> Access {
        Access {
            superuser: self.superuser,
            ceiling: self.ceiling.clone(),
            global: self.global_capabilities.clone(),
            grants: Vec::new(),
        }
    }

    /// The decision for a global capability.
    pub fn decide_global(&self, cap: Capability) -> Decision {
        evaluate(&self.global_access(), Request::plain(cap))
    }

    /// Whether the principal holds a global capability (see [`decide_global`](Self::decide_global)).
    pub fn has_global(&self, cap: Capability) -> bool {
        self.decide_global(cap).allowed()
    }

    /// True when the token is worth all of its user's rights: no capability list and no
    /// realm, environment or key narrowing (a login session, or an unrestricted child).
    pub fn is_full(&self) -> bool {
        self.ceiling.is_full()
    }
}

/// Why authentication failed (all map to 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown, malformed, revoked or expired token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses a list of capability names.
pub fn parse_capabilities(names: &[String]) -> Result<Vec<Capability>, String> {
    names.iter().map(|n| n.parse()).collect()
}

/// Builds a principal from a token record and its user.
pub fn principal(token: &TokenRecord, user: &User) -> Result<Principal, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    let ceiling_caps = token
        .capabilities
        .as_deref()
        .map(parse_capabilities)
        .transpose()
        .map_err(corrupt)?;
    let scope = Scope::new(token.env.clone(), token.key_glob.as_deref()).map_err(corrupt)?;
    Ok(Principal {
        user_id: user.id.clone(),
        email: user.email.clone(),
        token_id: token.id.clone(),
        token_hash: token.hash.clone(),
        superuser: user.superuser,
        global_capabilities: parse_capabilities(&user.global_capabilities).map_err(corrupt)?,
        ceiling: Ceiling {
            capabilities: ceiling_caps,
            scope,
            realm_confined: token.realm_id.is_some(),
        },
        realm_id: token.realm_id.clone(),
        expires_at: token.expires_at,
        derived: token.parent_id.is_some(),
        identity: token
            .identity
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt(format!("token identity: {e}")))?,
    })
}

/// Resolves a token hash to a live principal.
pub async fn lookup(store: &dyn Store, hash: &str, now: i64) -> Result<Principal, AuthError> {
    let token = store
        .token_by_hash(hash)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(AuthError::InvalidToken);
    }
    if token.parent_id.is_some() && store.token_lineage_broken(&token.id).await? {
        return Err(AuthError::InvalidToken);
    }
    let user = store
        .user_by_id(&token.user_id)
        .await?
        .ok_or(AuthError::InvalidToken)?;
    Ok(principal(&token, &user)?)
}
