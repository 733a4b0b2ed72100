//! Random strings, passwords and generated names, from the operating system's CSPRNG
//! (`wasi:random` in a component, through `getrandom`).
//!
//! Every character is drawn uniformly from its alphabet (rejection sampling on random
//! bytes, no modulo bias). A failure to get randomness is [`ErrorKind::Internal`].
//!
//! ```
//! use arcan_plugin_sdk::random::{self, NameRules};
//!
//! let password = random::password(32)?;
//! assert_eq!(password.len(), 32);
//!
//! // `<prefix><role>_<16 random [a-z0-9]>`, at most 63 bytes, the role lower-cased and
//! // reduced to [a-z0-9_]:
//! let user = random::name("arcan_", "Read-Only", 63)?;
//! assert!(user.starts_with("arcan_read_only_") && user.len() == 16 + 16);
//!
//! // Other systems, other rules: IAM user names keep case, accept `+=,.@_-` and are
//! // joined with `-` here.
//! const IAM: NameRules = NameRules::new(64)
//!     .keep_case()
//!     .allow("+=,.@_-")
//!     .separator('-')
//!     .random_len(12);
//! let user = IAM.generate("arcan-", "Deploy Bot")?;
//! assert!(user.starts_with("arcan-Deploy-Bot-"), "{user}");
//! # Ok::<(), arcan_plugin_sdk::Error>(())
//! ```
//!
//! [`ErrorKind::Internal`]: crate::ErrorKind::Internal

use crate::{Error, Result};

/// `a-z` and `0-9`: the characters of [`name`]'s random part.
pub const LOWER_ALNUM: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
/// `a-z`, `A-Z` and `0-9`: the characters of a [`password`] (about 5.95 bits each).
pub const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::internal(format!("no randomness: {e}")))
}

/// `len` characters drawn uniformly from `alphabet`, which must be 1 to 128 ASCII
/// characters (an [`ErrorKind::Internal`](crate::ErrorKind::Internal) error otherwise: a
/// bug in the engine).
///
/// ```
/// let hex = arcan_plugin_sdk::random::string("0123456789abcdef", 8)?;
/// assert!(hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()));
/// # Ok::<(), arcan_plugin_sdk::Error>(())
/// ```
pub fn string(alphabet: &str, len: usize) -> Result<String> {
    let alphabet = alphabet.as_bytes();
    if alphabet.is_empty() || alphabet.len() > 128 || !alphabet.is_ascii() {
        return Err(Error::internal(
            "random::string needs an alphabet of 1 to 128 ASCII characters",
        ));
    }
    // The largest multiple of the alphabet's size that fits in a byte: bytes at or above
    // it are dropped, so that every character is equally likely.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
        }
    }
    Ok(out)
}

/// A password of `len` letters and digits ([`ALNUM`], about 5.95 bits each: 32 characters
/// are about 190 bits).
pub fn password(len: usize) -> Result<String> {
    string(ALNUM, len)
}

/// A fresh name for a user (or session, or key) created for `role`:
/// `<prefix><role>_<16 random [a-z0-9]>`, at most `max_len` bytes. The role name is
/// lower-cased, its characters other than `[a-z0-9_]` become `_`, and it is cut to fit;
/// when nothing of it fits (or it is empty), the name is `<prefix><random>`. `prefix` is
/// taken as is: check it where it is configured ([`NameRules::allows`]).
///
/// The same as [`NameRules::new(max_len)`](NameRules::new)`.generate(prefix, role)`; see
/// [`NameRules`] for other alphabets, separators and lengths.
pub fn name(prefix: &str, role: &str, max_len: usize) -> Result<String> {
    NameRules::new(max_len).generate(prefix, role)
}

