//! Generated user names and passwords.
//!
//! A name is `<prefix><role>_<16 random [a-z0-9]>`: the prefix from the mount configuration,
//! the Arcan role name reduced to `[a-z0-9_]` and at most 20 characters, and 16 random
//! characters (about 82 bits) so names never collide and cannot be guessed. It is at most
//! 16 + 20 + 1 + 16 = 53 bytes, under PostgreSQL's 63, and it is always quoted anyway.
//! Passwords are letters and digits drawn from the operating system's CSPRNG (WASI random).

use arcan_plugin_sdk::{Error, Result};

/// Longest part of a name taken from the role name.
pub const ROLE_PART_MAX: usize = 20;
/// Random characters at the end of every name.
pub const RANDOM_LEN: usize = 16;
/// Longest user name PostgreSQL keeps (NAMEDATALEN - 1).
pub const PG_NAME_MAX: usize = 63;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Whether `c` may appear in a generated name.
pub fn name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// The role name reduced to `[a-z0-9_]` (upper case lowered, anything else `_`), at most
/// [`ROLE_PART_MAX`] characters.
pub fn role_part(role: &str) -> String {
    role.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if name_char(c) { c } else { '_' })
        .take(ROLE_PART_MAX)
        .collect()
}

/// A fresh user name for `role` under `prefix` (already validated as `[a-z0-9_]{0,16}`).
pub fn username(prefix: &str, role: &str) -> Result<String> {
    let role = role_part(role);
    let random = random_string(LOWER_ALNUM, RANDOM_LEN)?;
    let name = if role.is_empty() {
        format!("{prefix}{random}")
    } else {
        format!("{prefix}{role}_{random}")
    };
    debug_assert!(name.len() <= PG_NAME_MAX && name.chars().all(name_char));
    Ok(name)
}

/// A fresh password of `len` letters and digits (about 5.95 bits each).
pub fn password(len: usize) -> Result<String> {
    random_string(ALNUM, len)
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling on random bytes).
fn random_string(alphabet: &[u8], len: usize) -> Result<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn role_names_become_safe_identifiers() {
        assert_eq!(role_part("readonly"), "readonly");
        assert_eq!(role_part("Read-Only"), "read_only");
        assert_eq!(
            role_part(r#"x"; DROP ROLE postgres; --"#),
            "x___drop_role_postgr"
        );
        assert_eq!(role_part("é-ü"), "___");
        assert_eq!(role_part(&"a".repeat(64)).len(), ROLE_PART_MAX);
    }

    #[test]
    fn names_are_bounded_and_random() {
        let long_prefix = "p".repeat(16);
        let a = username(&long_prefix, &"r".repeat(64)).unwrap();
        assert_eq!(a.len(), 16 + ROLE_PART_MAX + 1 + RANDOM_LEN);
        assert!(a.len() <= PG_NAME_MAX && a.chars().all(name_char), "{a}");
        let b = username("arcan_", "readonly").unwrap();
        assert!(b.starts_with("arcan_readonly_"), "{b}");
        assert_ne!(b, username("arcan_", "readonly").unwrap());
        assert_eq!(username("", "").unwrap().len(), RANDOM_LEN);
    }

    #[test]
    fn passwords_have_the_asked_length_and_alphabet() {
        let p = password(128).unwrap();
        assert_eq!(p.len(), 128);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password(32).unwrap(), password(32).unwrap());
    }
}
