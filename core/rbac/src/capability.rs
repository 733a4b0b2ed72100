//! Capabilities and the built-in roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! capabilities {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One right. Realm capabilities are granted by roles; `realms:manage` is global.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Capability { $(#[doc = $name] $variant),* }

        impl Capability {
            /// Every capability, in a stable order.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant),*];
            /// The wire name, such as `secrets:read`.
            pub fn as_str(self) -> &'static str {
                match self { $(Capability::$variant => $name),* }
            }
        }

        impl FromStr for Capability {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok(Capability::$variant),)*
                    other => Err(format!("unknown capability `{other}`")),
                }
            }
        }
    };
}

capabilities! {
    SecretsRead => "secrets:read",
    SecretsWrite => "secrets:write",
    SecretsDelete => "secrets:delete",
    SecretsList => "secrets:list",
    LeasesCreate => "leases:create",
    LeasesRead => "leases:read",
    LeasesRevoke => "leases:revoke",
    EnginesRead => "engines:read",
    EnginesManage => "engines:manage",
    TokensCreate => "tokens:create",
    PolicyManage => "policy:manage",
    AuditRead => "audit:read",
    RealmsManage => "realms:manage",
    AuditManage => "audit:manage",
    SysManage => "sys:manage",
    UsersManage => "users:manage",
    TokensManage => "tokens:manage",
    ConnectionsManage => "connections:manage",
    PluginsRead => "plugins:read",
    PolicyEscalate => "policy:escalate",
    AuthManage => "auth:manage",
}

/// Capabilities that are not scoped to a realm: operator rights. A token confined to a
/// realm, an environment or a key glob never holds one.
pub const GLOBAL_CAPABILITIES: &[Capability] = &[
    Capability::RealmsManage,
    Capability::AuditManage,
    Capability::SysManage,
    Capability::UsersManage,
    Capability::TokensManage,
    Capability::ConnectionsManage,
    Capability::PluginsRead,
    Capability::PolicyEscalate,
    Capability::AuthManage,
];

/// How a capability relates to the environment / key-glob narrowing of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// Acts on one key in one environment: both must fall inside the narrowing.
    Keyed,
    /// Lists an environment: the environment must fall inside; keys are filtered.
    Listing,
    /// Mints a token that inherits the narrowing: a narrowed grant covers it.
    Delegating,
    /// Not about keys or environments: a narrowed grant does not cover it.
    Unscoped,
}

impl Capability {
    /// True for capabilities held outside any realm.
    pub fn is_global(self) -> bool {
        GLOBAL_CAPABILITIES.contains(&self)
    }

    /// How the capability meets environment / key narrowing.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Capability::SecretsRead | Capability::SecretsWrite | Capability::SecretsDelete => {
                ScopeKind::Keyed
            }
            Capability::SecretsList => ScopeKind::Listing,
            Capability::TokensCreate => ScopeKind::Delegating,
            _ => ScopeKind::Unscoped,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

use Capability::*;

const ADMIN: &[Capability] = &[
    SecretsRead,
    SecretsWrite,
    SecretsDelete,
    SecretsList,
    LeasesCreate,
    LeasesRead,
    LeasesRevoke,
    EnginesRead,
    EnginesManage,
    TokensCreate,
    PolicyManage,
    AuditRead,
];
const MEMBER: &[Capability] = &[
    SecretsRead,
    SecretsWrite,
    SecretsDelete,
    SecretsList,
    LeasesCreate,
    LeasesRead,
    LeasesRevoke,
    EnginesRead,
    TokensCreate,
];
const VIEWER: &[Capability] = &[SecretsRead, SecretsList, LeasesRead, EnginesRead];

/// The capabilities of a built-in role (`admin`, `member`, `viewer`).
pub fn builtin_role(name: &str) -> Option<&'static [Capability]> {
    match name {
        "admin" => Some(ADMIN),
        "member" => Some(MEMBER),
        "viewer" => Some(VIEWER),
        _ => None,
    }
}

/// True when `name` is reserved for a built-in role.
pub fn is_builtin_role(name: &str) -> bool {
    builtin_role(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>().expect("parse"), *c);
        }
        assert!("secrets:root".parse::<Capability>().is_err());
    }

    #[test]
    fn builtin_roles_nest() {
        let admin = builtin_role("admin").expect("admin");
        for c in builtin_role("member").expect("member") {
            assert!(admin.contains(c));
        }
        assert!(
            !builtin_role("viewer")
                .expect("viewer")
                .contains(&SecretsWrite)
        );
        assert!(builtin_role("root").is_none());
    }
}
