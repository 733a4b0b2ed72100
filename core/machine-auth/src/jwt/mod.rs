//! JWT/OIDC login: method and role configuration, key acceptance, the JWKS cache and the
//! verification pipeline ([`JwtVerifier::verify`]).

pub mod alg;
pub mod cache;
pub mod claims;
pub mod config;
pub mod keys;
pub mod role;
pub mod token;
pub mod verify;

pub use alg::JwtAlg;
pub use cache::{CacheSettings, JwksCache};
pub use config::{JwtMethodConfig, KeySource};
pub use role::{BoundClaimsType, JwtRoleConfig};
pub use verify::{JwtVerifier, VerifiedIdentity};
