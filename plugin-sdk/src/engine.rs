//! The [`Engine`] trait and the plain types its operations take and return.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A secrets engine. Implement it and export it with [`export_engine!`](crate::export_engine).
///
/// The host makes one fresh instance (with [`Default`]) for every call: keep no state
/// between calls. What must last is the host's: the mount configuration and the role
/// (returned by [`configure`](Engine::configure) and
/// [`validate_role`](Engine::validate_role), stored by the host and passed back in), the
/// lease's `internal` state of a [`Credential`], and [`data`](crate::data).
///
/// Only [`describe`](Engine::describe) and [`issue`](Engine::issue) are required; the
/// other operations have defaults that accept everything, grant what is asked, or, for
/// root rotation, say it is unsupported.
pub trait Engine: Default {
    /// Name, version, schemas and capabilities of the engine.
    fn describe(&self) -> Descriptor;

    /// Validate and normalise a mount configuration; the host stores what is returned.
    fn configure(&self, ctx: &Context, config: Value) -> Result<Value> {
        let _ = ctx;
        Ok(config)
    }

    /// Validate and normalise a role definition for the mount `config`; the host stores
    /// what is returned.
    fn validate_role(&self, ctx: &Context, config: &Value, role: Value) -> Result<Value> {
        let _ = (ctx, config);
        Ok(role)
    }

    /// Issue a credential for `role`, valid for `ttl` (the host has already bounded it).
    fn issue(
        &self,
        ctx: &Context,
        config: &Value,
        role: &Value,
        ttl: Duration,
    ) -> Result<Credential>;

    /// Extend the lease whose credential carried `internal` to `ttl` from now; returns
    /// the ttl granted. The default grants what is asked.
    fn renew(
        &self,
        ctx: &Context,
        config: &Value,
        role: &Value,
        internal: &Value,
        ttl: Duration,
    ) -> Result<Duration> {
        let _ = (ctx, config, role, internal);
        Ok(ttl)
    }

    /// Revoke the credential that carried `internal`. Revoking one that is already gone
    /// must succeed. The default does nothing.
    fn revoke(&self, ctx: &Context, config: &Value, role: &Value, internal: &Value) -> Result<()> {
        let _ = (ctx, config, role, internal);
        Ok(())
    }

    /// Rotate the engine's root credential through the host
    /// ([`sql::rotate_root`](crate::sql::rotate_root),
    /// [`http::rotate_root`](crate::http::rotate_root)). The default is unsupported.
    fn rotate_root(&self, ctx: &Context, config: &Value) -> Result<()> {
        let _ = (ctx, config);
        Err(Error::unsupported("rotate-root"))
    }
}

/// What an engine can do beyond describing itself, declared in [`Descriptor`] (and, with
/// the spelling of [`as_str`](Capability::as_str), in the manifest's `capabilities`).
///
/// New contract versions may add capabilities: a `match` on it needs a `_` arm.
///
/// ```
/// use arcan_plugin_sdk::Capability;
///
/// assert_eq!(Capability::RootRotation.as_str(), "engine:root_rotation");
/// assert_eq!(Capability::DynamicCredentials.to_string(), "engine:dynamic_credentials");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// [`Engine::issue`] returns leased credentials (`engine:dynamic_credentials`).
    DynamicCredentials,
    /// [`Engine::rotate_root`] replaces the engine's root credential (`engine:root_rotation`).
    RootRotation,
    /// Roles manage existing accounts rather than new ones (`engine:static_roles`).
    StaticRoles,
}

impl Capability {
    /// How a manifest spells it, e.g. `engine:dynamic_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::DynamicCredentials => "engine:dynamic_credentials",
            Capability::RootRotation => "engine:root_rotation",
            Capability::StaticRoles => "engine:static_roles",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an engine is and needs, returned by [`Engine::describe`]. Build it with
/// [`new`](Descriptor::new) and the builder methods (fields may be added).
///
/// ```
/// use arcan_plugin_sdk::{Capability, Descriptor};
/// use arcan_plugin_sdk::serde_json::json;
///
/// let d = Descriptor::new("postgres", "1.2.0")
///     .role_schema(json!({"type": "object", "required": ["creation_sql"]}))
///     .capability(Capability::DynamicCredentials);
/// assert_eq!(d.capabilities, [Capability::DynamicCredentials]);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Descriptor {
    /// Engine name, e.g. `postgres`.
    pub name: String,
    /// Engine version (semver).
    pub version: String,
    /// JSON Schema of the mount configuration.
    pub config_schema: Value,
    /// JSON Schema of a role definition.
    pub role_schema: Value,
    /// Engine capabilities, e.g. [`Capability::DynamicCredentials`].
    pub capabilities: Vec<Capability>,
}

