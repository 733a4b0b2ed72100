//! Secret engines: the built-in KV engine and the registry of WebAssembly engine mounts,
//! with the leases of the credentials they issue.
//!
//! Every engine of a realm is reached through [`registry::Engines`]: the built-in `kv`
//! engine is listed there as a built-in mount, plugin engines are mounted per realm and
//! loaded through the plugin pipeline (`arcan_plugin_host`). The [`reaper`] revokes what
//! expires.
//!
//! Position in the workspace: above `arcan-config`, `arcan-plugin-host`, `arcan-store` and
//! `arcan-audit`; below `arcan-server`. It knows nothing of HTTP: [`EngineError`] says what
//! failed, the server maps it to a status.

pub mod kv;
pub mod leases;
pub mod reaper;
pub mod registry;

pub use arcan_store::sealing;

use arcan_plugin_host::{CallError, PluginError};
use arcan_store::StoreError;

/// Errors of engine and lease operations; `server::error` maps them to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// Unknown mount, role or lease (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// A connection given at mount time does not answer (400, `connection_failed`).
    #[error("{0}")]
    Connection(String),
    /// Loading the plugin failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The engine call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Sealing or opening engine data failed.
    #[error(transparent)]
    Seal(#[from] kv::SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
