//! The [`Engine`] trait and the plain types its operations take and return.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A secrets engine. Implement it and export it with [`export_engine!`](crate::export_engine).
///
/// The engine names three types: its mount configuration ([`Config`](Engine::Config)), its
/// role definition ([`Role`](Engine::Role)) and the private state it keeps with a lease
/// ([`State`](Engine::State)). They cross the boundary as JSON: the SDK parses what the
/// host sends into them before the engine's code runs (a document that does not fit is
/// answered with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming it,
/// e.g. ``config: unknown field `x` ``; one that is not an object where the type's schema
/// says object, `role: must be a JSON object, not a string`), serializes what the engine
/// returns, and derives the JSON Schemas the engine publishes in its [`Descriptor`] from
/// `Config` and `Role`. An engine with nothing to configure uses [`NoConfig`]; one whose
/// roles say nothing, [`NoRole`]; one that keeps no state, `()`.
///
/// The host makes one fresh instance (with [`Default`]) for every call: keep no state
/// between calls. What must last is the host's: the configuration and the role (returned
/// by [`configure`](Engine::configure) and [`validate_role`](Engine::validate_role), stored
/// by the host and passed back in), the [`state`](Credential::state) of a credential, and
/// [`data`](crate::data).
///
/// Only [`describe`](Engine::describe) and [`issue`](Engine::issue) are required; the
/// other operations have defaults that accept what parses, grant what is asked, or, for
/// root rotation, say it is unsupported.
pub trait Engine: Default {
    /// The mount configuration. [`configure`](Engine::configure) validates and normalises
    /// it once, when the engine is mounted; the host stores the form returned (serialized)
    /// and every other operation receives it parsed again.
    ///
    /// Its JSON Schema (derive [`JsonSchema`](crate::JsonSchema)) is the descriptor's
    /// `config_schema`. Use `#[serde(deny_unknown_fields)]` to refuse misspelt keys and
    /// `#[serde(default = ...)]` for defaults (both show in the schema).
    type Config: Serialize + DeserializeOwned + JsonSchema;

    /// A role definition. [`validate_role`](Engine::validate_role) validates and normalises
    /// it when the role is written; the host stores the form returned. Its JSON Schema is
    /// the descriptor's `role_schema`.
    type Role: Serialize + DeserializeOwned + JsonSchema;

    /// The engine-private state of a lease, set with [`Credential::state`] at issue and
    /// handed back to [`renew`](Engine::renew) and [`revoke`](Engine::revoke) (e.g. the
    /// generated user name). The host keeps it sealed with the lease and never shows it to
    /// callers. Leases outlive engine versions: parse what older versions stored (add
    /// fields as `Option` or with `#[serde(default)]`).
    type State: Serialize + DeserializeOwned;

    /// Name, version and capabilities of the engine. The schemas are derived from
    /// [`Config`](Engine::Config) and [`Role`](Engine::Role) unless set here.
    fn describe(&self) -> Descriptor;

    /// Validate and normalise a mount configuration; the host stores what is returned.
    /// The default accepts what parses.
    fn configure(&self, ctx: &Context, config: Self::Config) -> Result<Self::Config> {
        let _ = ctx;
        Ok(config)
    }

    /// Validate and normalise a role definition for the mount `config`; the host stores
    /// what is returned. The default accepts what parses.
    fn validate_role(
        &self,
        ctx: &Context,
        config: &Self::Config,
        role: Self::Role,
    ) -> Result<Self::Role> {
        let _ = (ctx, config);
        Ok(role)
    }

    /// Issue a credential for `role`, valid for `ttl` (the host has already bounded it).
    fn issue(
        &self,
        ctx: &Context,
        config: &Self::Config,
        role: &Self::Role,
        ttl: Duration,
    ) -> Result<Credential<Self::State>>;

    /// Extend the lease whose credential carried `state` to `ttl` from now; returns the
    /// ttl granted. The default grants what is asked.
    fn renew(
        &self,
        ctx: &Context,
        config: &Self::Config,
        role: &Self::Role,
        state: &Self::State,
        ttl: Duration,
    ) -> Result<Duration> {
        let _ = (ctx, config, role, state);
        Ok(ttl)
    }

    /// Revoke the credential that carried `state`. Revoking one that is already gone must
    /// succeed. The default does nothing.
    fn revoke(
        &self,
        ctx: &Context,
        config: &Self::Config,
        role: &Self::Role,
        state: &Self::State,
    ) -> Result<()> {
        let _ = (ctx, config, role, state);
        Ok(())
    }

    /// Rotate the engine's root credential through the host
    /// ([`sql::rotate_root`](crate::sql::rotate_root),
    /// [`http::rotate_root`](crate::http::rotate_root)). The default is unsupported.
    fn rotate_root(&self, ctx: &Context, config: &Self::Config) -> Result<()> {
        let _ = (ctx, config);
        Err(Error::unsupported("rotate-root"))
    }
}

