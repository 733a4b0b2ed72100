//! Errors an engine returns, and errors the host functions return to it.

use std::fmt;

use crate::__private::arcan::plugin::types as wit;

/// The result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an engine operation failed; the host maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller's input is wrong (400).
    InvalidInput,
    /// Something named does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The engine refuses the operation (403).
    Denied,
    /// The engine does not implement the operation (501).
    Unsupported,
    /// An external system (database, API) failed or is unreachable (502).
    Upstream,
    /// Anything else (the host reports 502 naming the plugin).
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Denied => "denied",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Internal => "internal",
        })
    }
}

/// An error returned by an engine operation: a kind and a message for the caller.
///
/// The message reaches the API caller: never put a secret in it.
///
/// ```
/// use arcan_plugin_sdk::{Error, ErrorKind};
///
/// let e = Error::invalid("role.mode is missing");
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// assert_eq!(e.message(), "role.mode is missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The caller's input is wrong ([`ErrorKind::InvalidInput`]).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Something named does not exist ([`ErrorKind::NotFound`]).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The request conflicts with the current state ([`ErrorKind::Conflict`]).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// The engine refuses the operation ([`ErrorKind::Denied`]).
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }

    /// The engine does not implement `operation` ([`ErrorKind::Unsupported`]).
    pub fn unsupported(operation: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("{operation} is not supported by this engine"),
        )
    }

    /// An external system failed ([`ErrorKind::Upstream`]).
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message)
    }

    /// Anything else ([`ErrorKind::Internal`]).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// A host function failed: [`HostError::Denied`] becomes [`ErrorKind::Denied`],
/// [`HostError::Invalid`] [`ErrorKind::InvalidInput`], [`HostError::Upstream`]
/// [`ErrorKind::Upstream`], so `?` forwards host failures with the right status.
impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Denied(m) => Self::new(ErrorKind::Denied, m),
            HostError::Invalid(m) => Self::new(ErrorKind::InvalidInput, m),
            HostError::Upstream(m) => Self::new(ErrorKind::Upstream, m),
        }
    }
}

/// A JSON document did not have the expected shape: [`ErrorKind::InvalidInput`]. Meant
/// for `serde_json::from_value(role.clone())?` on configurations and roles.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::invalid(e.to_string())
    }
}

/// An error returned by a host function ([`sql`](crate::sql), [`http`](crate::http),
/// [`data`](crate::data)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The capability or the named connection was not granted to this mount.
    Denied(String),
    /// The argument was refused (too large, malformed).
    Invalid(String),
    /// The external system failed (connection refused, SQL error, timeout).
    Upstream(String),
}

impl HostError {
    /// The host's message.
    pub fn message(&self) -> &str {
        match self {
            HostError::Denied(m) | HostError::Invalid(m) | HostError::Upstream(m) => m,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Denied(m) => write!(f, "denied by the host: {m}"),
            HostError::Invalid(m) => write!(f, "refused by the host: {m}"),
            HostError::Upstream(m) => write!(f, "upstream failure: {m}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<wit::HostError> for HostError {
    fn from(e: wit::HostError) -> Self {
        match e {
            wit::HostError::Denied(m) => HostError::Denied(m),
            wit::HostError::Invalid(m) => HostError::Invalid(m),
            wit::HostError::Upstream(m) => HostError::Upstream(m),
        }
    }
}

impl From<Error> for wit::EngineError {
    fn from(e: Error) -> Self {
        let kind = match e.kind {
            ErrorKind::InvalidInput => wit::ErrorKind::InvalidInput,
            ErrorKind::NotFound => wit::ErrorKind::NotFound,
            ErrorKind::Conflict => wit::ErrorKind::Conflict,
            ErrorKind::Denied => wit::ErrorKind::Denied,
            ErrorKind::Unsupported => wit::ErrorKind::Unsupported,
            ErrorKind::Upstream => wit::ErrorKind::Upstream,
            ErrorKind::Internal => wit::ErrorKind::Internal,
        };
        wit::EngineError {
            kind,
            message: e.message,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_keep_their_meaning() {
        let cases = [
            (HostError::Denied("no".into()), ErrorKind::Denied),
            (HostError::Invalid("bad".into()), ErrorKind::InvalidInput),
            (HostError::Upstream("down".into()), ErrorKind::Upstream),
        ];
        for (host, kind) in cases {
            let message = host.message().to_owned();
            let e = Error::from(host);
            assert_eq!(e.kind(), kind);
            assert_eq!(e.message(), message);
        }
    }

    #[test]
    fn wit_host_errors_convert() {
        let e = HostError::from(wit::HostError::Denied("sql".into()));
        assert_eq!(e, HostError::Denied("sql".into()));
        assert_eq!(e.to_string(), "denied by the host: sql");
    }

    #[test]
    fn engine_errors_map_to_the_wit_enum() {
        let cases = [
            (Error::invalid("m"), wit::ErrorKind::InvalidInput),
            (Error::not_found("m"), wit::ErrorKind::NotFound),
            (Error::conflict("m"), wit::ErrorKind::Conflict),
            (Error::denied("m"), wit::ErrorKind::Denied),
            (Error::unsupported("m"), wit::ErrorKind::Unsupported),
            (Error::upstream("m"), wit::ErrorKind::Upstream),
            (Error::internal("m"), wit::ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            let w = wit::EngineError::from(e);
            assert_eq!(w.kind, kind);
        }
        let w = wit::EngineError::from(Error::unsupported("rotate-root"));
        assert_eq!(w.message, "rotate-root is not supported by this engine");
    }

    #[test]
    fn json_errors_are_invalid_input() {
        let e: Error = serde_json::from_str::<u32>("\"x\"").unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
