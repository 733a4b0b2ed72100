//! What a JWT login role binds: audiences, subject, claims (exact or glob), client networks,
//! token age, and which claims are copied into the login's metadata.
//!
//! A role must bind `bound_subject` or `bound_claims`: an audience alone identifies nobody on
//! multi-tenant issuers (any GitHub repository can mint `aud: arcan`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use glob::Pattern;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::in_range;
use crate::error::ConfigError;
use crate::globs;

/// Most entries in any list or map of a role.
pub const MAX_ENTRIES: usize = 32;
/// Most values one bound claim may list.
pub const MAX_VALUES: usize = 64;
/// Longest string anywhere in a role.
pub const MAX_STRING: usize = 256;
/// Metadata keys a mapping may not target (the server sets them).
pub const RESERVED_TARGETS: [&str; 4] = ["method", "role", "subject", "issuer"];

/// How `bound_claims` strings compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundClaimsType {
    /// Equal strings.
    #[default]
    Exact,
    /// Glob patterns ([`crate::globs`]).
    Glob,
}

/// Where a claim is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSelector {
    /// A top-level claim.
    Name(String),
    /// A JSON pointer (`/nested/claim`).
    Pointer(String),
}

impl ClaimSelector {
    /// Parses a key: a leading `/` makes a JSON pointer.
    pub fn parse(field: &str, s: &str) -> Result<Self, ConfigError> {
        if s.is_empty() || s.len() > MAX_STRING {
            return Err(ConfigError::new(
                field,
                format!("claim names are 1-{MAX_STRING} characters"),
            ));
        }
        Ok(if s.starts_with('/') {
            Self::Pointer(s.to_owned())
        } else {
            Self::Name(s.to_owned())
        })
    }

    /// The claim's value in `claims`, if present.
    pub fn get<'a>(&self, claims: &'a serde_json::Map<String, Value>) -> Option<&'a Value> {
        match self {
            Self::Name(n) => claims.get(n),
            Self::Pointer(p) => {
                let (first, rest) = split_pointer(p);
                let top = claims.get(&first)?;
                if rest.is_empty() {
                    Some(top)
                } else {
                    top.pointer(rest)
                }
            }
        }
    }

    /// The key as configured.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Name(n) | Self::Pointer(n) => n,
        }
    }
}

/// `/a/b` → (`a`, `/b`) with the first segment unescaped (`~1` → `/`, `~0` → `~`).
fn split_pointer(p: &str) -> (String, &str) {
    let body = &p[1..];
    let (first, rest) = match body.find('/') {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    (first.replace("~1", "/").replace("~0", "~"), rest)
}

/// One expected value of a bound claim.
#[derive(Debug, Clone)]
pub enum Expected {
    /// A string, with its compiled glob when the role uses globs.
    Str(String, Option<Pattern>),
    /// A boolean (matches only a boolean).
    Bool(bool),
    /// A number (matches only a number of the same value).
    Number(serde_json::Number),
}

/// One `bound_claims` entry.
#[derive(Debug, Clone)]
pub struct BoundClaim {
    /// Where the claim is.
    pub selector: ClaimSelector,
    /// Any of these values passes.
    pub expected: Vec<Expected>,
}

/// A validated JWT login role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "JwtRoleDoc", into = "JwtRoleDoc")]
#[non_exhaustive]
pub struct JwtRoleConfig {
    /// Any overlap with the token's `aud` passes; empty: the token must have no `aud`.
    pub bound_audiences: Vec<String>,
    /// `sub` must equal this.
    pub bound_subject: Option<String>,
    /// Every entry must be present and match.
    pub bound_claims: Vec<BoundClaim>,
    /// Claim (name or pointer) → metadata key.
    pub claim_mappings: Vec<(ClaimSelector, String)>,
    /// `iat` required and at most this old.
    pub max_age: Option<Duration>,
    /// The client address must be in one of these (empty: any).
    pub bound_cidrs: Vec<IpNet>,
    doc: JwtRoleDoc,
}

/// The wire form of [`JwtRoleConfig`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtRoleDoc {
    #[serde(default)]
    bound_audiences: Vec<String>,
    #[serde(default)]
    bound_subject: Option<String>,
    #[serde(default)]
    bound_claims_type: BoundClaimsType,
    #[serde(default)]
    bound_claims: BTreeMap<String, Value>,
    #[serde(default)]
    claim_mappings: BTreeMap<String, String>,
    #[serde(default, with = "crate::duration::optional")]
    max_age: Option<Duration>,
    #[serde(default)]
    bound_cidrs: Vec<IpNet>,
}