/// The configuration of an engine with nothing to configure: the JSON object `{}` and
/// nothing else (a key in it is refused as unknown). Its schema is an empty object with
/// `additionalProperties: false`.
///
/// An engine that takes any object instead uses
/// `serde_json::Map<String, serde_json::Value>` (schema: any object).
///
/// ```
/// use arcan_plugin_sdk::{NoConfig, json_schema};
/// use arcan_plugin_sdk::serde_json::{self, json};
///
/// assert_eq!(serde_json::from_value::<NoConfig>(json!({})).unwrap(), NoConfig);
/// assert!(serde_json::from_value::<NoConfig>(json!({"x": 1})).is_err());
/// assert_eq!(serde_json::to_value(NoConfig).unwrap(), json!({}));
/// assert_eq!(json_schema::<NoConfig>()["additionalProperties"], false);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoConfig;

/// The role definition of an engine whose roles say nothing: the JSON object `{}` and
/// nothing else, like [`NoConfig`]. The role's name is in [`Context::role`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoRole;

/// `NoConfig` and `NoRole` are unit structs in Rust and `{}` in JSON (the derives would
/// make a unit struct `null`).
macro_rules! empty_object {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::ser::SerializeMap::end(s.serialize_map(Some(0))?)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                d.deserialize_map(EmptyObject($name))
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "object", "additionalProperties": false })
            }
        }
    };
}

empty_object!(NoConfig);
empty_object!(NoRole);

/// Accepts an empty JSON object, and nothing else, as `T`.
struct EmptyObject<T>(T);

impl<'de, T> Visitor<'de> for EmptyObject<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an empty JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<T, A::Error> {
        match map.next_key::<String>()? {
            Some(key) => Err(de::Error::unknown_field(&key, &[])),
            None => Ok(self.0),
        }
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
/// The JSON Schemas of the configuration and of a role are derived from
/// [`Engine::Config`] and [`Engine::Role`] (with [`json_schema`](crate::json_schema)) when
/// left unset, which is what most engines want; set one only to publish something the
/// derive cannot say.
///
/// ```
/// use arcan_plugin_sdk::{Capability, Descriptor};
/// use arcan_plugin_sdk::serde_json::json;
///
/// let d = Descriptor::new("postgres", "1.2.0")
///     .capability(Capability::DynamicCredentials)
///     .capability(Capability::RootRotation);
/// assert_eq!(d.capabilities, [Capability::DynamicCredentials, Capability::RootRotation]);
/// assert_eq!(d.role_schema, None, "derived from Engine::Role");
///
/// let d = d.role_schema(json!({"type": "object", "required": ["creation_sql"]}));
/// assert!(d.role_schema.is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Descriptor {
    /// Engine name, e.g. `postgres`.
    pub name: String,
    /// Engine version (semver).
    pub version: String,
    /// JSON Schema of the mount configuration; `None`: the schema of [`Engine::Config`].
    pub config_schema: Option<Value>,
    /// JSON Schema of a role definition; `None`: the schema of [`Engine::Role`].
    pub role_schema: Option<Value>,
    /// Engine capabilities, e.g. [`Capability::DynamicCredentials`].
    pub capabilities: Vec<Capability>,
}

impl Descriptor {
    /// A descriptor with derived schemas and no capabilities.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            config_schema: None,
            role_schema: None,
            capabilities: Vec::new(),
        }
    }

    /// Publish `schema` as the JSON Schema of the mount configuration instead of the
    /// derived one.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = Some(schema);
        self
    }

    /// Publish `schema` as the JSON Schema of a role definition instead of the derived one.
    pub fn role_schema(mut self, schema: Value) -> Self {
        self.role_schema = Some(schema);
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

/// An issued credential, returned by [`Engine::issue`]: what the caller gets, how long it
/// lives, and the engine's private [`state`](Credential::state) of the lease. Build it with
/// [`new`](Credential::new) and the builder methods (fields may be added).
///
/// `S` is the engine's [`Engine::State`]; [`new`](Credential::new) makes a
/// `Credential<()>` (no state) and [`state`](Credential::state) gives it one.
///
/// ```
/// use std::time::Duration;
/// use arcan_plugin_sdk::Credential;
/// use arcan_plugin_sdk::serde_json::json;
///
/// #[derive(Debug, PartialEq)]
/// struct Lease { username: String }
///
/// let c = Credential::new(json!({"username": "u", "password": "p"}), Duration::from_secs(3600))
///     .state(Lease { username: "u".into() });
/// assert!(c.renewable && c.revocable);
/// assert_eq!(c.state.username, "u");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Credential<S = ()> {
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
    pub state: S,
}

impl Credential {
    /// A renewable, revocable credential with no state.
    pub fn new(data: Value, ttl: Duration) -> Self {
        Self {
            data,
            ttl,
            renewable: true,
            revocable: true,
            state: (),
        }
    }
}

impl<S> Credential<S> {
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

    /// Set the engine-private state kept with the lease (the engine's [`Engine::State`]).
    pub fn state<T>(self, state: T) -> Credential<T> {
        Credential {
            data: self.data,
            ttl: self.ttl,
            renewable: self.renewable,
            revocable: self.revocable,
            state,
        }
    }
}
