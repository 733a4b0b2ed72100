//! The version-neutral model of the engine contract: what the host and the server work
//! with, whatever `arcan:plugin` version a component was built against.
//!
//! Each released contract version has its own generated bindings
//! ([`host::wit`](super::host::wit)); they convert to and from these types at the edge, so
//! no generated type reaches the engine registry, the lease code or the HTTP layer. A new
//! contract version adds a bindings module and its conversions, not a new shape here,
//! unless it adds something the host acts on.

use std::fmt;

use serde::Serialize;

/// A released version of the `arcan:plugin` contract this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `arcan:plugin@0.1.0`: free-form capability strings, errors without a retry hint.
    V0_1,
    /// `arcan:plugin@0.2.0`: typed capabilities, `unavailable` errors with `retry-after`.
    V0_2,
}

impl ContractVersion {
    /// Every version served, oldest first.
    pub const SUPPORTED: [ContractVersion; 2] = [ContractVersion::V0_1, ContractVersion::V0_2];
    /// The newest version (what the SDK builds against).
    pub const LATEST: ContractVersion = ContractVersion::V0_2;

    /// The full package reference, e.g. `arcan:plugin@0.2.0`.
    pub fn package(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "arcan:plugin@0.1.0",
            ContractVersion::V0_2 => "arcan:plugin@0.2.0",
        }
    }

    fn semver(self) -> semver::Version {
        match self {
            ContractVersion::V0_1 => semver::Version::new(0, 1, 0),
            ContractVersion::V0_2 => semver::Version::new(0, 2, 0),
        }
    }

    /// The served version a component's `X.Y.Z` resolves to: for 0.x the same minor with a
    /// patch not newer than the host's (a newer patch may use what this host lacks), for
    /// 1.x and later the same major, not newer.
    pub fn resolve(version: &str) -> Option<ContractVersion> {
        let theirs = semver::Version::parse(version).ok()?;
        Self::SUPPORTED.into_iter().find(|v| {
            let ours = v.semver();
            let same_line = if ours.major == 0 {
                theirs.major == 0 && theirs.minor == ours.minor
            } else {
                theirs.major == ours.major
            };
            same_line && theirs <= ours && theirs.pre.is_empty() && theirs.build.is_empty()
        })
    }

    /// Every served package, for messages: `arcan:plugin@0.1.0, arcan:plugin@0.2.0`.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.package())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.package())
    }
}

impl Serialize for ContractVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.package())
    }
}

/// What an engine can do beyond describing itself. Serialized with the manifest's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EngineCapability {
    /// `issue` returns leased credentials.
    #[serde(rename = "engine:dynamic_credentials")]
    DynamicCredentials,
    /// `rotate-root` replaces the engine's root credential.
    #[serde(rename = "engine:root_rotation")]
    RootRotation,
    /// Roles manage existing accounts.
    #[serde(rename = "engine:static_roles")]
    StaticRoles,
}

impl EngineCapability {
    /// The manifest spelling, e.g. `engine:root_rotation`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineCapability::DynamicCredentials => "engine:dynamic_credentials",
            EngineCapability::RootRotation => "engine:root_rotation",
            EngineCapability::StaticRoles => "engine:static_roles",
        }
    }

    /// Parses the manifest spelling (how 0.1.0 engines describe themselves).
    pub fn parse(s: &str) -> Option<EngineCapability> {
        [
            EngineCapability::DynamicCredentials,
            EngineCapability::RootRotation,
            EngineCapability::StaticRoles,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// What an engine describes about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// JSON Schema of the configuration.
    pub config_schema: serde_json::Value,
    /// JSON Schema of a role.
    pub role_schema: serde_json::Value,
    /// Engine capabilities.
    pub capabilities: Vec<EngineCapability>,
}

/// An issued credential, as the engine returned it.
#[derive(Debug, Clone)]
pub struct Credential {
    /// What the caller receives (JSON), once; never stored.
    pub data: String,
    /// Lifetime the engine granted, in seconds (0: what was asked).
    pub ttl_seconds: u64,
    /// Whether `renew` may extend it.
    pub renewable: bool,
    /// Whether `revoke` has anything to do.
    pub revocable: bool,
    /// Engine-private lease state (JSON), kept sealed with the lease.
    pub internal: String,
}

/// How an engine call failed, as the engine said; the server maps it to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong (400).
    InvalidInput,
    /// Something named does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The engine refuses the operation (403).
    Denied,
    /// The engine does not implement it (501).
    Unsupported,
    /// An external system failed (502).
    Upstream,
    /// Anything else (502 naming the plugin).
    Internal,
    /// Temporarily unable to serve; retry later (503). Since 0.2.0.
    Unavailable,
}

