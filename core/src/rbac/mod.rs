//! Role-based access control: capabilities, built-in and custom roles, and the evaluation
//! that the policy guardian and `policy explain` share.
//!
//! A request is allowed when the token's ceiling admits the action *and* some binding of
//! the token's user, or of the token itself, in the realm grants it. Superusers skip the
//! binding step but never the token ceiling.

mod capability;
mod eval;

pub use capability::{Capability, GLOBAL_CAPABILITIES, ScopeKind, builtin_role, is_builtin_role};
pub use eval::{Access, Ceiling, Decision, Grant, Request, Scope, evaluate};
