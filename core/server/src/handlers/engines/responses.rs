//! Response bodies of the engine and plugin routes. Where a field carries JSON the engine or
//! the plugin defines (configuration, role definition, credential, JSON Schemas), it stays
//! `serde_json::Value` and is documented as free-form.

use std::collections::BTreeMap;

use salvo::oapi::ToSchema;
use serde::Serialize;
use serde_json::Value;

use arcan_engine::leases::{Issued, StoredRole, UnmountReport};
use arcan_engine::registry::{BUILTIN_KV, Installed};
use arcan_plugin_host::{Descriptor, EngineCapability, Manifest};
use arcan_store::MountRecord;
use arcan_util::rfc3339;

/// The built-in KV engine as listed among the mounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuiltinMount {
    /// Always `kv`.
    pub name: String,
    /// Always `builtin:kv`.
    pub plugin: String,
    /// Always true: the engine is part of the server.
    pub builtin: bool,
}

impl BuiltinMount {
    /// The built-in KV engine.
    pub fn kv() -> Self {
        Self {
            name: BUILTIN_KV.into(),
            plugin: "builtin:kv".into(),
            builtin: true,
        }
    }
}

/// A plugin engine mounted in a realm.
#[derive(Debug, Serialize, ToSchema)]
pub struct Mount {
    /// Mount name in the realm.
    pub name: String,
    /// Installed plugin name.
    pub plugin: String,
    /// Plugin version at mount time.
    pub version: String,
    /// sha256 of the component loaded at mount time.
    pub digest: String,
    /// Always false: the engine is a plugin.
    pub builtin: bool,
    /// The engine's normalised configuration (free-form JSON the engine defines, not secret).
    #[salvo(schema(value_type = Object))]
    pub config: Value,
    /// Host capabilities granted, e.g. `["host:sql"]`.
    pub grants: Vec<String>,
    /// Public view of the named connections (free-form JSON by connection name, no
    /// credentials).
    #[salvo(schema(value_type = Object))]
    pub connections: Value,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Id of the user who mounted it.
    pub created_by: String,
    /// Last change of its configuration or connection credentials (RFC 3339).
    pub updated_at: String,
}

impl From<&MountRecord> for Mount {
    fn from(m: &MountRecord) -> Self {
        Self {
            name: m.name.clone(),
            plugin: m.plugin.clone(),
            version: m.plugin_version.clone(),
            digest: m.digest.clone(),
            builtin: false,
            config: serde_json::from_str(&m.config).unwrap_or(Value::Null),
            grants: m.grants.clone(),
            connections: serde_json::from_str(&m.connections).unwrap_or(Value::Null),
            created_at: rfc3339(m.created_at),
            created_by: m.created_by.clone(),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// An engine of a realm as listed: the built-in `kv` or a mounted plugin.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MountEntry {
    /// The built-in KV engine.
    Builtin(BuiltinMount),
    /// A mounted plugin engine.
    Mounted(Box<Mount>),
}

/// The realm's engines.
#[derive(Debug, Serialize, ToSchema)]
pub struct MountList {
    /// The built-in `kv` first, then the mounts.
    pub items: Vec<MountEntry>,
}

/// What an engine can do beyond describing itself, in the manifest's spelling.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum EngineAbility {
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

impl From<EngineCapability> for EngineAbility {
    fn from(c: EngineCapability) -> Self {
        match c {
            EngineCapability::DynamicCredentials => Self::DynamicCredentials,
            EngineCapability::RootRotation => Self::RootRotation,
            EngineCapability::StaticRoles => Self::StaticRoles,
        }
    }
}

/// What an engine describes about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineDescription {
    /// Engine name.
    pub name: String,
    /// Engine version.
    pub version: String,
    /// JSON Schema of the configuration (free-form: the engine defines it).
    #[salvo(schema(value_type = Object))]
    pub config_schema: Value,
    /// JSON Schema of a role definition (free-form: the engine defines it).
    #[salvo(schema(value_type = Object))]
    pub role_schema: Value,
    /// Engine capabilities.
    pub capabilities: Vec<EngineAbility>,
}

impl From<Descriptor> for EngineDescription {
    fn from(d: Descriptor) -> Self {
        Self {
            name: d.name,
            version: d.version,
            config_schema: d.config_schema,
            role_schema: d.role_schema,
            capabilities: d.capabilities.into_iter().map(Into::into).collect(),
        }
    }
}

/// A mounted plugin engine with what its engine describes about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct DescribedMount {
    /// The mount.
    #[serde(flatten)]
    pub mount: Mount,
    /// The engine's own description.
    pub describe: EngineDescription,
    /// The plugin contract the engine was built against, e.g. `arcan:plugin@0.2.0`.
    pub contract: String,
}

