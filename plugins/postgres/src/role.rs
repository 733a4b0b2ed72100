//! Role definitions: the statements that create, renew and revoke a user, parsed by the
//! SDK (unknown keys refused, defaults filled in), validated in `validate_role` and stored
//! with every default filled in.
//!
//! What runs at issue is `creation_statements`, then the ACL lock when a grant is a privilege
//! on an object, then one `GRANT <grant> TO {{name}}` per entry of `grants`, in one
//! transaction.

use arcan_plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::template::{Placeholder, Template, Values};

/// The default creation statement.
pub const DEFAULT_CREATION: &str =
    "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}";

/// Takes a transaction-scoped advisory lock (key `"arcan_pg"` in ASCII, 7021784039138750567)
/// before privileges change: two transactions changing the ACL of one object at once (two
/// users granted `SELECT` on one table) fail with "tuple concurrently updated"; with the
/// lock, the second waits for the first to commit.
pub const ACL_LOCK: &str = "SELECT pg_advisory_xact_lock(7021784039138750567)";

/// The default revocation: make the connection's user a member of the generated role (a
/// non-superuser with CREATEROLE needs that to end its sessions and take over or drop what
/// it owns), end its sessions, take the ACL lock, hand over and drop what it owns (which
/// revokes its privileges), drop it.
pub const DEFAULT_REVOCATION: [&str; 6] = [
    "GRANT {{name}} TO CURRENT_USER",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {{name_literal}}",
    ACL_LOCK,
    "REASSIGN OWNED BY {{name}} TO CURRENT_USER",
    "DROP OWNED BY {{name}}",
    "DROP ROLE IF EXISTS {{name}}",
];

/// The default renewal.
pub const DEFAULT_RENEW: &str = "ALTER ROLE {{name}} VALID UNTIL {{expiration}}";

/// Most statements of one operation (the host runs at most 100 in a transaction).
pub const MAX_STATEMENTS: usize = 100;
/// Longest template or grant (the host takes statements up to 64 KiB).
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// A role definition: SQL templates with placeholders (`{{name}}`, `{{name_literal}}`,
/// `{{password}}`, `{{expiration}}`) and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Templates run at issue, in one transaction with the grants; each must use
    /// `{{name}}`.
    #[serde(default = "default_creation")]
    #[schemars(length(min = 1, max = 100))]
    pub creation_statements: Vec<String>,
    /// Privileges (or roles to be a member of), each applied as `GRANT <grant> TO
    /// {{name}}` after the creation statements; no `;`, no placeholders.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Templates run at revoke (and by the reaper), in one transaction.
    #[serde(default = "default_revocation")]
    #[schemars(length(min = 1, max = 100))]
    pub revocation_statements: Vec<String>,
    /// Templates run at renew, in one transaction.
    #[serde(default = "default_renew")]
    #[schemars(length(min = 1, max = 100))]
    pub renew_statements: Vec<String>,
}

fn default_creation() -> Vec<String> {
    owned(&[DEFAULT_CREATION])
}

fn default_revocation() -> Vec<String> {
    owned(&DEFAULT_REVOCATION)
}

fn default_renew() -> Vec<String> {
    owned(&[DEFAULT_RENEW])
}

/// A list of templates, which placeholders it may use, and whether each must use
/// `{{name}}`.
struct Kind {
    field: &'static str,
    allowed: &'static [Placeholder],
    needs_name: bool,
}

const CREATION: Kind = Kind {
    field: "creation_statements",
    allowed: &[
        Placeholder::Name,
        Placeholder::Password,
        Placeholder::Expiration,
        Placeholder::NameLiteral,
    ],
    needs_name: true,
};
const REVOCATION: Kind = Kind {
    field: "revocation_statements",
    allowed: &[Placeholder::Name, Placeholder::NameLiteral],
    needs_name: false,
};
const RENEW: Kind = Kind {
    field: "renew_statements",
    allowed: &[
        Placeholder::Name,
        Placeholder::Expiration,
        Placeholder::NameLiteral,
    ],
    needs_name: false,
};

