//! The plugin manifest: what a plugin says it is and which capabilities it needs.
//!
//! The first key of the two-key rule: a component may import only the host interfaces its
//! manifest declares, and the operator grants (a subset of) them when mounting.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PluginError;
use super::model::{ContractVersion, EngineCapability};

/// A host capability: access to one WIT import interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostCapability {
    /// `arcan:plugin/sql` on named connections.
    Sql,
    /// `arcan:plugin/http` through named endpoints.
    Http,
    /// `arcan:plugin/plugin-data`, scoped to the mount.
    Store,
    /// `arcan:plugin/audit`.
    Audit,
}

impl HostCapability {
    /// Every host capability.
    pub const ALL: [HostCapability; 4] = [Self::Sql, Self::Http, Self::Store, Self::Audit];

    /// The manifest spelling, e.g. `host:sql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sql => "host:sql",
            Self::Http => "host:http",
            Self::Store => "host:store",
            Self::Audit => "host:audit",
        }
    }

    /// The WIT interface (without package) the capability unlocks.
    pub fn interface(self) -> &'static str {
        match self {
            Self::Sql => "sql",
            Self::Http => "http",
            Self::Store => "plugin-data",
            Self::Audit => "audit",
        }
    }

    /// The capability that unlocks a WIT interface; `None` for interfaces every plugin
    /// may import (`log`, `types`).
    pub fn for_interface(iface: &str) -> Option<Option<Self>> {
        match iface {
            "log" | "types" => Some(None),
            other => Self::ALL
                .into_iter()
                .find(|c| c.interface() == other)
                .map(Some),
        }
    }
}

impl fmt::Display for HostCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HostCapability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown host capability `{s}`"))
    }
}

/// `manifest.json` of an installed plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[a-z0-9-]`, 1–64 characters.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Who publishes it.
    pub publisher: String,
    /// One line for listings.
    #[serde(default)]
    pub description: String,
    /// The WIT package it was built against, e.g. `arcan:plugin@0.1.0`.
    pub wit: String,
    /// Declared capabilities: `host:*` and `engine:*`.
    pub capabilities: Vec<String>,
    /// sha256 of every other file of a signed package (`engine.wasm`, …); covered by the
    /// signature, checked at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<std::collections::BTreeMap<String, String>>,
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Self, PluginError> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| PluginError::Manifest(format!("manifest.json: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), PluginError> {
        let bad = |m: String| Err(PluginError::Manifest(m));
        if !valid_name(&self.name) {
            return bad(format!(
                "plugin name `{}` must be 1-64 characters of a-z 0-9 -",
                self.name
            ));
        }
        if semver::Version::parse(&self.version).is_err() {
            return bad(format!(
                "version `{}` is not a semantic version",
                self.version
            ));
        }
        if self.publisher.trim().is_empty() {
            return bad("publisher is empty".into());
        }
        wit_compatible(&self.wit)?;
        for c in &self.capabilities {
            if c.starts_with("host:") {
                c.parse::<HostCapability>().map_err(PluginError::Manifest)?;
            } else if EngineCapability::parse(c).is_none() {
                return bad(format!("unknown capability `{c}`"));
            }
        }
        Ok(())
    }

    /// The contract version it was built against (checked when it was parsed).
    pub fn contract(&self) -> Result<ContractVersion, PluginError> {
        wit_compatible(&self.wit)
    }

    /// The host capabilities it declares.
    pub fn host_capabilities(&self) -> BTreeSet<HostCapability> {
        self.capabilities
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

/// Mount, plugin and connection names: 1–64 of `[a-z0-9-]`, starting with a letter or digit.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The served contract version an `arcan:plugin@X.Y.Z` reference resolves to (see
/// [`ContractVersion::resolve`]), or why the host refuses it.
pub fn wit_compatible(wit: &str) -> Result<ContractVersion, PluginError> {
    wit.strip_prefix("arcan:plugin@")
        .and_then(ContractVersion::resolve)
        .ok_or_else(|| {
            PluginError::Manifest(format!(
                "plugin targets `{wit}`; this host serves {}",
                ContractVersion::supported_list()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(caps: &[&str]) -> String {
        serde_json::json!({
            "name": "probe", "version": "0.1.0", "publisher": "tests",
            "wit": "arcan:plugin@0.1.0", "capabilities": caps,
        })
        .to_string()
    }

    #[test]
    fn parses_and_refuses() {
        let m = Manifest::parse(manifest(&["host:sql", "engine:root_rotation"]).as_bytes())
            .expect("valid");
        assert_eq!(
            m.host_capabilities().into_iter().collect::<Vec<_>>(),
            vec![HostCapability::Sql]
        );
        for bad in [&["host:fs"][..], &["engine:everything"][..]] {
            assert!(Manifest::parse(manifest(bad).as_bytes()).is_err());
        }
        let extra = r#"{"name":"a","version":"1.0.0","publisher":"p","wit":"arcan:plugin@0.1.0","capabilities":[],"exec":"x"}"#;
        assert!(Manifest::parse(extra.as_bytes()).is_err());
    }

    #[test]
    fn wit_versions() {
        assert_eq!(
            wit_compatible("arcan:plugin@0.1.0").ok(),
            Some(ContractVersion::V0_1)
        );
        assert_eq!(
            wit_compatible("arcan:plugin@0.2.0").ok(),
            Some(ContractVersion::V0_2)
        );
        for bad in [
            "arcan:plugin@0.3.0",
            "arcan:plugin@0.1.1",
            "other:plugin@0.1.0",
            "x",
        ] {
            assert!(wit_compatible(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("pg-main1"));
        for bad in ["", "-a", "A", "a_b", "a/b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
