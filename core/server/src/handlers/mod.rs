//! Route handlers (business logic behind the guardians).

pub mod audit;
pub mod auth;
pub mod auth_methods;
pub mod engines;
pub mod leases;
pub mod login_roles;
pub mod machine_login;
pub mod policy;
pub mod realms;
pub mod secrets;
pub mod sys;
pub mod tokens;
