//! Glob matching with Arcan's key-glob meaning: `*` and `?` stop at `/`, `**` (a whole
//! segment) crosses it, `[…]` classes; case-sensitive. So `refs/heads/*` matches
//! `refs/heads/main` but not `refs/heads/a/b` (write `refs/heads/**`).

use glob::{MatchOptions, Pattern};

use crate::error::ConfigError;

/// How bound values are matched.
pub const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Compiles `pattern` for `field`.
pub fn compile(field: &str, pattern: &str) -> Result<Pattern, ConfigError> {
    Pattern::new(pattern)
        .map_err(|e| ConfigError::new(field, format!("`{pattern}` is not a glob: {}", e.msg)))
}

/// Whether `value` matches `pattern`.
pub fn matches(pattern: &Pattern, value: &str) -> bool {
    pattern.matches_with(value, MATCH)
}

/// A list of name globs where `"*"` means any name and may not be mixed with others
/// (Vault's rule for service-account names and namespaces).
#[derive(Debug, Clone)]
pub struct NameGlobs {
    any: bool,
    patterns: Vec<Pattern>,
}

/// Most entries in one list.
pub const MAX_NAMES: usize = 64;

impl NameGlobs {
    /// Compiles a non-empty list.
    pub fn new(field: &str, names: &[String]) -> Result<Self, ConfigError> {
        if names.is_empty() {
            return Err(ConfigError::new(field, "at least one entry is required"));
        }
        if names.len() > MAX_NAMES {
            return Err(ConfigError::new(
                field,
                format!("at most {MAX_NAMES} entries"),
            ));
        }
        let any = names.iter().any(|n| n == "*");
        if any && names.len() > 1 {
            return Err(ConfigError::new(
                field,
                "`*` may not be mixed with other entries",
            ));
        }
        let mut patterns = Vec::with_capacity(names.len());
        for n in names {
            if n.is_empty() || n.len() > 253 {
                return Err(ConfigError::new(field, "entries are 1-253 characters"));
            }
            patterns.push(compile(field, n)?);
        }
        Ok(Self { any, patterns })
    }

    /// Whether `name` is bound.
    pub fn contains(&self, name: &str) -> bool {
        self.any || self.patterns.iter().any(|p| matches(p, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn star_stops_at_slash_and_double_star_crosses() {
        let p = compile("f", "refs/heads/*").expect("glob");
        assert!(matches(&p, "refs/heads/main"));
        assert!(!matches(&p, "refs/heads/a/b"));
        assert!(!matches(&p, "REFS/heads/main"));
        let pp = compile("f", "refs/heads/**").expect("glob");
        assert!(matches(&pp, "refs/heads/a/b"));
        assert!(compile("f", "[").is_err());
    }

    #[test]
    fn name_lists_follow_the_star_rule() {
        let g = NameGlobs::new("n", &names(&["api", "worker-*"])).expect("globs");
        assert!(g.contains("api") && g.contains("worker-7"));
        assert!(!g.contains("apix") && !g.contains("db"));
        assert!(
            NameGlobs::new("n", &names(&["*"]))
                .expect("any")
                .contains("x")
        );
        assert!(NameGlobs::new("n", &names(&["*", "api"])).is_err());
        assert!(NameGlobs::new("n", &[]).is_err());
        assert!(NameGlobs::new("n", &names(&[""])).is_err());
    }
}
