//! The adapter between the generated `engine` export and [`Engine`], and the
//! [`export_engine!`](crate::export_engine) macro.

use std::marker::PhantomData;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::arcan::plugin::types::{CallContext, EngineError};
use crate::__private::exports::arcan::plugin::engine as wit;
use crate::{Capability, Context, Credential, Engine, Error, Result, json_schema};

/// Export an [`Engine`] as the component's `arcan:plugin/engine` interface.
///
/// Use it once, in the engine's crate (a `cdylib` built for `wasm32-wasip2`):
///
/// ```ignore
/// #[derive(Default)]
/// struct MyEngine;
/// impl arcan_plugin_sdk::Engine for MyEngine { /* ... */ }
///
/// arcan_plugin_sdk::export_engine!(MyEngine);
/// ```
#[macro_export]
macro_rules! export_engine {
    ($engine:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type ArcanPluginEngineExport = $crate::__private::Adapter<$engine>;
            $crate::__private::export!(
                ArcanPluginEngineExport with_types_in $crate::__private
            );
        };
        // Native builds (the engine's unit tests) export nothing: the component's export
        // names are not valid symbol names for a native shared library.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::__private::assert_engine::<$engine>();
    };
}

/// Type-checks an engine on targets where it is not exported.
pub const fn assert_engine<T: Engine>() {}

/// Implements the generated `Guest` trait for any [`Engine`]: one fresh engine per call,
/// JSON documents parsed into the engine's types and serialized back here, ttls in
/// seconds.
pub struct Adapter<T>(PhantomData<T>);

impl<T: Engine> wit::Guest for Adapter<T> {
    fn describe() -> wit::Descriptor {
        let d = T::default().describe();
        wit::Descriptor {
            name: d.name,
            version: d.version,
            config_schema: d
                .config_schema
                .unwrap_or_else(json_schema::<T::Config>)
                .to_string(),
            role_schema: d
                .role_schema
                .unwrap_or_else(json_schema::<T::Role>)
                .to_string(),
            capabilities: d.capabilities.into_iter().map(capability_to_wit).collect(),
        }
    }

    fn configure(ctx: CallContext, config: String) -> Result<String, EngineError> {
        let config = parse_config::<T>(&config)?;
        let out = T::default().configure(&ctx.into(), config)?;
        Ok(print("config", &out)?)
    }

    fn validate_role(
        ctx: CallContext,
        config: String,
        role: String,
    ) -> Result<String, EngineError> {
        let config = parse_config::<T>(&config)?;
        let role = parse_role::<T>(&role)?;
        let out = T::default().validate_role(&ctx.into(), &config, role)?;
        Ok(print("role", &out)?)
    }

    fn issue(
        ctx: CallContext,
        config: String,
        role: String,
        ttl_seconds: u64,
    ) -> Result<wit::Credential, EngineError> {
        let config = parse_config::<T>(&config)?;
        let role = parse_role::<T>(&role)?;
        let ttl = Duration::from_secs(ttl_seconds);
        let credential = T::default().issue(&ctx.into(), &config, &role, ttl)?;
        Ok(credential_to_wit(credential)?)
    }

    fn renew(
        ctx: CallContext,
        config: String,
        role: String,
        internal: String,
        ttl_seconds: u64,
    ) -> Result<u64, EngineError> {
        let config = parse_config::<T>(&config)?;
        let role = parse_role::<T>(&role)?;
        let state = parse_state::<T>(&internal)?;
        let ttl = Duration::from_secs(ttl_seconds);
        let granted = T::default().renew(&ctx.into(), &config, &role, &state, ttl)?;
        Ok(duration_to_secs(granted))
    }

    fn revoke(
        ctx: CallContext,
        config: String,
        role: String,
        internal: String,
    ) -> Result<(), EngineError> {
        let config = parse_config::<T>(&config)?;
        let role = parse_role::<T>(&role)?;
        let state = parse_state::<T>(&internal)?;
        Ok(T::default().revoke(&ctx.into(), &config, &role, &state)?)
    }

    fn rotate_root(ctx: CallContext, config: String) -> Result<(), EngineError> {
        let config = parse_config::<T>(&config)?;
        Ok(T::default().rotate_root(&ctx.into(), &config)?)
    }
}

fn parse_config<T: Engine>(text: &str) -> Result<T::Config> {
    parse("config", text, only_objects_in::<T::Config>)
}

fn parse_role<T: Engine>(text: &str) -> Result<T::Role> {
    parse("role", text, only_objects_in::<T::Role>)
}

/// The lease's state, `internal` on the wire.
fn parse_state<T: Engine>(text: &str) -> Result<T::State> {
    parse("state", text, || false)
}

/// Parses a JSON document the host passed in as a `T`; `what` names it in the error. A
/// document that is not an object is refused as such when `only_objects` says `T` takes
/// objects only (rather than with serde's "invalid type ..., expected struct X", which
/// names a Rust type; and serde would take an array for a struct, field by field).
fn parse<T: DeserializeOwned>(what: &str, text: &str, only_objects: fn() -> bool) -> Result<T> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("{what}: not valid JSON: {e}")))?;
    if !value.is_object() && only_objects() {
        return Err(Error::invalid(format!(
            "{what}: must be a JSON object, not {}",
            json_kind(&value)
        )));
    }
    serde_json::from_value(value).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

/// Whether the schema of `T` admits objects only: `"type": "object"`, or a `oneOf` or
/// `anyOf` of such schemas (an enum of structs).
fn only_objects_in<T: JsonSchema>() -> bool {
    fn only_objects(schema: &Value) -> bool {
        if schema.get("type").and_then(Value::as_str) == Some("object") {
            return true;
        }
        ["oneOf", "anyOf"].iter().any(|k| {
            schema
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|v| !v.is_empty() && v.iter().all(only_objects))
        })
    }
    only_objects(&json_schema::<T>())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Serializes what the engine returns; `what` names it in the error (a failure is the
/// engine's: a map with non-string keys, a `Serialize` impl that fails).
fn print<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal(format!("{what}: cannot be serialized as JSON: {e}")))
}

/// Whole seconds, rounded up so that a non-zero ttl never becomes zero.
fn duration_to_secs(ttl: Duration) -> u64 {
    ttl.as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
}

fn capability_to_wit(c: Capability) -> wit::Capability {
    match c {
        Capability::DynamicCredentials => wit::Capability::DynamicCredentials,
        Capability::RootRotation => wit::Capability::RootRotation,
        Capability::StaticRoles => wit::Capability::StaticRoles,
    }
}

fn credential_to_wit<S: Serialize>(c: Credential<S>) -> Result<wit::Credential> {
    Ok(wit::Credential {
        data: c.data.to_string(),
        ttl_seconds: duration_to_secs(c.ttl),
        renewable: c.renewable,
        revocable: c.revocable,
        internal: print("state", &c.state)?,
    })
}

impl From<CallContext> for Context {
    fn from(c: CallContext) -> Self {
        Context {
            request_id: c.request_id,
            user_id: c.user_id,
            token_id: c.token_id,
            realm_id: c.realm_id,
            realm: c.realm,
            mount: c.mount,
            lease_id: c.lease_id,
            role: c.role,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
