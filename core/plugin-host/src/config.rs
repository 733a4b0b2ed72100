//! The `plugins` section of the configuration: where plugins are installed, whose
//! signatures load, where their connections may point and the limits of every call.

use std::path::PathBuf;
use std::time::Duration;

use arcan_util::duration;
use serde::Deserialize;

/// WebAssembly engine plugins: where they are installed and the limits of every call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Installed plugins, one directory each (`manifest.json` + `engine.wasm`).
    /// Default: `<data_dir>/plugins`.
    pub dir: Option<PathBuf>,
    /// Compiled code cache, keyed by component digest and engine compatibility hash.
    /// Default: `<data_dir>/plugin-cache`. Never point it at a directory others write.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock deadline of one engine call (epoch interruption + host-call timeouts).
    #[serde(with = "duration")]
    pub call_timeout: Duration,
    /// Deadline of one host call (SQL statement, HTTP request) made by a plugin.
    #[serde(with = "duration")]
    pub host_call_timeout: Duration,
    /// Linear memory one instance may grow to, in MiB.
    pub memory_limit_mb: u32,
    /// Instances that may run at once (pooling allocator slots); more calls wait.
    pub max_instances: u32,
    /// Largest result (credential data, config, role) an engine may return, in bytes.
    pub max_result_bytes: usize,
    /// Publisher keys (`ed25519:<base64>`) whose signatures the host accepts. A plugin
    /// whose signature is missing or by another key does not load.
    pub trusted_keys: Vec<String>,
    /// DEVELOPMENT ONLY: load plugins without a signature (logged loudly at start and on
    /// every load). Off by default.
    pub allow_unsigned: bool,
    /// Where engine connections may point (see [`ConnectionPolicyConfig`]).
    pub connections: ConnectionPolicyConfig,
    /// Audit events one call may emit; the next one is refused with a host error (the call
    /// fails) and reported by one `plugin.audit_quota_exceeded` event.
    pub max_audit_events_per_call: u32,
    /// Bytes (action, target and detail) of the audit events one call may emit; beyond
    /// that, as for the event count.
    pub max_audit_bytes_per_call: u32,
    /// Plugin data writes (puts and deletes) one call may make; more are refused.
    pub max_data_writes_per_call: u32,
    /// Plugin data keys one mount may hold.
    pub max_data_keys_per_mount: u64,
    /// Plugin data bytes (keys and sealed values) one mount may hold.
    pub max_data_bytes_per_mount: u64,
}

/// Operator-owned engine connections: the endpoints any realm admin may mount an engine
/// against. Everything else needs the global capability `connections:manage`.
///
/// Each `allow` entry is one of:
/// - `host:port` where host is an exact DNS name or IP address, `*.suffix` (any name ending
///   in `.suffix`) or `*` (any host), and port is a number or `*`: `db.internal:5432`,
///   `*.db.example.com:*`, `10.0.0.7:5432`;
/// - `[addr]:port` for an IPv6 address: `[2001:db8::7]:5432`;
/// - `unix:/abs/dir` for a PostgreSQL unix socket directory: `unix:/var/run/postgresql`.
///
/// Unix sockets, link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10,
/// fd00:ec2::254, `metadata.google.internal`, `metadata`) and 0.0.0.0 / :: are refused for
/// every caller, `connections:manage` included, unless an entry names them explicitly (an
/// exact address or name, or their `unix:` directory; `*` and `*.suffix` do not count).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionPolicyConfig {
    /// Allowlisted endpoint patterns.
    pub allow: Vec<String>,
}

impl ConnectionPolicyConfig {
    /// The parsed allowlist (checked when the configuration is validated).
    pub fn allowlist(
        &self,
    ) -> Result<crate::connection_policy::Allowlist, crate::connection_policy::PatternError> {
        crate::connection_policy::Allowlist::parse(&self.allow)
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            cache_dir: None,
            call_timeout: Duration::from_secs(10),
            host_call_timeout: Duration::from_secs(5),
            memory_limit_mb: 64,
            max_instances: 64,
            max_result_bytes: 1024 * 1024,
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            connections: ConnectionPolicyConfig::default(),
            max_audit_events_per_call: 32,
            max_audit_bytes_per_call: 64 * 1024,
            max_data_writes_per_call: 64,
            max_data_keys_per_mount: 1000,
            max_data_bytes_per_mount: 1024 * 1024,
        }
    }
}