impl Descriptor {
    /// A descriptor with `{"type": "object"}` schemas and no capabilities.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            config_schema: serde_json::json!({ "type": "object" }),
            role_schema: serde_json::json!({ "type": "object" }),
            capabilities: Vec::new(),
        }
    }

    /// Set the JSON Schema of the mount configuration.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// Set the JSON Schema of a role definition.
    pub fn role_schema(mut self, schema: Value) -> Self {
        self.role_schema = schema;
        self
    }

    /// Add a capability (once: adding one already there changes nothing).
    pub fn capability(mut self, capability: Capability) -> Self {
        if !self.capabilities.contains(&capability) {
            self.capabilities.push(capability);
        }
        self
    }
}

/// Who and what a call is for. The host fills it in; the engine cannot choose it.
///
/// It serializes to JSON with these field names. Fields may be added: outside the SDK
/// (an engine's unit tests), start from [`Default`] and set the fields needed.
///
/// ```
/// use arcan_plugin_sdk::Context;
///
/// let mut ctx = Context::default();
/// ctx.role = Some("reader".into());
/// ctx.mount = "db".into();
/// assert_eq!(ctx.lease_id, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// The request id of the API call (also on the audit events of the call).
    pub request_id: String,
    /// The user behind the request, when a user or one of their tokens made it.
    pub user_id: Option<String>,
    /// The token that made the request, when one did.
    pub token_id: Option<String>,
    /// The realm's id; plugin data and connections are already scoped to it.
    pub realm_id: String,
    /// The realm's slug.
    pub realm: String,
    /// The mount name of this engine in the realm.
    pub mount: String,
    /// The lease this call concerns (renew, revoke), when there is one.
    pub lease_id: Option<String>,
    /// The role this call concerns, when there is one.
    pub role: Option<String>,
}

/// An issued credential, returned by [`Engine::issue`]. Build it with
/// [`new`](Credential::new) and the builder methods (fields may be added).
///
/// ```
/// use std::time::Duration;
/// use arcan_plugin_sdk::Credential;
/// use arcan_plugin_sdk::serde_json::json;
///
/// let c = Credential::new(json!({"username": "u", "password": "p"}), Duration::from_secs(3600))
///     .internal(json!({"username": "u"}));
/// assert!(c.renewable && c.revocable);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Credential {
    /// What the caller receives, once; the host never stores it.
    pub data: Value,
    /// Lifetime granted (the host bounds it by the role's max ttl). Sent in whole
    /// seconds, rounded up.
    pub ttl: Duration,
    /// Whether [`Engine::renew`] may extend it.
    pub renewable: bool,
    /// Whether [`Engine::revoke`] has anything to do (false: it expires by itself).
    pub revocable: bool,
    /// Engine-private state the host keeps sealed with the lease and passes to renew and
    /// revoke (e.g. the generated user name). Never returned to callers.
    pub internal: Value,
}

impl Credential {
    /// A renewable, revocable credential with no internal state.
    pub fn new(data: Value, ttl: Duration) -> Self {
        Self {
            data,
            ttl,
            renewable: true,
            revocable: true,
            internal: Value::Null,
        }
    }

    /// Set whether it is renewable.
    pub fn renewable(mut self, renewable: bool) -> Self {
        self.renewable = renewable;
        self
    }

    /// Set whether it is revocable.
    pub fn revocable(mut self, revocable: bool) -> Self {
        self.revocable = revocable;
        self
    }

    /// Set the engine-private state kept with the lease.
    pub fn internal(mut self, internal: Value) -> Self {
        self.internal = internal;
        self
    }
}
