//! Statement templates: SQL written by the operator with `{{name}}`, `{{password}}`,
//! `{{expiration}}` and `{{name_literal}}` placeholders, parsed once and rendered with every
//! value quoted for PostgreSQL (identifiers with `quote_ident`, literals with
//! `quote_literal`).
//!
//! The SQL around the placeholders is the operator's and is trusted as written; what fills
//! the placeholders (a generated name, a generated password, a timestamp) is always quoted,
//! so nothing a caller controls reaches a statement unquoted.

use arcan_plugin_sdk::sql::{quote_ident, quote_literal};

/// A value a template may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The generated user name, as a quoted identifier.
    Name,
    /// The generated password, as a quoted literal.
    Password,
    /// When the credential expires, as a quoted RFC 3339 UTC literal.
    Expiration,
    /// The generated user name, as a quoted literal (for `WHERE usename = …`).
    NameLiteral,
}

impl Placeholder {
    /// Every placeholder, by its name in a template.
    pub const ALL: [(&'static str, Placeholder); 4] = [
        ("name", Placeholder::Name),
        ("password", Placeholder::Password),
        ("expiration", Placeholder::Expiration),
        ("name_literal", Placeholder::NameLiteral),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// How it is written in a template, e.g. `{{name}}`.
    pub fn written(self) -> String {
        let name = Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n);
        format!("{{{{{name}}}}}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Sql(String),
    Value(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values a template is rendered with; `None` for those the operation does not have
/// (no password outside creation, no expiration at revocation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    /// The user name.
    pub name: &'a str,
    /// The password (creation only).
    pub password: Option<&'a str>,
    /// The expiration, RFC 3339 UTC (creation and renewal).
    pub expiration: Option<&'a str>,
}

fn known() -> String {
    Placeholder::ALL
        .iter()
        .map(|(_, p)| p.written())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Template {
    /// Parses `text`. `{{` must be closed by `}}` around a known placeholder name (spaces
    /// inside are allowed); a `}}` outside a placeholder is refused too.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        loop {
            let open = rest.find("{{");
            let close = rest.find("}}");
            match (open, close) {
                (None, None) => {
                    if !rest.is_empty() {
                        parts.push(Part::Sql(rest.to_owned()));
                    }
                    return Ok(Self { parts });
                }
                (Some(o), c) if c.is_none_or(|c| o < c) => {
                    if o > 0 {
                        parts.push(Part::Sql(rest[..o].to_owned()));
                    }
                    let after = &rest[o + 2..];
                    let Some(end) = after.find("}}") else {
                        return Err("unbalanced braces: `{{` is not closed by `}}`".into());
                    };
                    let inner = after[..end].trim();
                    let p = Placeholder::parse(inner).ok_or_else(|| {
                        format!("unknown placeholder {{{{{inner}}}}} (known: {})", known())
                    })?;
                    parts.push(Part::Value(p));
                    rest = &after[end + 2..];
                }
                _ => return Err("unbalanced braces: `}}` without an opening `{{`".into()),
            }
        }
    }

    /// Whether the template uses `p`.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.parts.contains(&Part::Value(p))
    }

    /// The placeholders it uses, in order of first use.
    pub fn placeholders(&self) -> Vec<Placeholder> {
        let mut out = Vec::new();
        for part in &self.parts {
            if let Part::Value(p) = part
                && !out.contains(p)
            {
                out.push(*p);
            }
        }
        out
    }

    /// The statement, every placeholder replaced by its quoted value. Fails when the
    /// template asks for a value `values` does not have.
    pub fn render(&self, values: &Values<'_>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Sql(s) => out.push_str(s),
                Part::Value(p) => {
                    let missing = || format!("{} is not available here", p.written());
                    let v = match p {
                        Placeholder::Name => quote_ident(values.name),
                        Placeholder::NameLiteral => quote_literal(values.name),
                        Placeholder::Password => {
                            quote_literal(values.password.ok_or_else(missing)?)
                        }
                        Placeholder::Expiration => {
                            quote_literal(values.expiration.ok_or_else(missing)?)
                        }
                    };
                    out.push_str(&v);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALL: Values<'static> = Values {
        name: "arcan_ro_abc",
        password: Some("pw"),
        expiration: Some("2030-01-02T03:04:05Z"),
    };

    #[test]
    fn renders_quoted_values() {
        let t = Template::parse(
            "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{ expiration }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&ALL).unwrap(),
            r#"CREATE ROLE "arcan_ro_abc" WITH LOGIN PASSWORD 'pw' VALID UNTIL '2030-01-02T03:04:05Z'"#
        );
        let t = Template::parse("WHERE usename = {{name_literal}};").unwrap();
        assert_eq!(t.render(&ALL).unwrap(), "WHERE usename = 'arcan_ro_abc';");
        assert_eq!(
            t.placeholders(),
            vec![Placeholder::NameLiteral],
            "only what is used"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_quotes() {
        let t =
            Template::parse("GRANT x TO {{name}}; SELECT {{name_literal}}, {{password}}").unwrap();
        let v = Values {
            name: r#"a"; DROP TABLE t; --"#,
            password: Some(r"p'); DROP ROLE x; --\"),
            expiration: None,
        };
        assert_eq!(
            t.render(&v).unwrap(),
            r#"GRANT x TO "a""; DROP TABLE t; --"; SELECT 'a"; DROP TABLE t; --', E'p''); DROP ROLE x; --\\'"#
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        let cases = [
            (
                "CREATE ROLE {{name}} PASSWORD {{pasword}}",
                "unknown placeholder {{pasword}}",
            ),
            ("CREATE ROLE {{name", "`{{` is not closed"),
            ("CREATE ROLE name}}", "`}}` without an opening"),
            ("{{}}", "unknown placeholder {{}}"),
            ("{{{name}}}", "unknown placeholder {{{name}}"),
            ("{{ name }} }} {{", "`}}` without an opening"),
        ];
        for (text, want) in cases {
            let e = Template::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn sql_braces_are_plain_text() {
        let t = Template::parse("SELECT '{1,2}'::int[], {{name}}").unwrap();
        assert_eq!(
            t.render(&ALL).unwrap(),
            r#"SELECT '{1,2}'::int[], "arcan_ro_abc""#
        );
        assert!(t.uses(Placeholder::Name) && !t.uses(Placeholder::Password));
    }

    #[test]
    fn missing_values_fail_to_render() {
        let t = Template::parse("ALTER ROLE {{name}} PASSWORD {{password}}").unwrap();
        let v = Values {
            name: "n",
            ..Values::default()
        };
        assert_eq!(
            t.render(&v).unwrap_err(),
            "{{password}} is not available here"
        );
    }
}
