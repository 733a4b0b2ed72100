//! The SDK for writing Arcan secrets engines as WebAssembly components.
//!
//! An engine is a Rust library built for `wasm32-wasip2` that implements [`Engine`] and
//! exports it with [`export_engine!`]. The `arcan` server loads the component, checks its
//! imports against the capabilities its manifest declares and the operator granted, and
//! calls it in a fresh instance for every operation (describe, configure, validate a role,
//! issue, renew, revoke, rotate the root credential).
//!
//! What the SDK gives an engine:
//! - the [`Engine`] trait, typed: the engine names its configuration, role and lease state
//!   types ([`Engine::Config`], [`Engine::Role`], [`Engine::State`]); the SDK parses the
//!   JSON the host sends into them once (refusing what does not fit with `invalid-input`,
//!   before the engine's code runs), serializes what the engine returns, and derives the
//!   JSON Schemas of its [`Descriptor`] from them ([`JsonSchema`], re-exported from
//!   [`schemars`]). [`NoConfig`] and [`NoRole`] are for engines with nothing to configure
//!   or roles that say nothing,
//! - its plain types ([`Context`], [`Credential`], [`Descriptor`] with its [`Capability`]s,
//!   [`Error`]),
//! - the host functions of the contract `arcan:plugin@0.2.0`: [`sql`] and [`http`] on
//!   connections the host holds, [`data`] (storage scoped to the mount), [`audit`], [`log`],
//! - [`random`]: passwords and generated user names.
//!
//! The SDK's version is the contract's: `arcan-plugin-sdk` 0.2.0 builds components for
//! `arcan:plugin@0.2.0` (manifest `"wit": "arcan:plugin@0.2.0"`). The README's section
//! *From SDK 0.1.0 to 0.2.0* lists what changed for engines.
//!
//! What it is not: a runtime. Engines keep no state between calls, see no filesystem,
//! network or environment, and never see root credentials; everything outside the
//! component goes through the host functions above. It is not the host either: the
//! WIT bindings it generates are private and only describe the guest side.
//!
//! The smallest engine, `examples/hello.rs`:
//!
//! ```no_run
#![doc = include_str!("../examples/hello.rs")]
//! ```
//!
//! Typed configurations and roles derive `Deserialize`, `Serialize` (the engine depends on
//! `serde` with its `derive` feature) and `JsonSchema`. The prelude brings `JsonSchema` and
//! the `schemars` crate into scope, which is all the derive needs: no `schemars`
//! dependency in the engine (outside a `use arcan_plugin_sdk::prelude::*;` module, add
//! `#[schemars(crate = "arcan_plugin_sdk::schemars")]` to the type). `#[schemars(...)]`
//! attributes put in the schema what serde does not say (patterns, ranges, lengths);
//! checking them is `configure`'s job.
//!
//! ```
//! use arcan_plugin_sdk::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// The mount configuration.
//! #[derive(Debug, Deserialize, Serialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// The host-held connection to use.
//!     #[serde(default = "default_connection")]
//!     #[schemars(regex(pattern = r"^[a-z0-9-]{1,64}$"))]
//!     connection: String,
//!     /// Characters of generated passwords.
//!     #[serde(default = "default_length")]
//!     #[schemars(range(min = 16, max = 128))]
//!     password_length: usize,
//! }
//!
//! fn default_connection() -> String { "db".into() }
//! fn default_length() -> usize { 32 }
//!
//! let schema = arcan_plugin_sdk::json_schema::<Config>();
//! assert_eq!(schema["additionalProperties"], false);
//! assert_eq!(schema["properties"]["connection"]["default"], "db");
//! assert_eq!(schema["properties"]["password_length"]["maximum"], 128);
//! let connection = &schema["properties"]["connection"];
//! assert_eq!(connection["description"], "The host-held connection to use.");
//! ```
#![deny(missing_docs)]

pub mod audit;
pub mod data;
mod engine;
mod error;
mod export;
pub mod http;
pub mod log;
pub mod random;
pub mod sql;

pub use engine::{Capability, Context, Credential, Descriptor, Engine, NoConfig, NoRole};
pub use error::{Error, ErrorKind, HostError, Result};
/// The JSON Schema library the SDK derives schemas with (version 1). `#[derive(JsonSchema)]`
/// finds it where `schemars` is in scope (the [`prelude`] brings it), or with
/// `#[schemars(crate = "arcan_plugin_sdk::schemars")]`.
pub use schemars;
/// Derive it (and implement it) for [`Engine::Config`] and [`Engine::Role`].
pub use schemars::JsonSchema;
/// The JSON library the SDK uses for configurations, roles and credential data.
pub use serde_json;

/// The JSON Schema of `T`, as the SDK publishes it for [`Engine::Config`] and
/// [`Engine::Role`] when the [`Descriptor`] sets none: JSON Schema draft 2020-12, as
/// schemars generates it with its default settings (doc comments become descriptions,
/// `#[serde(default)]`s defaults, `deny_unknown_fields` `additionalProperties: false`;
/// named types used in several places go under `$defs`). Handy in an engine's unit tests.
///
/// ```
/// use arcan_plugin_sdk::{NoConfig, json_schema};
/// use arcan_plugin_sdk::serde_json::json;
///
/// let schema = json_schema::<NoConfig>();
/// assert_eq!(schema["type"], "object");
/// assert_eq!(schema["additionalProperties"], false);
/// ```
pub fn json_schema<T: JsonSchema + ?Sized>() -> serde_json::Value {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// What most engines need, in one `use arcan_plugin_sdk::prelude::*;`: the engine's
/// types, `JsonSchema` (trait and derive) with the `schemars` path its derive uses,
/// `Value` and `json!`, `Duration`.
pub mod prelude {
    pub use crate::{
        Capability, Context, Credential, Descriptor, Engine, Error, ErrorKind, JsonSchema,
        NoConfig, NoRole, Result, schemars,
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
