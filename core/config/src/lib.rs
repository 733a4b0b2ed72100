//! Typed configuration: YAML file < `ARCAN_*` environment < command-line flags.
//!
//! Parsed once, before anything binds. Unknown keys are an error, so a typo never silently
//! falls back to a default.
//!
//! The one configuration type of the server, [`Config`], aggregates the sections the lower
//! crates define themselves (plugins and connection policy from `arcan-plugin-host`, the
//! audit mode and sinks from `arcan-audit`); the engine, server and CLI crates read it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors found while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid configuration (syntax, unknown key, wrong type).
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message, with location.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Development mode: open registration, root token written to the data dir.
    pub dev: bool,
    /// Where SQLite, TLS material, the master key and the root token live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; empty for the embedded SQLite store.
    pub database_url: Option<String>,
    /// Listener settings.
    pub server: ServerConfig,
    /// Store tuning.
    pub store: StoreConfig,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// KV engine limits.
    pub kv: KvConfig,
    /// Logging.
    pub log: LogConfig,
    /// Audit.
    pub audit: AuditConfig,
    /// WebAssembly engine plugins.
    pub plugins: PluginsConfig,
    /// The lease reaper.
    pub reaper: ReaperConfig,
}

pub use arcan_plugin_host::config::{ConnectionPolicyConfig, PluginsConfig};

/// The lease reaper: revokes expired leases through their engines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaperConfig {
    /// How often the reaper looks for expired leases.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// How long a lease claimed by a node stays claimed; a node that stops mid-revocation
    /// leaves the lease to another node after this.
    #[serde(with = "duration")]
    pub grace: Duration,
    /// Deadline of one revocation.
    #[serde(with = "duration")]
    pub revoke_timeout: Duration,
    /// Failed revocations before a lease is marked irrevocable (and reported).
    pub max_attempts: u32,
    /// First retry delay; doubles per failure (with jitter), capped at one hour.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Leases revoked per round.
    pub batch: u32,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(300),
            revoke_timeout: Duration::from_secs(30),
            max_attempts: 6,
            backoff: Duration::from_secs(10),
            batch: 100,
        }
    }
}

/// Audit settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record audit events (on by default; off only for benchmarking a baseline).
    pub enabled: bool,
    /// `strict` (default): a request is acknowledged only once its event is durable, and
    /// refused with 503 when it cannot be. `async`: events are stored after the answer, so a
    /// crash or a full queue can lose some (weaker; documented in docs/audit.md).
    pub mode: arcan_audit::AuditMode,
    /// Strict mode: how long a request waits for its event before it is refused.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Events each dispatcher queue holds (request events and side events have one each);
    /// in async mode a full queue drops (and counts) new events.
    pub buffer: usize,
    /// Events older than this many days are removed (a checkpoint keeps the chain
    /// verifiable). Fractions are allowed.
    pub retention_days: f64,
    /// How often retention runs.
    #[serde(with = "duration")]
    pub retention_interval: Duration,
    /// Delivery sinks defined in the file (also manageable with `arcan audit sink`).
    pub sinks: Vec<arcan_audit::sinks::NamedSink>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: arcan_audit::AuditMode::Strict,
            timeout: Duration::from_secs(5),
            buffer: 65_536,
            retention_days: 90.0,
            retention_interval: Duration::from_secs(3600),
            sinks: Vec::new(),
        }
    }
}

/// Listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind (0: any free port, printed at start).
    pub port: u16,
    /// Operator-supplied certificate chain (PEM); generated when absent.
    pub tls_cert: Option<PathBuf>,
    /// Operator-supplied private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Extra DNS names for the generated certificate.
    pub tls_names: Vec<String>,
    /// Largest request body accepted (bytes); more is 413.
    pub max_body_bytes: usize,
    /// The shutdown deadline, from the signal: in-flight requests and background work (a
    /// revocation the reaper started) finish within it, or are abandoned whole.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Connections served at once; beyond it the listener stops accepting (new ones wait
    /// in the kernel's backlog) until one closes.
    pub max_connections: usize,
    /// Longest TLS handshake.
    #[serde(with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// Longest wait for a complete HTTP/1 request head (Slowloris); the connection is
    /// closed after it.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest gap between two parts of a request body.
    #[serde(with = "duration")]
    pub request_body_timeout: Duration,
    /// A connection with no read or write for this long is closed (idle keep-alive).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
}

/// Store tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite: fsync every commit (`true`) or only survive process crashes (`false`).
    pub sqlite_synchronous_full: bool,
    /// PostgreSQL pool size.
    pub max_connections: u32,
}