fn bounded_str(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() || s.len() > MAX_STRING {
        return Err(ConfigError::new(
            field,
            format!("values are 1-{MAX_STRING} characters"),
        ));
    }
    Ok(())
}

fn expected(field: &str, v: &Value, kind: BoundClaimsType) -> Result<Expected, ConfigError> {
    Ok(match v {
        Value::String(s) => {
            bounded_str(field, s)?;
            let glob = match kind {
                BoundClaimsType::Glob => Some(globs::compile(field, s)?),
                BoundClaimsType::Exact => None,
            };
            Expected::Str(s.clone(), glob)
        }
        Value::Bool(b) => Expected::Bool(*b),
        Value::Number(n) => Expected::Number(n.clone()),
        _ => {
            return Err(ConfigError::new(
                field,
                "values are strings, numbers, booleans or a list of them",
            ));
        }
    })
}

impl TryFrom<JwtRoleDoc> for JwtRoleConfig {
    type Error = ConfigError;

    fn try_from(d: JwtRoleDoc) -> Result<Self, ConfigError> {
        if d.bound_subject.is_none() && d.bound_claims.is_empty() {
            return Err(ConfigError::new(
                "role",
                "bind bound_subject or bound_claims (an audience alone identifies nobody on a shared issuer)",
            ));
        }
        for (field, n) in [
            ("bound_audiences", d.bound_audiences.len()),
            ("bound_claims", d.bound_claims.len()),
            ("claim_mappings", d.claim_mappings.len()),
            ("bound_cidrs", d.bound_cidrs.len()),
        ] {
            if n > MAX_ENTRIES {
                return Err(ConfigError::new(
                    field,
                    format!("at most {MAX_ENTRIES} entries"),
                ));
            }
        }
        for a in &d.bound_audiences {
            bounded_str("bound_audiences", a)?;
        }
        if let Some(s) = &d.bound_subject {
            bounded_str("bound_subject", s)?;
        }
        let mut bound_claims = Vec::with_capacity(d.bound_claims.len());
        for (k, v) in &d.bound_claims {
            let field = format!("bound_claims.{k}");
            let selector = ClaimSelector::parse(&field, k)?;
            let expected = match v {
                Value::Array(items) if items.is_empty() || items.len() > MAX_VALUES => {
                    return Err(ConfigError::new(
                        field,
                        format!("lists have 1-{MAX_VALUES} values"),
                    ));
                }
                Value::Array(items) => items
                    .iter()
                    .map(|i| expected(&field, i, d.bound_claims_type))
                    .collect::<Result<Vec<_>, _>>()?,
                one => vec![expected(&field, one, d.bound_claims_type)?],
            };
            bound_claims.push(BoundClaim { selector, expected });
        }
        let mut targets = BTreeSet::new();
        let mut claim_mappings = Vec::with_capacity(d.claim_mappings.len());
        for (claim, target) in &d.claim_mappings {
            let field = format!("claim_mappings.{claim}");
            let selector = ClaimSelector::parse(&field, claim)?;
            if target.is_empty()
                || target.len() > 64
                || !target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            {
                return Err(ConfigError::new(
                    field,
                    "targets are 1-64 of [A-Za-z0-9_.-]",
                ));
            }
            if RESERVED_TARGETS.contains(&target.as_str()) {
                return Err(ConfigError::new(field, format!("`{target}` is reserved")));
            }
            if !targets.insert(target.clone()) {
                return Err(ConfigError::new(
                    field,
                    format!("`{target}` is targeted twice"),
                ));
            }
            claim_mappings.push((selector, target.clone()));
        }
        if let Some(age) = d.max_age {
            in_range(
                "max_age",
                age,
                Duration::from_secs(1),
                Duration::from_secs(7 * 24 * 3600),
            )?;
        }
        Ok(Self {
            bound_audiences: d.bound_audiences.clone(),
            bound_subject: d.bound_subject.clone(),
            bound_claims,
            claim_mappings,
            max_age: d.max_age,
            bound_cidrs: d.bound_cidrs.clone(),
            doc: d,
        })
    }
}

