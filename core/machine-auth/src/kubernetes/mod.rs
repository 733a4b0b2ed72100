//! Kubernetes service-account login: configuration, the unverified early checks, the
//! TokenReview client and the pipeline ([`KubernetesVerifier::verify`]).

pub mod claims;
pub mod config;
pub mod review;
pub mod verify;

pub use config::{KubernetesMethodConfig, KubernetesRoleConfig, Secret};
pub use verify::{KubernetesIdentity, KubernetesVerifier, UnverifiedServiceAccount};
