//! The host's side of the plugin manifest: the capability names it knows and the checks
//! only a host can make.
//!
//! The manifest type itself is the registry client's [`Manifest`] (re-exported here), the
//! one type every reader of `manifest.json` shares, with the checks that need no host
//! knowledge (name, version, publisher, `files`). This module adds functions over it: which
//! contract versions this host serves ([`wit_compatible`], [`check_for_host`]), which capability
//! names exist ([`HostCapability`], [`check_for_host`]) and which host capabilities a manifest
//! declares ([`host_capabilities`]).
//!
//! The first key of the two-key rule: a component may import only the host interfaces its
//! manifest declares, and the operator grants (a subset of) them when mounting.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

pub use arcan_registry_client::Manifest;
/// Mount, plugin and connection names: 1–64 of `[a-z0-9-]`, starting with a letter or digit.
pub use arcan_registry_client::manifest::valid_name;

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

/// The host's checks of a manifest, after the structural ones of [`Manifest::parse`] (or
/// [`parse_unsigned`]): it targets a contract version this host serves, and every
/// capability it declares is one this host knows (`host:*` a [`HostCapability`], `engine:*`
/// an [`EngineCapability`]). Returns that contract version.
pub fn check_for_host(manifest: &Manifest) -> Result<ContractVersion, PluginError> {
    let contract = wit_compatible(&manifest.wit)?;
    for c in &manifest.capabilities {
        if c.starts_with("host:") {
            c.parse::<HostCapability>().map_err(PluginError::Manifest)?;
        } else if EngineCapability::parse(c).is_none() {
            return Err(PluginError::Manifest(format!("unknown capability `{c}`")));
        }
    }
    Ok(contract)
}

/// Parses the manifest of an unsigned plugin directory (loaded only under
/// `plugins.allow_unsigned`): the registry client's checks of an unpacked manifest, whose
/// `files` may be absent because no signature covers them. Run [`check_for_host`] on the result.
pub fn parse_unsigned(bytes: &[u8]) -> Result<Manifest, PluginError> {
    Manifest::parse_unpacked(bytes).map_err(|e| match e {
        arcan_registry_client::Error::Manifest(m) => PluginError::Manifest(m),
        other => PluginError::Manifest(other.to_string()),
    })
}

/// The host capabilities a manifest declares (the first key of the two-key rule).
pub fn host_capabilities(manifest: &Manifest) -> BTreeSet<HostCapability> {
    manifest
        .capabilities
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
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

    fn parse_and_check(json: &str) -> Result<Manifest, PluginError> {
        let m = parse_unsigned(json.as_bytes())?;
        check_for_host(&m)?;
        Ok(m)
    }

    #[test]
    fn parses_and_refuses() {
        let m = parse_and_check(&manifest(&["host:sql", "engine:root_rotation"])).expect("valid");
        assert_eq!(
            host_capabilities(&m).into_iter().collect::<Vec<_>>(),
            vec![HostCapability::Sql]
        );
        for (bad, why) in [
            (&["host:fs"][..], "unknown host capability `host:fs`"),
            (
                &["engine:everything"][..],
                "unknown capability `engine:everything`",
            ),
        ] {
            let err = parse_and_check(&manifest(bad)).expect_err(why);
            assert!(err.to_string().contains(why), "{err}");
        }
        let extra = r#"{"name":"a","version":"1.0.0","publisher":"p","wit":"arcan:plugin@0.1.0","capabilities":[],"exec":"x"}"#;
        assert!(parse_and_check(extra).is_err());
        // The registry client's checks, reported as the host's manifest errors.
        let unnamed = r#"{"name":"A","version":"1.0.0","publisher":"p","wit":"arcan:plugin@0.1.0","capabilities":[]}"#;
        let err = parse_and_check(unnamed).expect_err("bad name");
        assert_eq!(
            err.to_string(),
            "invalid plugin manifest: plugin name `A` must be 1-64 characters of a-z 0-9 -"
        );
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
