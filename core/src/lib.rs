//! Arcan: a secrets platform in one binary, server and CLI.
//!
//! This crate holds the server (HTTPS listener, the guardian middleware, handlers), the
//! engines (the built-in KV engine, mounts, leases, the reaper), the configuration and the
//! CLI. What they stand on are crates of their own, with dependencies pointing one way
//! (cargo refuses a cycle): `arcan-crypto` ← `arcan-store` ← `arcan-audit` ←
//! `arcan-plugin-host` ← this crate; the leaves `arcan-util`, `arcan-lifecycle` (used by
//! audit) and `arcan-rbac` (used by the plugin host's connection policy), and
//! `arcan-registry-client` (package verification, used by the plugin host) sit below. It is
//! not a library for other programs to embed; third-party engines use the `plugin-sdk`
//! crate instead.

pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod reaper;
pub mod registry;
pub mod server;

// Crates of their own, under their old paths, so `crate::store::…` and `arcan::store::…`
// keep naming the same items.
pub use arcan_audit as audit;
pub use arcan_crypto as crypto;
pub use arcan_lifecycle as lifecycle;
pub use arcan_plugin_host as plugin;
pub use arcan_rbac as rbac;
pub use arcan_store as store;
pub use arcan_util as util;