impl From<JwtRoleConfig> for JwtRoleDoc {
    fn from(c: JwtRoleConfig) -> Self {
        c.doc
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<JwtRoleConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_role_needs_a_subject_or_claims() {
        let e = parse(json!({"bound_audiences": ["arcan"]})).expect_err("aud only");
        assert!(e.contains("bound_subject or bound_claims"), "{e}");
        assert!(parse(json!({"bound_subject": "repo:a/b:ref:refs/heads/main"})).is_ok());
        assert!(parse(json!({"bound_claims": {"repository": "a/b"}})).is_ok());
    }

    #[test]
    fn role_fields_are_validated() {
        let cases = [
            (
                json!({"bound_claims": {"r": "a"}, "nope": 1}),
                "unknown field",
            ),
            (json!({"bound_claims": {"r": {"x": 1}}}), "bound_claims.r"),
            (json!({"bound_claims": {"r": []}}), "lists have"),
            (json!({"bound_claims": {"r": [null]}}), "bound_claims.r"),
            (
                json!({"bound_claims": {"r": "["}, "bound_claims_type": "glob"}),
                "not a glob",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "bound_claims_type": "regex"}),
                "unknown variant",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "claim_mappings": {"x": "role"}}),
                "reserved",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "claim_mappings": {"x": "t", "y": "t"}}),
                "twice",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "claim_mappings": {"x": "a b"}}),
                "targets",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "max_age": "0s"}),
                "max_age",
            ),
            (
                json!({"bound_claims": {"r": "a"}, "bound_cidrs": ["10.0.0.0/33"]}),
                "invalid",
            ),
            (json!({"bound_subject": ""}), "bound_subject"),
            (json!({"bound_subject": "x".repeat(257)}), "bound_subject"),
        ];
        for (v, want) in cases {
            let e = parse(v.clone()).expect_err(&v.to_string());
            assert!(e.contains(want), "{v}: {e}");
        }
        let aud: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        assert!(parse(json!({"bound_subject": "s", "bound_audiences": aud})).is_err());
    }

    #[test]
    fn round_trips_as_written() {
        let v = json!({"bound_audiences": ["a"], "bound_subject": null, "bound_claims_type": "glob",
            "bound_claims": {"/ref": ["refs/heads/*"], "ok": true}, "claim_mappings": {"repository": "repo"},
            "max_age": "1h", "bound_cidrs": ["10.0.0.0/8"]});
        let r = parse(v.clone()).expect("role");
        assert_eq!(r.bound_claims.len(), 2);
        assert!(matches!(
            r.bound_claims[0].selector,
            ClaimSelector::Pointer(_)
        ));
        assert_eq!(serde_json::to_value(&r).expect("ser"), v);
    }

    #[test]
    fn pointers_read_nested_and_escaped_claims() {
        let claims = json!({"a/b": {"c": 1}, "x": {"y": [5, 6]}});
        let m = claims.as_object().expect("obj");
        assert_eq!(
            ClaimSelector::Pointer("/a~1b/c".into()).get(m),
            Some(&json!(1))
        );
        assert_eq!(
            ClaimSelector::Pointer("/x/y/1".into()).get(m),
            Some(&json!(6))
        );
        assert_eq!(
            ClaimSelector::Name("a/b".into()).get(m),
            Some(&json!({"c": 1}))
        );
        assert_eq!(ClaimSelector::Pointer("/missing".into()).get(m), None);
    }
}
