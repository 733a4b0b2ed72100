//! The built-in KV engine: validation of keys and environments, and sealing of values
//! under the realm's data key before they reach the store.

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Longest environment name.
pub const MAX_ENV_LEN: usize = 32;

/// Validates a key: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key is empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("key longer than {MAX_KEY_LEN} bytes"));
    }
    for seg in key.split('/') {
        if seg.is_empty() {
            return Err("key has an empty segment (leading, trailing or double `/`)".into());
        }
        if seg == "." || seg == ".." {
            return Err("key segments `.` and `..` are not allowed".into());
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "key contains `{}`; allowed: A-Z a-z 0-9 . _ - and /",
                c.escape_default()
            ));
        }
    }
    Ok(())
}

/// Validates an environment name: 1–32 of `[a-z0-9_-]`.
pub fn validate_env(env: &str) -> Result<(), String> {
    let ok = !env.is_empty()
        && env.len() <= MAX_ENV_LEN
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "environment must be 1-{MAX_ENV_LEN} characters of a-z 0-9 _ -"
        ))
    }
}

pub use arcan_store::sealing::{SealError, open_value, seal_value};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in [
            "a",
            "app/db",
            "app/db.password",
            "A-b_c.d/e",
            &"k".repeat(MAX_KEY_LEN),
        ] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../etc",
            "a/./b",
            "a b",
            "a\u{0}b",
            "é",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn envs() {
        assert!(validate_env("prod").is_ok());
        assert!(validate_env("staging-2").is_ok());
        assert!(validate_env("").is_err());
        assert!(validate_env("Prod").is_err());
        assert!(validate_env(&"e".repeat(33)).is_err());
    }
}
