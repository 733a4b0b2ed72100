//! SQL on a named connection held by the host (capability `host:sql`, WIT import
//! `arcan:plugin/sql`).
//!
//! The engine names the connection (usually from its mount configuration); the address,
//! user and password stay in the host. Parameters are bound by the server (`$1`, `$2`, ...
//! for PostgreSQL); statements that cannot take parameters (`CREATE ROLE`, `GRANT`) use
//! [`quote_ident`] and [`quote_literal`].
//!
//! ```no_run
//! use arcan_plugin_sdk::sql;
//!
//! # fn f() -> Result<(), arcan_plugin_sdk::HostError> {
//! let rows = sql::query("main", "SELECT rolname FROM pg_roles WHERE rolname = $1", &["app".into()])?;
//! if let Some(name) = rows.get(0, "rolname").and_then(sql::Value::as_str) {
//!     println!("found {name}");
//! }
//! let create = format!(
//!     "CREATE ROLE {} LOGIN PASSWORD {}",
//!     sql::quote_ident("app_x"),
//!     sql::quote_literal("s3cr'et"),
//! );
//! sql::execute("main", &create, &[])?;
//! # Ok(()) }
//! ```

use crate::__private::arcan::plugin::sql as wit;
use crate::HostError;

/// A typed SQL value: a parameter or a column.
///
/// New contract versions may add types: a `match` on it needs a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
}

impl Value {
    /// Whether it is `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, when it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, when it is binary data.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// As JSON: bytes become an array of numbers, a non-finite float `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Text(s) => s.as_str().into(),
            Value::Bytes(b) => b.as_slice().into(),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$v(v.into())
            }
        }
    )*};
}

value_from!(
    bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float,
    String => Text, &str => Text, Vec<u8> => Bytes, &[u8] => Bytes,
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The rows of a query (fields may be added; an engine's unit tests build one with
/// [`new`](Rows::new)).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Rows as the host would return them (for unit tests).
    pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        Self { columns, rows }
    }

    /// The position of a column.
    pub fn column_index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// The value of `column` in row `row`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        self.rows.get(row)?.get(self.column_index(column)?)
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One statement of a [`transaction`]. Build it with [`new`](Statement::new) (fields may
/// be added).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement with parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// Runs a query on `connection` and returns its rows.
pub fn query(connection: &str, sql: &str, params: &[Value]) -> Result<Rows, HostError> {
    let rows = wit::query(connection, sql, &to_wit(params))?;
    Ok(Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|r| r.into_iter().map(from_wit).collect())
            .collect(),
    })
}

/// Runs a statement on `connection`; returns the number of rows affected.
pub fn execute(connection: &str, sql: &str, params: &[Value]) -> Result<u64, HostError> {
    Ok(wit::execute(connection, sql, &to_wit(params))?)
}

/// Runs statements in one transaction, all or none; returns the rows affected by each.
pub fn transaction(connection: &str, statements: &[Statement]) -> Result<Vec<u64>, HostError> {
    let statements: Vec<wit::Statement> = statements
        .iter()
        .map(|s| wit::Statement {
            sql: s.sql.clone(),
            params: to_wit(&s.params),
        })
        .collect();
    Ok(wit::transaction(connection, &statements)?)
}

/// Asks the host to give the connection's own (root) user a new password, apply it on
/// the server and store it. The engine never sees it.
pub fn rotate_root(connection: &str) -> Result<(), HostError> {
    Ok(wit::rotate_root(connection)?)
}

/// Quotes an identifier for PostgreSQL: wrapped in `"`, inner `"` doubled.
///
/// ```
/// use arcan_plugin_sdk::sql::quote_ident;
/// assert_eq!(quote_ident("app"), r#""app""#);
/// assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
/// ```
///
/// PostgreSQL refuses NUL characters anywhere in a statement, so a name holding one
/// makes the statement fail rather than change its meaning.
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for c in ident.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes a string literal for PostgreSQL like its `quote_literal`: wrapped in `'`, inner
/// `'` doubled and, when there is a backslash, written as an `E'...'` string with the
/// backslashes doubled, so the result means the same whatever
/// `standard_conforming_strings` is.
///
/// ```
/// use arcan_plugin_sdk::sql::quote_literal;
/// assert_eq!(quote_literal("it's"), "'it''s'");
/// assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
/// ```
pub fn quote_literal(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 3);
    if literal.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in literal.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn to_wit(params: &[Value]) -> Vec<wit::Value> {
    params
        .iter()
        .map(|v| match v {
            Value::Null => wit::Value::Null,
            Value::Bool(b) => wit::Value::Boolean(*b),
            Value::Int(i) => wit::Value::Int(*i),
            Value::Float(f) => wit::Value::Float(*f),
            Value::Text(s) => wit::Value::Text(s.clone()),
            Value::Bytes(b) => wit::Value::Bytes(b.clone()),
        })
        .collect()
}

fn from_wit(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Int(i) => Value::Int(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Bytes(b) => Value::Bytes(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_double_quotes() {
        assert_eq!(quote_ident(""), r#""""#);
        assert_eq!(quote_ident("User"), r#""User""#);
        assert_eq!(quote_ident(r#"a"b""c"#), r#""a""b""""c""#);
        assert_eq!(
            quote_ident(r#""; DROP TABLE x; --"#),
            r#""""; DROP TABLE x; --""#
        );
        assert_eq!(quote_ident("é'\\"), "\"é'\\\"");
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("o'clock"), "'o''clock'");
        assert_eq!(quote_literal("'; DROP ROLE x; --"), "'''; DROP ROLE x; --'");
        assert_eq!(quote_literal(r"\'"), r"E'\\'''");
        assert_eq!(quote_literal(r"a\\b"), r"E'a\\\\b'");
        assert_eq!(quote_literal("\"ü\""), "'\"ü\"'");
    }

    #[test]
    fn values_convert_both_ways() {
        let params: Vec<Value> = vec![
            Value::Null,
            true.into(),
            7i32.into(),
            1.5.into(),
            "t".into(),
            vec![1u8, 2].into(),
            None::<i64>.into(),
        ];
        let back: Vec<Value> = to_wit(&params).into_iter().map(from_wit).collect();
        assert_eq!(back, params);
        assert!(back[6].is_null());
    }

    #[test]
    fn values_as_json() {
        assert_eq!(Value::Int(3).to_json(), serde_json::json!(3));
        assert_eq!(Value::Float(f64::NAN).to_json(), serde_json::Value::Null);
        assert_eq!(
            Value::Bytes(vec![0, 255]).to_json(),
            serde_json::json!([0, 255])
        );
        assert_eq!(Value::Text("x".into()).to_json(), serde_json::json!("x"));
    }

    #[test]
    fn rows_by_column_name() {
        let rows = Rows {
            columns: vec!["a".into(), "b".into()],
            rows: vec![vec![Value::Int(1), Value::Text("x".into())]],
        };
        assert_eq!(rows.get(0, "b").and_then(Value::as_str), Some("x"));
        assert_eq!(rows.get(0, "c"), None);
        assert_eq!(rows.get(1, "a"), None);
        assert_eq!(rows.len(), 1);
    }
}