/// An error an engine export returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFailure {
    /// Its kind.
    pub kind: ErrorKind,
    /// Its message (for the API caller).
    pub message: String,
    /// When to retry, in seconds (`Retry-After`). Since 0.2.0.
    pub retry_after: Option<u32>,
}

/// Who and what an export call is for: the contract's `call-context`, filled in by the
/// host for every call (the plugin cannot choose it).
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The request id.
    pub request_id: String,
    /// The user behind the request.
    pub user_id: Option<String>,
    /// The token that made the request.
    pub token_id: Option<String>,
    /// The realm's id.
    pub realm_id: String,
    /// The realm's slug.
    pub realm: String,
    /// The mount name.
    pub mount: String,
    /// The lease concerned.
    pub lease_id: Option<String>,
    /// The role concerned.
    pub role: Option<String>,
}

/// Why a host function failed: an answer for the guest, or a trap that ends the call.
///
/// Host functions of every contract version return it (`trappable_error_type`); each
/// version's bindings turn it into their `host-error`, or into a trap.
#[derive(Debug)]
pub enum HostFault {
    /// The capability or named connection was not granted to this mount.
    Denied(String),
    /// The argument was refused (too large, malformed).
    Invalid(String),
    /// The external system failed.
    Upstream(String),
    /// The host cannot go on with this call: the instance traps.
    Trap(wasmtime::Error),
}

impl fmt::Display for HostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFault::Denied(m) => write!(f, "denied: {m}"),
            HostFault::Invalid(m) => write!(f, "invalid: {m}"),
            HostFault::Upstream(m) => write!(f, "upstream: {m}"),
            HostFault::Trap(e) => write!(f, "trap: {e:#}"),
        }
    }
}

impl std::error::Error for HostFault {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_resolve_within_their_line() {
        assert_eq!(
            ContractVersion::resolve("0.1.0"),
            Some(ContractVersion::V0_1)
        );
        assert_eq!(
            ContractVersion::resolve("0.2.0"),
            Some(ContractVersion::V0_2)
        );
        for refused in [
            "0.1.1",
            "0.2.1",
            "0.3.0",
            "1.0.0",
            "0.0.9",
            "0.2.0-rc.1",
            "0.1.0+build",
            "0.01.0",
            "0.1",
            "",
            "x",
        ] {
            assert_eq!(ContractVersion::resolve(refused), None, "{refused}");
        }
        assert_eq!(
            ContractVersion::supported_list(),
            "arcan:plugin@0.1.0, arcan:plugin@0.2.0"
        );
    }

    /// Every released folder in `wit/` is served, and the newest is [`ContractVersion::LATEST`].
    #[test]
    fn every_released_contract_is_served() {
        let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let mut released: Vec<semver::Version> = std::fs::read_dir(&wit)
            .expect("wit/")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                semver::Version::parse(name.strip_prefix("arcan-plugin-")?).ok()
            })
            .collect();
        released.sort();
        let served: Vec<semver::Version> = ContractVersion::SUPPORTED
            .iter()
            .map(|v| v.semver())
            .collect();
        assert_eq!(
            released, served,
            "wit/ folders and ContractVersion::SUPPORTED differ"
        );
        assert_eq!(released.last(), Some(&ContractVersion::LATEST.semver()));
    }

    #[test]
    fn capabilities_keep_the_manifest_spelling() {
        for c in [
            EngineCapability::DynamicCredentials,
            EngineCapability::RootRotation,
            EngineCapability::StaticRoles,
        ] {
            assert_eq!(EngineCapability::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::String(c.as_str().into()))
            );
        }
        assert_eq!(EngineCapability::parse("engine:everything"), None);
    }
}
