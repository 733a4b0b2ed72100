//! The SDK for writing Arcan secrets engines as WebAssembly components.
//!
//! An engine is a Rust library built for `wasm32-wasip2` that implements [`Engine`] and
//! exports it with [`export_engine!`]. The `arcan` server loads the component, checks its
//! imports against the capabilities its manifest declares and the operator granted, and
//! calls it in a fresh instance for every operation (describe, configure, validate a role,
//! issue, renew, revoke, rotate the root credential).
//!
//! What the SDK gives an engine:
//! - the [`Engine`] trait and its plain types ([`Context`], [`Credential`], [`Descriptor`]
//!   with its [`Capability`]s, [`Error`]); configuration, roles and lease state are
//!   [`serde_json::Value`]s,
//! - the host functions of the contract `arcan:plugin@0.2.0`: [`sql`] and [`http`] on
//!   connections the host holds, [`data`] (storage scoped to the mount), [`audit`], [`log`].
//!
//! The SDK's version is the contract's: `arcan-plugin-sdk` 0.2.0 builds components for
//! `arcan:plugin@0.2.0` (manifest `"wit": "arcan:plugin@0.2.0"`). What 0.2.0 changed from
//! 0.1.0 for engines: capabilities are the typed [`Capability`] instead of strings, and
//! [`Error::unavailable`] (503) with [`Error::retry_after`] (sent as `Retry-After`) is new.
//!
//! What it is not: a runtime. Engines keep no state between calls, see no filesystem,
//! network or environment, and never see root credentials; everything outside the
//! component goes through the host functions above. It is not the host either: the
//! WIT bindings it generates are private and only describe the guest side.
//!
//! ```no_run
//! use arcan_plugin_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Engine for Hello {
//!     fn describe(&self) -> Descriptor {
//!         Descriptor::new("hello", "0.1.0").capability(Capability::DynamicCredentials)
//!     }
//!
//!     fn issue(&self, ctx: &Context, _: &Value, _: &Value, ttl: Duration) -> Result<Credential> {
//!         let name = ctx.role.clone().unwrap_or_default();
//!         Ok(Credential::new(json!({ "greeting": format!("hello {name}") }), ttl))
//!     }
//! }
//!
//! arcan_plugin_sdk::export_engine!(Hello);
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod data;
mod engine;
mod error;
mod export;
pub mod http;
pub mod log;
pub mod sql;

pub use engine::{Capability, Context, Credential, Descriptor, Engine};
pub use error::{Error, ErrorKind, HostError, Result};
/// The JSON library the SDK uses for configurations, roles and credential data.
pub use serde_json;

/// What most engines need, in one `use arcan_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Capability, Context, Credential, Descriptor, Engine, Error, ErrorKind, Result,
    };
    pub use serde_json::{Value, json};
    pub use std::time::Duration;
}

/// Generated bindings and the export adapter. Not part of the API: only
/// [`export_engine!`] uses it.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod __private {
    pub use crate::export::{Adapter, assert_engine};

    wit_bindgen::generate!({
        path: "contract/arcan-plugin-0.2.0",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "$crate::__private",
    });
}
