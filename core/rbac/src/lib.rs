//! Role-based access control: capabilities, built-in and custom roles, and the evaluation
//! that the policy guardian and `policy explain` share.
//!
//! One decision ([`evaluate`]) for every check: a request is allowed when the token's
//! ceiling admits the action *and* the principal holds it (a binding of the token's user,
//! or of the token itself, in the realm; a global capability of the user; or superuser).
//! Superusers skip the binding step but never the token ceiling, and a token confined to
//! a realm, an environment or a key glob never holds a global capability. [`may_grant`]
//! is the delegation rule: nobody hands out a right they do not hold.

mod capability;
mod eval;

pub use capability::{Capability, GLOBAL_CAPABILITIES, ScopeKind, builtin_role, is_builtin_role};
pub use eval::{Access, Ceiling, Decision, Grant, Request, Scope, evaluate, may_grant};
