//! The guardian layer, in the order requests pass it: request id, logging (an observer
//! that wraps everything after it, so it also sees refusals), rate limit, auth (guardian #1),
//! policy (guardian #2, which also resolves the realm: guardian #3's 404).

pub mod auth;
pub mod logging;
pub mod policy;
pub mod rate_limit;
pub mod request_id;
