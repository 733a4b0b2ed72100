//! The plugin runtime: WebAssembly engines hosted with wasmtime's component model.
//!
//! Architecture Path 3 and guardians 4 (capabilities) and 6 (isolation). One pipeline
//! loads every plugin — verify the manifest → inspect the component's imports against it
//! → compile (cached by digest and engine compatibility hash) → link only what the
//! operator granted → instantiate — so no path skips a step. Every call runs in a fresh
//! instance (pooling allocator, `InstancePre`) with a wall-clock deadline (epoch
//! interruption), a linear-memory cap and bounded values; WASI is linked deny-all (no
//! files, sockets or environment; stdout and stderr go to the log). A trap never takes the
//! server down: it becomes a 502 naming the plugin and the request.
//!
//! The first step verifies the package signature (`arcan-registry-client`) against the
//! configured trusted publisher keys before anything is parsed further or compiled; only an
//! explicit development override (`plugins.allow_unsigned`) loads unsigned plugins.
//!
//! The manifest type is the registry client's ([`Manifest`]); [`manifest`] adds the checks
//! only this host can make. Named connections are in [`connections`]; what the host knows
//! of one kind of external system beyond reaching it (how its root credential is rotated)
//! is in [`providers`].

pub mod call;
pub mod config;
pub mod connection_policy;
pub mod connections;
pub mod host;
pub mod manifest;
pub mod model;
pub mod postgres_url;
pub mod providers;
pub mod runtime;
pub mod sigv4;

pub use call::{CallError, CallInfo, EngineCall, TrapKind};
pub use manifest::{HostCapability, Manifest};
pub use model::{ContractVersion, Credential, Descriptor, EngineCapability, ErrorKind};
pub use runtime::{LoadedPlugin, Runtime};

/// Errors of loading a plugin (at mount or at start), before any call.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin with that name is installed.
    #[error("plugin `{0}` is not installed")]
    NotInstalled(String),
    /// The package signature or a file digest does not verify (or there is none).
    #[error("plugin refused: {0}")]
    Signature(String),
    /// The manifest is missing or invalid.
    #[error("invalid plugin manifest: {0}")]
    Manifest(String),
    /// The component imports something the host does not provide.
    #[error("plugin `{plugin}` imports `{import}`, which this host does not provide")]
    UnknownImport {
        /// Plugin name.
        plugin: String,
        /// The import.
        import: String,
    },
    /// The component imports an interface its manifest does not declare.
    #[error(
        "plugin `{plugin}` imports `{import}` but its manifest does not declare `{capability}`; refused"
    )]
    Undeclared {
        /// Plugin name.
        plugin: String,
        /// The import.
        import: String,
        /// The capability it needs.
        capability: HostCapability,
    },
    /// The component imports an interface the operator did not grant.
    #[error(
        "plugin `{plugin}` imports `{import}`, which needs `{capability}`; grant it when mounting"
    )]
    NotGranted {
        /// Plugin name.
        plugin: String,
        /// The import.
        import: String,
        /// The capability it needs.
        capability: HostCapability,
    },
    /// The component is not valid WebAssembly or failed to compile or link.
    #[error("plugin `{plugin}` cannot be loaded: {message}")]
    Invalid {
        /// Plugin name.
        plugin: String,
        /// Why.
        message: String,
    },
    /// Reading the plugin or the cache failed.
    #[error("plugin I/O: {0}")]
    Io(String),
}
