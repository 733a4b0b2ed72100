//! Addresses no upstream fetch may reach: [`arcan_util::net`]'s classification (link-local
//! and cloud metadata addresses, unspecified addresses), the one the plugin host's
//! connection policy uses too. Unlike that policy, loopback and private ranges stay
//! reachable here: issuers in tests run on loopback and Kubernetes API servers usually sit
//! on private addresses. Only operators (holders of `auth:manage`) configure upstream URLs;
//! this guard keeps even them away from instance credentials.

pub use arcan_util::net::{Restricted, restricted};