/// One engine of a realm: the built-in `kv`, or a mounted plugin with its description.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MountDetail {
    /// The built-in KV engine.
    Builtin(BuiltinMount),
    /// A mounted plugin engine.
    Mounted(Box<DescribedMount>),
}

/// What unmounting did to the mount's leases.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unmounted {
    /// Leases revoked through the engine.
    pub revoked: usize,
    /// Leases that expire by themselves (nothing to revoke).
    pub expired: usize,
    /// Ids of the leases that could not be revoked (reported irrevocable when forced).
    pub failed: Vec<String>,
}

impl From<UnmountReport> for Unmounted {
    fn from(r: UnmountReport) -> Self {
        let UnmountReport {
            revoked,
            expired,
            failed,
        } = r;
        Self {
            revoked,
            expired,
            failed,
        }
    }
}

/// A role of an engine mount.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineRole {
    /// Role name.
    pub name: String,
    /// Seconds a credential lives unless the request asks for less.
    pub default_ttl: u64,
    /// Seconds a lease may live at most, renewals included.
    pub max_ttl: u64,
    /// The role definition as normalised by the engine (free-form JSON the engine defines).
    #[salvo(schema(value_type = Object))]
    pub definition: Value,
}

impl EngineRole {
    /// The public view of a stored role.
    pub fn new(name: &str, r: StoredRole) -> Self {
        Self {
            name: name.into(),
            default_ttl: r.default_ttl,
            max_ttl: r.max_ttl,
            definition: r.definition,
        }
    }
}

/// A mount's roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineRoleList {
    /// Roles by name.
    pub items: Vec<EngineRole>,
}

/// A credential, shown once, with its lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredential {
    /// The lease to renew or revoke it by.
    pub lease_id: String,
    /// Seconds until it expires.
    pub lease_duration: i64,
    /// Expiry (RFC 3339).
    pub expires_at: String,
    /// The lease may be renewed.
    pub renewable: bool,
    /// Revoking has work to do (otherwise the credential simply expires).
    pub revocable: bool,
    /// The credential (free-form JSON the engine defines; never stored).
    #[salvo(schema(value_type = Object))]
    pub data: Value,
}

impl From<Issued> for IssuedCredential {
    fn from(issued: Issued) -> Self {
        let l = &issued.lease;
        Self {
            lease_id: l.id.to_string(),
            lease_duration: (l.expires_at - l.issued_at) / 1000,
            expires_at: rfc3339(l.expires_at),
            renewable: l.renewable,
            revocable: l.revocable,
            data: issued.data,
        }
    }
}

/// The answer of a root rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RootRotated {
    /// Always true: the engine replaced its root credential.
    pub rotated: bool,
}

/// An installed plugin: its manifest and how it loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Who publishes it.
    pub publisher: String,
    /// One line for listings.
    pub description: String,
    /// The WIT package it was built against, e.g. `arcan:plugin@0.1.0`.
    pub wit: String,
    /// Declared capabilities: `host:*` and `engine:*`.
    pub capabilities: Vec<String>,
    /// sha256 of every other file of a signed package, by file name (absent when the
    /// manifest lists none, as an unsigned development plugin's may).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// sha256 of its component, when it loaded.
    pub digest: Option<String>,
    /// Why it did not load.
    pub error: Option<String>,
}

impl From<Installed> for PluginInfo {
    fn from(i: Installed) -> Self {
        // Destructured in full: a new manifest field is a decision about this listing.
        let Manifest {
            name,
            version,
            publisher,
            description,
            wit,
            capabilities,
            files,
        } = i.manifest;
        Self {
            name,
            version,
            publisher,
            description,
            wit,
            capabilities,
            files,
            digest: i.digest,
            error: i.error,
        }
    }
}

/// The installed plugins.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Plugins by name, each run through the load pipeline.
    pub items: Vec<PluginInfo>,
}