/// The start of a statement for an error message.
fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn parse_list(kind: &Kind, list: &[String]) -> Result<Vec<Template>> {
    if list.is_empty() {
        return Err(Error::invalid(format!(
            "{} must not be empty (leave it out for the default)",
            kind.field
        )));
    }
    if list.len() > MAX_STATEMENTS {
        return Err(Error::invalid(format!(
            "{} has {} statements, more than the {MAX_STATEMENTS} allowed",
            kind.field,
            list.len()
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let bad =
            |why: String| Error::invalid(format!("{}[{i}] `{}`: {why}", kind.field, excerpt(text)));
        if text.trim().is_empty() {
            return Err(bad("the statement is empty".into()));
        }
        if text.len() > MAX_STATEMENT_BYTES {
            return Err(bad(format!("longer than {MAX_STATEMENT_BYTES} bytes")));
        }
        if text.contains('\0') {
            return Err(bad("contains a NUL character".into()));
        }
        let t = Template::parse(text).map_err(bad)?;
        if let Some(p) = t
            .placeholders()
            .into_iter()
            .find(|p| !kind.allowed.contains(p))
        {
            return Err(bad(format!(
                "{} cannot be used in {}",
                p.written(),
                kind.field
            )));
        }
        if kind.needs_name && !t.uses(Placeholder::Name) {
            return Err(bad(format!(
                "every creation statement must use {}",
                Placeholder::Name.written()
            )));
        }
        out.push(t);
    }
    Ok(out)
}

fn check_grant(i: usize, g: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid(format!("grants[{i}] `{}`: {why}", excerpt(g)));
    if g.trim().is_empty() {
        return Err(bad("the grant is empty"));
    }
    if g.len() > MAX_STATEMENT_BYTES {
        return Err(bad("too long"));
    }
    if g.contains(';') || g.contains('\0') {
        return Err(bad(
            "a grant is one GRANT fragment (no `;`); use creation_statements for more SQL",
        ));
    }
    if g.contains("{{") || g.contains("}}") {
        return Err(bad(
            "a grant takes no placeholders; it is applied as GRANT <grant> TO {{name}}",
        ));
    }
    Ok(())
}

/// Whether a grant gives a privilege on an object (`SELECT ON …`: it changes the object's
/// ACL) rather than membership in a role (`app_readers`: a row of its own). Every privilege
/// grant has the keyword `ON`; a membership has none (a role named `on` would be quoted and
/// is taken for a privilege, which only costs the lock).
fn on_an_object(grant: &str) -> bool {
    grant
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case("on"))
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl RoleDef {
    /// Checks the templates (placeholders, sizes, counts) and the grants.
    pub fn validate(&self) -> Result<()> {
        parse_list(&CREATION, &self.creation_statements)?;
        parse_list(&REVOCATION, &self.revocation_statements)?;
        parse_list(&RENEW, &self.renew_statements)?;
        for (i, g) in self.grants.iter().enumerate() {
            check_grant(i, g)?;
        }
        if self.creation_statements.len() + self.grants.len() + 1 > MAX_STATEMENTS {
            return Err(Error::invalid(format!(
                "creation_statements and grants together exceed the {MAX_STATEMENTS} statements allowed"
            )));
        }
        Ok(())
    }

    /// The statements that create the user: the creation statements, the ACL lock when a
    /// grant is a privilege on an object, and one `GRANT` per grant.
    pub fn creation(&self, values: &Values<'_>) -> Result<Vec<String>> {
        let mut out = render(&CREATION, &self.creation_statements, values)?;
        if self.grants.iter().any(|g| on_an_object(g)) {
            out.push(ACL_LOCK.to_owned());
        }
        let grants: Vec<String> = self
            .grants
            .iter()
            .map(|g| format!("GRANT {g} TO {}", Placeholder::Name.written()))
            .collect();
        out.extend(render(&CREATION, &grants, values)?);
        Ok(out)
    }

    /// The statements that revoke the user.
    pub fn revocation(&self, values: &Values<'_>) -> Result<Vec<String>> {
        render(&REVOCATION, &self.revocation_statements, values)
    }

    /// The statements that move the user's expiration.
    pub fn renewal(&self, values: &Values<'_>) -> Result<Vec<String>> {
        render(&RENEW, &self.renew_statements, values)
    }
}

fn render(kind: &Kind, list: &[String], values: &Values<'_>) -> Result<Vec<String>> {
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            Template::parse(text)
                .and_then(|t| t.render(values))
                .map_err(|why| Error::invalid(format!("{}[{i}]: {why}", kind.field)))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What `validate_role` does with `role`: the SDK's parse, then `validate`.
    fn parse(role: Value) -> Result<RoleDef> {
        let def: RoleDef = serde_json::from_value(role)?;
        def.validate()?;
        Ok(def)
    }

    fn values() -> Values<'static> {
        Values {
            name: "arcan_ro_x",
            password: Some("pw"),
            expiration: Some("2030-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn the_lock_key_is_the_one_in_the_statement() {
        let key = i64::from_be_bytes(*b"arcan_pg");
        assert_eq!(ACL_LOCK, format!("SELECT pg_advisory_xact_lock({key})"));
    }

    #[test]
    fn defaults_are_filled_in_and_stable() {
        let def = parse(json!({"grants": ["SELECT ON ALL TABLES IN SCHEMA public"]})).unwrap();
        let stored = serde_json::to_value(&def).unwrap();
        assert_eq!(stored["creation_statements"], json!([DEFAULT_CREATION]));
        assert_eq!(stored["revocation_statements"], json!(DEFAULT_REVOCATION));
        assert_eq!(stored["renew_statements"], json!([DEFAULT_RENEW]));
        assert_eq!(
            parse(stored).unwrap(),
            def,
            "the stored form parses to itself"
        );
        assert_eq!(parse(json!({})).unwrap().grants, Vec::<String>::new());
    }

    #[test]
    fn creation_runs_the_statements_then_the_grants() {
        let def = parse(json!({"grants": ["app_readers", "CONNECT ON DATABASE test"]})).unwrap();
        assert_eq!(
            def.creation(&values()).unwrap(),
            [
                r#"CREATE ROLE "arcan_ro_x" WITH LOGIN PASSWORD 'pw' VALID UNTIL '2030-01-01T00:00:00Z'"#,
                ACL_LOCK,
                r#"GRANT app_readers TO "arcan_ro_x""#,
                r#"GRANT CONNECT ON DATABASE test TO "arcan_ro_x""#,
            ]
        );
        let v = Values {
            password: None,
            expiration: None,
            ..values()
        };
        let revoke = def.revocation(&v).unwrap();
        assert_eq!(
            revoke[1],
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'arcan_ro_x'"
        );
        assert_eq!(revoke[5], r#"DROP ROLE IF EXISTS "arcan_ro_x""#);
        let count = |grants: Value| {
            let def = parse(json!({ "grants": grants })).unwrap();
            def.creation(&values()).unwrap().len()
        };
        assert_eq!(count(json!([])), 1, "no grants, no lock");
        assert_eq!(
            count(json!(["app_readers", "b"])),
            3,
            "memberships, no lock"
        );
        assert_eq!(
            count(json!(["a", "usage on schema x"])),
            4,
            "a privilege, the lock"
        );
        assert!(on_an_object("SELECT ON ALL TABLES IN SCHEMA public"));
        assert!(on_an_object("ALL PRIVILEGES ON\tTABLE \"x\""));
        assert!(!on_an_object("\"online\"") && !on_an_object("app_on"));
        let v = Values {
            password: None,
            ..values()
        };
        assert_eq!(
            def.renewal(&v).unwrap(),
            [r#"ALTER ROLE "arcan_ro_x" VALID UNTIL '2030-01-01T00:00:00Z'"#]
        );
    }

    #[test]
    fn bad_definitions_name_the_statement() {
        let cases = [
            (
                json!({"creation_statements": ["CREATE ROLE {{name}} PASSWORD {{pasword}}"]}),
                "creation_statements[0] `CREATE ROLE {{name}} PASSWORD {{pasword}}`: unknown placeholder {{pasword}}",
            ),
            (
                json!({"creation_statements": ["CREATE ROLE {{name"]}),
                "creation_statements[0] `CREATE ROLE {{name`: unbalanced braces",
            ),
            (
                json!({"creation_statements": [DEFAULT_CREATION, "GRANT x TO app"]}),
                "creation_statements[1] `GRANT x TO app`: every creation statement must use {{name}}",
            ),
            (
                json!({"creation_statements": []}),
                "creation_statements must not be empty",
            ),
            (
                json!({"revocation_statements": []}),
                "revocation_statements must not be empty",
            ),
            (
                json!({"renew_statements": [" "]}),
                "renew_statements[0] ` `: the statement is empty",
            ),
            (
                json!({"revocation_statements": ["ALTER ROLE {{name}} PASSWORD {{password}}"]}),
                "{{password}} cannot be used in revocation_statements",
            ),
            (
                json!({"renew_statements": ["ALTER ROLE {{name}} PASSWORD {{password}}"]}),
                "{{password}} cannot be used in renew_statements",
            ),
            (
                json!({"grants": ["SELECT ON t TO public; DROP TABLE t"]}),
                "grants[0]",
            ),
            (json!({"grants": ["{{password}}"]}), "takes no placeholders"),
            (json!({"grants": [""]}), "the grant is empty"),
            (json!({"grants": "SELECT ON t"}), "invalid type"),
            (json!({"grant": []}), "unknown field `grant`"),
            (
                json!({"grants": vec!["x"; 101]}),
                "exceed the 100 statements",
            ),
        ];
        for (role, want) in cases {
            let e = parse(role.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(want), "{role}: {e}");
        }
    }

    #[test]
    fn the_schema_has_the_defaults_and_bounds() {
        let s = arcan_plugin_sdk::json_schema::<RoleDef>();
        assert_eq!(s["additionalProperties"], false);
        let p = &s["properties"];
        assert_eq!(
            p["creation_statements"]["default"],
            json!([DEFAULT_CREATION])
        );
        assert_eq!(
            p["revocation_statements"]["default"],
            json!(DEFAULT_REVOCATION)
        );
        assert_eq!(p["renew_statements"]["default"], json!([DEFAULT_RENEW]));
        assert_eq!(p["grants"]["default"], json!([]));
        for list in [
            "creation_statements",
            "revocation_statements",
            "renew_statements",
        ] {
            assert_eq!(p[list]["minItems"], 1, "{list}");
            assert_eq!(p[list]["maxItems"], MAX_STATEMENTS, "{list}");
            assert_eq!(p[list]["items"]["type"], "string", "{list}");
        }
    }
}