/// How generated names look in the system an engine creates them in:
/// `<prefix><role part><separator><random>`, at most [`max_len`](NameRules::new) bytes.
///
/// The role part is the role name with each character the rules do not allow replaced by
/// the separator: ASCII letters (lower-cased unless [`keep_case`](NameRules::keep_case)),
/// digits, and the characters given to [`allow`](NameRules::allow) (by default `_`). It
/// is cut to [`max_role_len`](NameRules::max_role_len) and to what fits in `max_len`; an
/// empty role part leaves out the separator as well. The random part is
/// [`random_len`](NameRules::random_len) characters of [`LOWER_ALNUM`] (16 by default,
/// about 82 bits: names never collide and cannot be guessed).
///
/// The builder methods are `const`: describe a system's rules once, as a constant.
///
/// ```
/// use arcan_plugin_sdk::random::NameRules;
///
/// // PostgreSQL role names: at most 63 bytes (NAMEDATALEN - 1), 20 from the role.
/// const PG: NameRules = NameRules::new(63).max_role_len(20);
/// let name = PG.generate("arcan_", &"r".repeat(64))?;
/// assert_eq!(name.len(), 6 + 20 + 1 + 16);
/// assert!(name.chars().all(|c| PG.allows(c)));
/// assert!(!PG.allows('-') && !PG.allows('A'));
/// # Ok::<(), arcan_plugin_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    max_len: usize,
    max_role_len: usize,
    random_len: usize,
    separator: char,
    allow: &'static str,
    lowercase: bool,
}

impl NameRules {
    /// Names of at most `max_len` bytes: lower case `[a-z0-9_]`, joined with `_`, 16
    /// random characters, as much of the role as fits.
    pub const fn new(max_len: usize) -> Self {
        Self {
            max_len,
            max_role_len: usize::MAX,
            random_len: 16,
            separator: '_',
            allow: "_",
            lowercase: true,
        }
    }

    /// Take at most `len` characters from the role name.
    #[must_use]
    pub const fn max_role_len(mut self, len: usize) -> Self {
        self.max_role_len = len;
        self
    }

    /// End with `len` random characters (default 16).
    #[must_use]
    pub const fn random_len(mut self, len: usize) -> Self {
        self.random_len = len;
        self
    }

    /// Join the role part and the random part with `separator`, which also replaces the
    /// role's characters that are not allowed (default `_`). Allow it too (with
    /// [`allow`](NameRules::allow)) when it is not a letter, a digit or `_`.
    #[must_use]
    pub const fn separator(mut self, separator: char) -> Self {
        self.separator = separator;
        self
    }

    /// Allow the ASCII characters of `chars`, besides letters and digits (default `_`;
    /// this replaces it).
    #[must_use]
    pub const fn allow(mut self, chars: &'static str) -> Self {
        self.allow = chars;
        self
    }

    /// Keep upper-case letters of the role name (by default they are lower-cased).
    #[must_use]
    pub const fn keep_case(mut self) -> Self {
        self.lowercase = false;
        self
    }

    /// Whether `c` may appear in a name: an ASCII digit, an ASCII letter (lower case only
    /// unless [`keep_case`](NameRules::keep_case)) or one of the allowed characters. Meant
    /// for checking a configured prefix too.
    pub fn allows(&self, c: char) -> bool {
        c.is_ascii_digit()
            || c.is_ascii_lowercase()
            || (!self.lowercase && c.is_ascii_uppercase())
            || (c.is_ascii() && self.allow.contains(c))
    }

    /// A fresh name for `role` under `prefix` (taken as is). An
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error when the prefix
    /// and the random part alone are longer than `max_len`.
    pub fn generate(&self, prefix: &str, role: &str) -> Result<String> {
        let random = string(LOWER_ALNUM, self.random_len)?;
        self.compose(prefix, role, &random)
    }

