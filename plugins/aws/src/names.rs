//! Generated IAM user names and STS session names: `<prefix><role>-<random>`, at most 64
//! characters of `[A-Za-z0-9+=,.@_-]` (what both IAM user names and role session names
//! accept).

use arcan_plugin_sdk::{Error, Result};

/// Longest IAM user name and role session name.
pub const MAX_NAME: usize = 64;
/// Longest `username_prefix`: leaves room for the role and the random part.
pub const MAX_PREFIX: usize = 32;
/// Random characters at the end of every name (36^12, about 62 bits).
const RANDOM_LEN: usize = 12;
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Whether `c` may appear in an IAM user name or a role session name.
pub fn iam_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// `<prefix><role>-<random>`: the role's unsafe characters become `-` and it is cut so
/// that the whole name fits in [`MAX_NAME`]. `prefix` must already be IAM-safe and at
/// most [`MAX_PREFIX`] long (the configuration checks it).
pub fn generate(prefix: &str, role: &str) -> Result<String> {
    let random = random_string(RANDOM_LEN)?;
    Ok(compose(prefix, role, &random))
}

fn compose(prefix: &str, role: &str, random: &str) -> String {
    let room = MAX_NAME.saturating_sub(prefix.len() + 1 + random.len());
    let role: String = role
        .chars()
        .map(|c| if iam_safe(c) { c } else { '-' })
        .take(room)
        .collect();
    let role = if role.is_empty() { "cred".into() } else { role };
    let mut name = format!("{prefix}{role}-{random}");
    name.truncate(MAX_NAME);
    name
}

/// `len` characters drawn uniformly from `[a-z0-9]` (rejection sampling on random bytes).
fn random_string(len: usize) -> Result<String> {
    let limit = 256 - 256 % LOWER_ALNUM.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(LOWER_ALNUM[usize::from(b) % LOWER_ALNUM.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_bounded() {
        let n = generate("arcan-", "dev").unwrap();
        assert!(n.starts_with("arcan-dev-"), "{n}");
        assert_eq!(n.len(), "arcan-dev-".len() + RANDOM_LEN);
        assert_ne!(n, generate("arcan-", "dev").unwrap());
        let long = "r".repeat(200);
        let n = generate(&"p".repeat(MAX_PREFIX), &long).unwrap();
        assert_eq!(n.len(), MAX_NAME, "{n}");
        assert!(n.chars().all(iam_safe), "{n}");
        assert!(n.starts_with(&"p".repeat(MAX_PREFIX)));
    }

    #[test]
    fn unsafe_role_characters_are_replaced() {
        let n = compose("a-", "we ird/ro%le", "xyz");
        assert_eq!(n, "a-we-ird-ro-le-xyz");
        assert_eq!(compose("a-", "", "xyz"), "a-cred-xyz");
    }
}
