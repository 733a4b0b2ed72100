//! Arcan: a secrets platform in one binary, server and CLI.
//!
//! This crate holds the server (HTTPS listener, the guardian middleware, handlers), the
//! store (SQLite and PostgreSQL behind one trait), crypto (envelope encryption, tokens,
//! TLS material), RBAC, the built-in KV engine and the CLI. It is not a library for other
//! programs to embed; third-party engines use the `plugin-sdk` crate instead.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod lifecycle;
pub mod plugin;
pub mod rbac;
pub mod reaper;
pub mod registry;
pub mod server;
pub mod store;
pub mod util;
