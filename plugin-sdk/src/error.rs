//! Errors an engine returns, and errors the host functions return to it.

use std::fmt;
use std::time::Duration;

use crate::__private::arcan::plugin::types as wit;

/// The result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an engine operation failed; the host maps it to an HTTP status.
///
/// New contract versions may add kinds (`arcan:plugin@0.2.0` added
/// [`Unavailable`](ErrorKind::Unavailable)): a `match` on it needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// The engine or the system behind it is temporarily unable to serve, e.g. throttled
    /// by a cloud API (503); the caller should retry later, see [`Error::with_retry_after`].
    Unavailable,
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
            ErrorKind::Unavailable => "unavailable",
        })
    }
}

/// An error returned by an engine operation: a kind, a message for the caller and,
/// optionally, when to retry.
///
/// The message reaches the API caller: never put a secret in it.
///
/// ```
/// use std::time::Duration;
/// use arcan_plugin_sdk::{Error, ErrorKind};
///
/// let e = Error::invalid("role.mode is missing");
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// assert_eq!(e.message(), "role.mode is missing");
/// assert_eq!(e.retry_after(), None);
///
/// let e = Error::unavailable("IAM is throttling us").with_retry_after(Duration::from_secs(2));
/// assert_eq!(e.kind(), ErrorKind::Unavailable);
/// assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
}

impl Error {
    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
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

    /// The engine or the system behind it is temporarily unable to serve
    /// ([`ErrorKind::Unavailable`], 503); add when to retry with
    /// [`with_retry_after`](Error::with_retry_after).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Tell the caller when to retry. The host sends it as `Retry-After` only for
    /// [`ErrorKind::Unavailable`] (503) and [`ErrorKind::Upstream`] (502) errors (with
    /// `upstream`, use it when the external system said when), in whole seconds rounded
    /// up, at least 1, bounded by the host (at most an hour); with any other kind it is
    /// dropped. An `unavailable` error without one is sent with `Retry-After: 1`.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// When the caller should retry, if the engine said so (with
    /// [`with_retry_after`](Error::with_retry_after)).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
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

/// A JSON document did not have the expected shape: [`ErrorKind::InvalidInput`], e.g. a
/// JSON string inside a role that must hold a document. (Configurations, roles and lease
/// states are parsed by the SDK before the engine's code runs.)
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::invalid(e.to_string())
    }
}

/// An error returned by a host function ([`sql`](crate::sql), [`http`](crate::http),
/// [`data`](crate::data)).
///
/// New contract versions may add variants: a `match` on it needs a `_` arm (or use
/// [`message`](HostError::message) and `Error::from(e).kind()`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The capability or the named connection was not granted to this mount. The host
    /// records it and fails the whole call with 501, whatever the engine does next: do not
    /// use a refused connection as a probe and fall back.
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
            ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
        };
        wit::EngineError {
            kind,
            message: e.message,
            retry_after_seconds: e.retry_after.map(retry_after_seconds),
        }
    }
}

/// Whole seconds, rounded up, at least 1 (`Retry-After: 0` would mean "now"), at most
/// `u32::MAX`.
fn retry_after_seconds(after: Duration) -> u32 {
    let secs = after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
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
            (Error::unavailable("m"), wit::ErrorKind::Unavailable),
        ];
        for (e, kind) in cases {
            let w = wit::EngineError::from(e);
            assert_eq!(w.kind, kind);
            assert_eq!(w.retry_after_seconds, None);
        }
        let w = wit::EngineError::from(Error::unsupported("rotate-root"));
        assert_eq!(w.message, "rotate-root is not supported by this engine");
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let e = Error::unavailable("throttled").with_retry_after(Duration::from_secs(7));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.kind().to_string(), "unavailable");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.to_string(), "unavailable: throttled");
        let w = wit::EngineError::from(e);
        assert_eq!(w.kind, wit::ErrorKind::Unavailable);
        assert_eq!(w.message, "throttled");
        assert_eq!(w.retry_after_seconds, Some(7));
        // Any kind may carry it (upstream: the external system said when); the host
        // decides where it is sent.
        let w =
            wit::EngineError::from(Error::upstream("m").with_retry_after(Duration::from_secs(3)));
        assert_eq!(
            (w.kind, w.retry_after_seconds),
            (wit::ErrorKind::Upstream, Some(3))
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_at_least_one() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_millis(2500), 3),
            (Duration::from_secs(60), 60),
            (Duration::from_secs(u64::from(u32::MAX)), u32::MAX),
            (Duration::from_secs(u64::from(u32::MAX) + 1), u32::MAX),
            (Duration::MAX, u32::MAX),
        ];
        for (after, secs) in cases {
            let w = wit::EngineError::from(Error::unavailable("m").with_retry_after(after));
            assert_eq!(w.retry_after_seconds, Some(secs), "{after:?}");
        }
    }

    #[test]
    fn json_errors_are_invalid_input() {
        let e: Error = serde_json::from_str::<u32>("\"x\"").unwrap_err().into();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
