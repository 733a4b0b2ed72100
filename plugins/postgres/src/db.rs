//! The SQL this engine runs through the host, and how host failures become engine errors.

use arcan_plugin_sdk::sql::{self, Statement};
use arcan_plugin_sdk::{Error, HostError, Result};

/// A host failure with what was being done, keeping its kind (`upstream` stays 502,
/// `invalid` 400, `denied` 403); `secret`, when given, is cut out of the message (a
/// server error can quote the statement near a syntax error).
pub fn failed(doing: &str, e: HostError, secret: Option<&str>) -> Error {
    let mut message = e.message().to_owned();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        message = message.replace(s, "[redacted]");
    }
    let kind = Error::from(e).kind();
    Error::new(kind, format!("{doing}: {message}"))
}

/// Runs `statements` in one transaction on `connection`: all of them or none. Each is sent
/// without parameters (the simple protocol), so one may hold several SQL statements.
pub fn run(connection: &str, statements: Vec<String>) -> Result<(), HostError> {
    let statements: Vec<Statement> = statements
        .into_iter()
        .map(|s| Statement::new(s, Vec::new()))
        .collect();
    sql::transaction(connection, &statements).map(|_| ())
}

/// Whether a role named `name` exists on the server.
pub fn role_exists(connection: &str, name: &str) -> Result<bool> {
    let rows = sql::query(
        connection,
        "SELECT 1 AS found FROM pg_roles WHERE rolname = $1",
        &[name.into()],
    )
    .map_err(|e| failed("checking whether the database user exists", e, None))?;
    Ok(!rows.is_empty())
}
