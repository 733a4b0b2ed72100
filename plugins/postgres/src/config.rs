//! The mount configuration: which host-held connection to use, how generated names start
//! and how long passwords are. The SDK parses it (unknown keys refused, defaults filled
//! in, the schema derived from the type); `configure` validates it once, and the stored
//! form has every default filled in.

use arcan_plugin_sdk::prelude::*;
use arcan_plugin_sdk::random::NameRules;
use serde::{Deserialize, Serialize};

/// Longest `username_prefix`.
pub const PREFIX_MAX: usize = 16;
/// Shortest and longest `password_length`.
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<usize> = 16..=128;

/// Generated user names: `<prefix><role>_<16 random [a-z0-9]>`, the role name lower-cased,
/// reduced to `[a-z0-9_]` and cut to 20 characters. With a prefix of at most 16 that is at
/// most 16 + 20 + 1 + 16 = 53 bytes, under PostgreSQL's 63 (NAMEDATALEN - 1); names are
/// always quoted anyway.
pub const NAMES: NameRules = NameRules::new(63).max_role_len(20);

/// The mount configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// Name of the mount's host-held `postgres` connection (its user creates and drops
    /// the database users).
    #[serde(default = "default_connection")]
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,64}$"))]
    pub connection: String,
    /// Start of every generated user name: `[a-z0-9_]`, at most 16 characters.
    #[serde(default = "default_prefix")]
    #[schemars(regex(pattern = r"^[a-z0-9_]{0,16}$"))]
    pub username_prefix: String,
    /// Characters of every generated password, 16 to 128.
    #[serde(default = "default_password_length")]
    #[schemars(range(min = 16, max = 128))]
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
    /// What the schema says and serde cannot check: the connection name, the prefix's
    /// characters and length, the password length.
    pub fn validate(&self) -> Result<()> {
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
        if p.len() > PREFIX_MAX || !p.chars().all(|c| NAMES.allows(c)) {
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What `configure` does with `config`: the SDK's parse, then `validate`.
    fn configure(config: Value) -> Result<MountConfig> {
        let c: MountConfig = serde_json::from_value(config)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_fill_an_empty_configuration() {
        let c = configure(json!({})).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"connection": "db", "username_prefix": "arcan_", "password_length": 32})
        );
        let c = configure(json!({"connection": "main-db", "username_prefix": "",
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
        ];
        for (config, want) in cases {
            let e = configure(config.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(want), "{config}: {e}");
        }
    }

    #[test]
    fn the_schema_says_what_validate_checks() {
        let s = arcan_plugin_sdk::json_schema::<MountConfig>();
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        let p = &s["properties"];
        assert_eq!(p["connection"]["default"], "db");
        assert_eq!(p["connection"]["pattern"], "^[a-z0-9-]{1,64}$");
        assert_eq!(p["username_prefix"]["default"], "arcan_");
        assert_eq!(p["username_prefix"]["pattern"], "^[a-z0-9_]{0,16}$");
        assert_eq!(p["password_length"]["default"], 32);
        assert_eq!(
            (
                &p["password_length"]["minimum"],
                &p["password_length"]["maximum"]
            ),
            (&json!(16), &json!(128))
        );
        assert!(s.get("required").is_none(), "every key has a default: {s}");
    }

    #[test]
    fn names_are_bounded_and_random() {
        let long_prefix = "p".repeat(PREFIX_MAX);
        let a = NAMES.generate(&long_prefix, &"r".repeat(64)).unwrap();
        assert_eq!(a.len(), 16 + 20 + 1 + 16);
        assert!(a.chars().all(|c| NAMES.allows(c)), "{a}");
        let b = NAMES.generate("arcan_", "read-only").unwrap();
        assert!(b.starts_with("arcan_read_only_"), "{b}");
        assert_ne!(b, NAMES.generate("arcan_", "read-only").unwrap());
        assert_eq!(NAMES.generate("", "").unwrap().len(), 16);
    }
}