    fn compose(&self, prefix: &str, role: &str, random: &str) -> Result<String> {
        let fixed = prefix.len() + random.len();
        if fixed > self.max_len {
            return Err(Error::invalid(format!(
                "the name prefix `{prefix}` is too long: generated names have at most {} characters, {} of them random",
                self.max_len,
                random.len()
            )));
        }
        // Bytes left for the role part and its separator; the part is cut there and at
        // `max_role_len` characters.
        let room = (self.max_len - fixed).saturating_sub(self.separator.len_utf8());
        let mut part = String::new();
        for c in role.chars().take(self.max_role_len) {
            let c = if self.lowercase {
                c.to_ascii_lowercase()
            } else {
                c
            };
            let c = if self.allows(c) { c } else { self.separator };
            if part.len() + c.len_utf8() > room {
                break;
            }
            part.push(c);
        }
        Ok(if part.is_empty() {
            format!("{prefix}{random}")
        } else {
            format!("{prefix}{part}{}{random}", self.separator)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strings_have_the_asked_length_and_alphabet() {
        let s = string("ab", 1000).unwrap();
        assert_eq!(s.len(), 1000);
        assert!(s.contains('a') && s.contains('b'));
        assert!(s.chars().all(|c| c == 'a' || c == 'b'));
        assert_eq!(string(LOWER_ALNUM, 0).unwrap(), "");
        assert_eq!(string("x", 3).unwrap(), "xxx");
        let big = "x".repeat(128);
        assert_eq!(string(&big, 5).unwrap(), "xxxxx");
    }

    #[test]
    fn bad_alphabets_are_internal_errors() {
        for alphabet in ["", "é", &"x".repeat(129)] {
            let e = string(alphabet, 4).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Internal, "{alphabet:?}");
        }
    }

    #[test]
    fn passwords_are_letters_and_digits_and_differ() {
        let p = password(128).unwrap();
        assert_eq!(p.len(), 128);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password(32).unwrap(), password(32).unwrap());
    }

    #[test]
    fn every_character_of_the_alphabet_comes_up() {
        let s = string(LOWER_ALNUM, 5000).unwrap();
        assert!(LOWER_ALNUM.chars().all(|c| s.contains(c)));
    }

    #[test]
    fn default_names_are_safe_identifiers() {
        let n = name("arcan_", "readonly", 63).unwrap();
        assert!(n.starts_with("arcan_readonly_"), "{n}");
        assert_eq!(n.len(), "arcan_readonly_".len() + 16);
        assert_ne!(n, name("arcan_", "readonly", 63).unwrap());
        let rules = NameRules::new(63);
        let n = rules
            .compose("p_", r#"x"; DROP ROLE postgres; --"#, "r")
            .unwrap();
        assert_eq!(n, "p_x___drop_role_postgres_____r");
        assert_eq!(rules.compose("", "Read-Only", "r").unwrap(), "read_only_r");
        assert_eq!(rules.compose("", "é-ü", "r").unwrap(), "____r");
        assert_eq!(rules.compose("p", "", "r").unwrap(), "pr");
        assert_eq!(name("", "", 63).unwrap().len(), 16);
    }

    #[test]
    fn names_fit_in_max_len() {
        let n = name(&"p".repeat(16), &"r".repeat(200), 63).unwrap();
        assert_eq!(n.len(), 63, "{n}");
        assert!(n.starts_with(&format!("{}{}_", "p".repeat(16), "r".repeat(30))));
        // Exactly the prefix and the random part: no room for the role or the separator.
        let n = name(&"p".repeat(47), "role", 63).unwrap();
        assert_eq!(n.len(), 63);
        assert!(!n.contains('_'), "{n}");
        // Room for the separator but not one character of the role.
        let n = name(&"p".repeat(46), "role", 63).unwrap();
        assert_eq!(n.len(), 62);
        let e = name(&"p".repeat(48), "role", 63).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.message().contains("too long"), "{e}");
    }

    #[test]
    fn role_parts_can_be_bounded() {
        let rules = NameRules::new(63).max_role_len(20);
        let n = rules.generate(&"p".repeat(16), &"r".repeat(64)).unwrap();
        assert_eq!(n.len(), 16 + 20 + 1 + 16);
        assert!(n.chars().all(|c| rules.allows(c)), "{n}");
    }

    #[test]
    fn other_rules() {
        const IAM: NameRules = NameRules::new(64)
            .keep_case()
            .allow("+=,.@_-")
            .separator('-')
            .random_len(12);
        assert_eq!(
            IAM.compose("a-", "we ird/ro%le", "xyz").unwrap(),
            "a-we-ird-ro-le-xyz"
        );
        assert_eq!(IAM.compose("a-", "Dev.Team", "x").unwrap(), "a-Dev.Team-x");
        let n = IAM.generate(&"p".repeat(32), &"r".repeat(200)).unwrap();
        assert_eq!(n.len(), 64, "{n}");
        assert!(n.chars().all(|c| IAM.allows(c)), "{n}");
        assert!(IAM.allows('A') && IAM.allows('@') && !IAM.allows(' '));
        assert!(!IAM.allows('é'));
        let dotted = NameRules::new(20).allow(".").separator('.');
        assert_eq!(dotted.compose("", "a_b", "r").unwrap(), "a.b.r");
    }
}