/// Token-bucket rate limits (requests per second; burst equals the rate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Per client IP, for requests without a valid token.
    pub per_ip: u32,
    /// Per token.
    pub per_token: u32,
    /// Reverse proxies (CIDR, e.g. `10.0.0.5/32`) whose `X-Forwarded-For` is believed. From
    /// any other peer the header is ignored and the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Authentication settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Anyone may `arcan register` (defaults to true in dev mode only).
    pub open_registration: Option<bool>,
    /// Lifetime of tokens issued by `arcan login`.
    #[serde(with = "duration")]
    pub login_ttl: Duration,
    /// Longest TTL a created token may have.
    #[serde(with = "duration")]
    pub max_token_ttl: Duration,
    /// Global capabilities given to newly registered users.
    pub default_global_capabilities: Vec<String>,
    /// Per-account throttling of failed logins.
    pub login_throttle: LoginThrottleConfig,
    /// Password hashes (argon2, ~19 MiB each) computed at once; default: the number of
    /// CPUs. Logins and registrations beyond it wait up to `hash_wait`, then get 503.
    pub max_concurrent_hashes: Option<usize>,
    /// How long a login may wait for a hashing slot.
    #[serde(with = "duration")]
    pub hash_wait: Duration,
    /// Machine-identity logins (JWT/OIDC, Kubernetes).
    pub machine: MachineAuthConfig,
}

/// Bounds of machine-identity logins: the largest JWT, and how many calls to issuers and
/// Kubernetes API servers one auth method makes at once (a login waits `upstream_wait` for
/// a slot, then gets 503).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineAuthConfig {
    /// Largest JWT accepted (bytes; 1 KiB–64 KiB).
    pub max_jwt_bytes: usize,
    /// Upstream calls (JWKS, discovery, TokenReview) in flight per method.
    pub upstream_concurrency: usize,
    /// How long a login waits for an upstream slot.
    #[serde(with = "duration")]
    pub upstream_wait: Duration,
}

impl Default for MachineAuthConfig {
    fn default() -> Self {
        Self {
            max_jwt_bytes: 16 * 1024,
            upstream_concurrency: 16,
            upstream_wait: Duration::from_secs(1),
        }
    }
}

/// Failed-login throttling per account: after `free_attempts` consecutive failures the
/// account refuses logins (429, without hashing) for `base_delay`, doubling with each
/// further failure up to `max_delay`. The lock is always temporary, so nobody can lock a
/// user out for longer than `max_delay` at a time; a successful login resets it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Consecutive failures allowed before the first delay.
    pub free_attempts: u32,
    /// The first delay.
    #[serde(with = "duration")]
    pub base_delay: Duration,
    /// The longest delay.
    #[serde(with = "duration")]
    pub max_delay: Duration,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// KV engine limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// Largest secret value (bytes); more is 413.
    pub max_value_bytes: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `arcan=debug`.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dev: false,
            data_dir: default_home().join("data"),
            database_url: None,
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            rate_limit: RateLimitConfig::default(),
            auth: AuthConfig::default(),
            kv: KvConfig::default(),
            log: LogConfig::default(),
            audit: AuditConfig::default(),
            plugins: PluginsConfig::default(),
            reaper: ReaperConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8081,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            max_body_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            sqlite_synchronous_full: true,
            max_connections: 16,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip: 10,
            per_token: 100,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            open_registration: None,
            login_ttl: Duration::from_secs(24 * 3600),
            max_token_ttl: Duration::from_secs(365 * 24 * 3600),
            default_global_capabilities: vec!["realms:manage".to_owned()],
            login_throttle: LoginThrottleConfig::default(),
            max_concurrent_hashes: None,
            hash_wait: Duration::from_secs(1),
            machine: MachineAuthConfig::default(),
        }
    }
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 512 * 1024,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `~/.arcan`, or `./.arcan` when `HOME` is unset.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".arcan")
}

impl Config {
    /// Where installed plugins live.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }

    /// Where compiled plugin code is cached.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugins
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugin-cache"))
    }

    /// Reads a YAML file; a missing default file yields the defaults.
    pub fn from_file(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (default_home().join("config.yaml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }

    /// Whether self-registration is open.
    pub fn open_registration(&self) -> bool {
        self.auth.open_registration.unwrap_or(self.dev)
    }

    /// Checks ranges and consistency after all sources are merged.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.rate_limit.per_ip == 0 || self.rate_limit.per_token == 0 {
            return bad("rate_limit.per_ip and rate_limit.per_token must be at least 1");
        }
        let srv = &self.server;
        if srv.max_connections == 0
            || [
                srv.tls_handshake_timeout,
                srv.header_read_timeout,
                srv.request_body_timeout,
                srv.idle_timeout,
            ]
            .contains(&Duration::ZERO)
        {
            return bad("server.max_connections and the server timeouts must be positive");
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return bad("server.tls_cert and server.tls_key go together");
        }
        if self.kv.max_value_bytes == 0 || self.kv.max_value_bytes >= self.server.max_body_bytes {
            return bad("kv.max_value_bytes must be positive and below server.max_body_bytes");
        }
        if let Some(url) = &self.database_url
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            return bad("database_url must be a postgres:// URL (SQLite is the default)");
        }
        if self.audit.timeout.is_zero() {
            return bad("audit.timeout must be positive");
        }
        if self.audit.buffer == 0 {
            return bad("audit.buffer must be at least 1");
        }
        let t = &self.auth.login_throttle;
        if t.free_attempts == 0 || t.base_delay.is_zero() || t.max_delay < t.base_delay {
            return bad(
                "auth.login_throttle needs free_attempts >= 1 and 0 < base_delay <= max_delay",
            );
        }
        let m = &self.auth.machine;
        if !(1024..=64 * 1024).contains(&m.max_jwt_bytes)
            || m.upstream_concurrency == 0
            || m.upstream_wait.is_zero()
        {
            return bad(
                "auth.machine needs max_jwt_bytes in 1024..=65536, upstream_concurrency >= 1 \
                 and a positive upstream_wait",
            );
        }
        if self.auth.max_concurrent_hashes == Some(0) {
            return bad("auth.max_concurrent_hashes must be at least 1");
        }
        if !(self.audit.retention_days.is_finite() && self.audit.retention_days > 0.0) {
            return bad("audit.retention_days must be a positive number");
        }
        if self.audit.retention_interval.is_zero() {
            return bad("audit.retention_interval must be positive");
        }
        for s in &self.audit.sinks {
            s.config
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("audit sink {}: {e}", s.name)))?;
        }
        let p = &self.plugins;
        if p.call_timeout.is_zero() || p.host_call_timeout.is_zero() {
            return bad("plugins.call_timeout and plugins.host_call_timeout must be positive");
        }
        if p.host_call_timeout >= p.call_timeout {
            return bad(
                "plugins.host_call_timeout must be shorter than plugins.call_timeout, so a failing host call is reported before the call's deadline",
            );
        }
        if !(1..=4096).contains(&p.memory_limit_mb) {
            return bad("plugins.memory_limit_mb must be 1-4096");
        }
        if !(1..=10_000).contains(&p.max_instances) {
            return bad("plugins.max_instances must be 1-10000");
        }
        if p.max_result_bytes < 1024 {
            return bad("plugins.max_result_bytes must be at least 1024");
        }
        p.connections
            .allowlist()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let r = &self.reaper;
        if r.interval.is_zero() || r.grace.is_zero() || r.revoke_timeout.is_zero() {
            return bad("reaper.interval, reaper.grace and reaper.revoke_timeout must be positive");
        }
        if r.grace <= r.revoke_timeout {
            return bad("reaper.grace must be longer than reaper.revoke_timeout");
        }
        if r.max_attempts == 0 || r.batch == 0 {
            return bad("reaper.max_attempts and reaper.batch must be at least 1");
        }
        for c in &self.auth.default_global_capabilities {
            match c.parse::<arcan_rbac::Capability>() {
                Ok(cap) if cap.is_global() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "`{c}` is not a global capability"
                    )));
                }
            }
        }
        Ok(())
    }
}

use arcan_util::duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        serde_norway::from_str::<Config>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = parse("server:\n  prot: 9000\n").expect_err("typo must fail");
        assert!(err.contains("prot"), "{err}");
        assert!(parse("verbose: true\n").is_err());
    }

    #[test]
    fn values_parse_and_validate() {
        let c = parse("server:\n  port: 9000\n  shutdown_grace: 5s\nauth:\n  login_ttl: 2h\n")
            .expect("valid");
        assert_eq!(c.server.port, 9000);
        assert_eq!(c.auth.login_ttl, Duration::from_secs(7200));
        c.validate().expect("valid");
        let c = parse("rate_limit:\n  per_ip: 0\n").expect("parses");
        assert!(c.validate().is_err());
        let c = parse("database_url: mysql://x\n").expect("parses");
        assert!(c.validate().is_err());
    }

    #[test]
    fn connection_allowlist_is_validated() {
        let c = parse(
            "plugins:\n  connections:\n    allow: ['db.internal:5432', '*.example:*', '[::1]:5432', 'unix:/run/pg']\n",
        )
        .expect("parses");
        c.validate().expect("valid");
        assert_eq!(c.plugins.connections.allow.len(), 4);
        let c = parse("plugins:\n  connections:\n    allow: ['db.internal']\n").expect("parses");
        let err = c.validate().expect_err("no port").to_string();
        assert!(
            err.contains("plugins.connections.allow: `db.internal`"),
            "{err}"
        );
        assert!(parse("plugins:\n  connections:\n    alow: []\n").is_err());
    }
}
