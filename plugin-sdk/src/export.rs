//! The adapter between the generated `engine` export and [`Engine`], and the
//! [`export_engine!`](crate::export_engine) macro.

use std::marker::PhantomData;
use std::time::Duration;

use serde_json::Value;

use crate::__private::arcan::plugin::types::{CallContext, EngineError};
use crate::__private::exports::arcan::plugin::engine as wit;
use crate::{Capability, Context, Credential, Descriptor, Engine, Error, Result};

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
/// JSON strings parsed and printed here, ttls in seconds.
pub struct Adapter<T>(PhantomData<T>);

impl<T: Engine> wit::Guest for Adapter<T> {
    fn describe() -> wit::Descriptor {
        descriptor_to_wit(T::default().describe())
    }

    fn configure(ctx: CallContext, config: String) -> Result<String, EngineError> {
        let config = parse_json("config", &config)?;
        let out = T::default().configure(&ctx.into(), config)?;
        Ok(out.to_string())
    }

    fn validate_role(
        ctx: CallContext,
        config: String,
        role: String,
    ) -> Result<String, EngineError> {
        let config = parse_json("config", &config)?;
        let role = parse_json("role", &role)?;
        let out = T::default().validate_role(&ctx.into(), &config, role)?;
        Ok(out.to_string())
    }

    fn issue(
        ctx: CallContext,
        config: String,
        role: String,
        ttl_seconds: u64,
    ) -> Result<wit::Credential, EngineError> {
        let config = parse_json("config", &config)?;
        let role = parse_json("role", &role)?;
        let ttl = Duration::from_secs(ttl_seconds);
        let credential = T::default().issue(&ctx.into(), &config, &role, ttl)?;
        Ok(credential_to_wit(credential))
    }

    fn renew(
        ctx: CallContext,
        config: String,
        role: String,
        internal: String,
        ttl_seconds: u64,
    ) -> Result<u64, EngineError> {
        let config = parse_json("config", &config)?;
        let role = parse_json("role", &role)?;
        let internal = parse_json("internal", &internal)?;
        let ttl = Duration::from_secs(ttl_seconds);
        let granted = T::default().renew(&ctx.into(), &config, &role, &internal, ttl)?;
        Ok(duration_to_secs(granted))
    }

    fn revoke(
        ctx: CallContext,
        config: String,
        role: String,
        internal: String,
    ) -> Result<(), EngineError> {
        let config = parse_json("config", &config)?;
        let role = parse_json("role", &role)?;
        let internal = parse_json("internal", &internal)?;
        Ok(T::default().revoke(&ctx.into(), &config, &role, &internal)?)
    }

    fn rotate_root(ctx: CallContext, config: String) -> Result<(), EngineError> {
        let config = parse_json("config", &config)?;
        Ok(T::default().rotate_root(&ctx.into(), &config)?)
    }
}

/// Parses a JSON document the host passed in; `what` names it in the error.
fn parse_json(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")))
}

/// Whole seconds, rounded up so that a non-zero ttl never becomes zero.
fn duration_to_secs(ttl: Duration) -> u64 {
    ttl.as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
}

fn descriptor_to_wit(d: Descriptor) -> wit::Descriptor {
    wit::Descriptor {
        name: d.name,
        version: d.version,
        config_schema: d.config_schema.to_string(),
        role_schema: d.role_schema.to_string(),
        capabilities: d.capabilities.into_iter().map(capability_to_wit).collect(),
    }
}

fn capability_to_wit(c: Capability) -> wit::Capability {
    match c {
        Capability::DynamicCredentials => wit::Capability::DynamicCredentials,
        Capability::RootRotation => wit::Capability::RootRotation,
        Capability::StaticRoles => wit::Capability::StaticRoles,
    }
}

fn credential_to_wit(c: Credential) -> wit::Credential {
    wit::Credential {
        data: c.data.to_string(),
        ttl_seconds: duration_to_secs(c.ttl),
        renewable: c.renewable,
        revocable: c.revocable,
        internal: c.internal.to_string(),
    }
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
