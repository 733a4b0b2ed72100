//! Arcan: a secrets platform in one binary, server and CLI.
//!
//! This crate holds the server (HTTPS listener, the guardian middleware, handlers), the
//! store (SQLite and PostgreSQL behind one trait), crypto (envelope encryption, tokens,
//! TLS material), RBAC, the built-in KV engine and the CLI. It is not a library for other
//! programs to embed; third-party engines use the `plugin-sdk` crate instead.

pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod plugin;
pub mod reaper;
pub mod registry;
pub mod server;
pub mod util;

// Crates of their own, under their old paths, so `crate::store::…` and `arcan::store::…`
// keep naming the same items.
pub use arcan_audit as audit;
pub use arcan_crypto as crypto;
pub use arcan_lifecycle as lifecycle;
pub use arcan_rbac as rbac;
pub use arcan_store as store;
