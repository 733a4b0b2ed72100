//! The mount configuration: which host-held connection to use, how generated names start
//! and how long passwords are. Validated once in `configure`; the stored (normalised) form
//! has every default filled in.

use arcan_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::names::name_char;

/// Longest `username_prefix`.
pub const PREFIX_MAX: usize = 16;
/// Shortest and longest `password_length`.
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<usize> = 16..=128;

/// A validated mount configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// Name of the host-held `postgres` connection (its user creates and drops roles).
    #[serde(default = "default_connection")]
    pub connection: String,
    /// Start of every generated user name, `[a-z0-9_]`, at most 16 characters.
    #[serde(default = "default_prefix")]
    pub username_prefix: String,
    /// Characters of every generated password, 16 to 128.
    #[serde(default = "default_password_length")]
    pub password_length: usize,
}

fn default_connection() -> String {
    "db".into()
}

fn default_prefix() -> String {
    "arcan_".into()
}

fn default_password_length() -> usize {
    32
}

impl MountConfig {
    /// Parses and validates a configuration (unknown keys refused, defaults filled in).
    pub fn parse(config: &Value) -> Result<Self> {
        let config = match config {
            Value::Null => json!({}),
            Value::Object(_) => config.clone(),
            _ => {
                return Err(Error::invalid(
                    "the postgres mount configuration must be a JSON object",
                ));
            }
        };
        let c: MountConfig = serde_json::from_value(config)
            .map_err(|e| Error::invalid(format!("postgres mount configuration: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let c = &self.connection;
        if c.is_empty()
            || c.len() > 64
            || !c
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            return Err(Error::invalid(format!(
                "connection `{c}` must be the name of a mount connection: 1-64 characters of a-z 0-9 -"
            )));
        }
        let p = &self.username_prefix;
        if p.len() > PREFIX_MAX || !p.chars().all(name_char) {
            return Err(Error::invalid(format!(
                "username_prefix `{p}` must be at most {PREFIX_MAX} characters of a-z 0-9 _"
            )));
        }
        if !PASSWORD_LENGTHS.contains(&self.password_length) {
            return Err(Error::invalid(format!(
                "password_length must be {} to {}, not {}",
                PASSWORD_LENGTHS.start(),
                PASSWORD_LENGTHS.end(),
                self.password_length
            )));
        }
        Ok(())
    }

    /// The stored form.
    pub fn to_json(&self) -> Value {
        json!({
            "connection": self.connection,
            "username_prefix": self.username_prefix,
            "password_length": self.password_length,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_configuration() {
        let c = MountConfig::parse(&json!({})).unwrap();
        assert_eq!(
            c.to_json(),
            json!({"connection": "db", "username_prefix": "arcan_", "password_length": 32})
        );
        assert_eq!(MountConfig::parse(&Value::Null).unwrap(), c);
        let c = MountConfig::parse(&json!({"connection": "main-db", "username_prefix": "",
            "password_length": 128}))
        .unwrap();
        assert_eq!(c.connection, "main-db");
    }

    #[test]
    fn bad_configurations_are_invalid() {
        let cases = [
            (json!({"conection": "db"}), "unknown field `conection`"),
            (json!({"connection": ""}), "connection ``"),
            (json!({"connection": "DB"}), "a-z 0-9 -"),
            (json!({"username_prefix": "Arcan"}), "username_prefix"),
            (json!({"username_prefix": "a".repeat(17)}), "at most 16"),
            (json!({"username_prefix": "x\"; --"}), "username_prefix"),
            (json!({"password_length": 15}), "16 to 128, not 15"),
            (json!({"password_length": 129}), "not 129"),
            (json!({"password_length": "32"}), "invalid type"),
            (json!([]), "must be a JSON object"),
        ];
        for (config, want) in cases {
            let e = MountConfig::parse(&config).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(want), "{config}: {e}");
        }
    }
}
