//! The guardian layer, in the order requests pass it: request id, logging and audit
//! (observers that wrap everything after them, so they also see refusals), then per route:
//! the audit action, rate limit, auth (guardian #1), policy (guardian #2, which also
//! resolves the realm: guardian #3's 404).

pub mod audit;
pub mod auth;
pub mod logging;
pub mod policy;
pub mod rate_limit;
pub mod request_id;
