//! The AWS query API (IAM, STS) through the host's `http` connection.
//!
//! Every call is `POST /` with a form-encoded body (`Action=…&Version=…&…`). The host
//! signs it with SigV4 for the service named in the `x-arcan-aws-service` header (and
//! removes that header); the engine never sees the keys. Answers are XML ([`Document`]).
//! Throttling (429, 503 or a throttling error code) becomes `unavailable` (503) with
//! AWS's `Retry-After`, so callers back off instead of seeing a plain upstream failure.

use std::fmt;
use std::time::Duration;

use arcan_plugin_sdk::http::{self, Request, Response};
use arcan_plugin_sdk::{Error, ErrorKind, HostError};

use crate::xml::Document;

/// Pages of a listing read at most (100 items each): a guard against a looping marker.
const MAX_PAGES: usize = 100;
/// Longest AWS error message passed on to the caller.
const MAX_MESSAGE: usize = 400;
/// AWS error codes that mean "slow down" whatever the HTTP status.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "SlowDown",
];
/// When to retry a throttled call whose answer has no (usable) `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// An AWS service of the query API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// IAM (`2010-05-08`).
    Iam,
    /// STS (`2011-06-15`).
    Sts,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// AWS answered with an error document (`<Error><Code>…<Message>…`).
    Aws {
        /// The action called, e.g. `CreateUser`.
        action: &'static str,
        /// HTTP status.
        status: u16,
        /// AWS error code, e.g. `NoSuchEntity`.
        code: String,
        /// AWS error message (first line, bounded).
        message: String,
        /// The answer's `Retry-After`, in seconds, when it had one.
        retry_after: Option<u64>,
    },
    /// The host refused the call or could not reach the endpoint.
    Host {
        /// The action called.
        action: &'static str,
        /// What the host said.
        error: HostError,
    },
    /// AWS answered 2xx with something that is not the expected document.
    Malformed {
        /// The action called.
        action: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

impl Failure {
    /// Whether AWS answered with this error code.
    pub fn is_code(&self, wanted: &str) -> bool {
        matches!(self, Failure::Aws { code, .. } if code == wanted)
    }

    /// Whether AWS throttled the call: status 429 or 503, or a throttling error code.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            Failure::Aws { status, code, .. }
                if matches!(status, 429 | 503) || THROTTLING_CODES.contains(&code.as_str())
        )
    }

    /// When to retry a throttled call: AWS's `Retry-After`, else one second.
    fn retry_after(&self) -> Duration {
        match self {
            Failure::Aws {
                retry_after: Some(secs),
                ..
            } => Duration::from_secs(*secs),
            _ => DEFAULT_RETRY_AFTER,
        }
    }

    /// Whether the request may have reached AWS without an answer coming back (a timeout
    /// or a broken connection): its effect is unknown.
    pub fn effect_unknown(&self) -> bool {
        matches!(
            self,
            Failure::Host {
                error: HostError::Upstream(_),
                ..
            }
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Aws {
                action,
                status,
                code,
                message,
                ..
            } => write!(f, "AWS {action} failed ({status} {code}): {message}"),
            Failure::Host { action, error } => write!(f, "AWS {action}: {}", error.message()),
            Failure::Malformed { action, why } => {
                write!(f, "AWS {action} returned an unexpected answer: {why}")
            }
        }
    }
}

/// Throttling is `unavailable` (503) with when to retry; other AWS errors and unreachable
/// endpoints are `upstream` (502); what the host denies stays `denied` and what it refuses
/// stays `invalid-input`.
impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        if f.is_throttled() {
            let after = f.retry_after();
            return Error::unavailable(f.to_string()).with_retry_after(after);
        }
        let kind = match &f {
            Failure::Host {
                error: HostError::Denied(_),
                ..
            } => ErrorKind::Denied,
            Failure::Host {
                error: HostError::Invalid(_),
                ..
            } => ErrorKind::InvalidInput,
            _ => ErrorKind::Upstream,
        };
        Error::new(kind, f.to_string())
    }
}

/// A client of the query API on one named connection.
#[derive(Debug, Clone, Copy)]
pub struct Api<'a> {
    connection: &'a str,
}

impl<'a> Api<'a> {
    /// A client of the connection named `connection`.
    pub fn new(connection: &'a str) -> Self {
        Self { connection }
    }

    /// Calls `action` with `params` (names as AWS spells them, values unencoded).
    pub fn call(
        &self,
        service: Service,
        action: &'static str,
        params: &[(&str, &str)],
    ) -> Result<Document, Failure> {
        let request = Request::post("/", form(action, service.version(), params))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-arcan-aws-service", service.signing_name());
        let response = http::send(self.connection, &request)
            .map_err(|error| Failure::Host { action, error })?;
        answer(action, &response)
    }

    /// An IAM call.
    pub fn iam(&self, action: &'static str, params: &[(&str, &str)]) -> Result<Document, Failure> {
        self.call(Service::Iam, action, params)
    }

    /// Every item of a paginated IAM listing (`IsTruncated` / `Marker`): the texts of the
    /// elements whose path ends with `item`.
    pub fn iam_list(
        &self,
        action: &'static str,
        params: &[(&str, &str)],
        item: &[&str],
    ) -> Result<Vec<String>, Failure> {
        let mut items = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut page: Vec<(&str, &str)> = params.to_vec();
            if let Some(m) = marker.as_deref() {
                page.push(("Marker", m));
            }
            let doc = self.iam(action, &page)?;
            items.extend(doc.all(item).into_iter().map(str::to_owned));
            marker = match (doc.first(&["IsTruncated"]), doc.first(&["Marker"])) {
                (Some("true"), Some(m)) if !m.is_empty() => Some(m.to_owned()),
                _ => return Ok(items),
            };
        }
        Err(Failure::Malformed {
            action,
            why: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// The document of a 2xx answer, or the failure an error answer describes.
fn answer(action: &'static str, response: &Response) -> Result<Document, Failure> {
    let doc = Document::parse(&response.body);
    if response.is_success() {
        return doc.map_err(|why| Failure::Malformed { action, why });
    }
    let (code, message) = match &doc {
        Ok(d) => (
            d.first(&["Error", "Code"]).map(str::to_owned),
            d.first(&["Error", "Message"]).map(str::to_owned),
        ),
        Err(_) => (None, None),
    };
    Err(Failure::Aws {
        action,
        status: response.status,
        code: code.unwrap_or_else(|| format!("HTTP{}", response.status)),
        message: clean(&message.unwrap_or_else(|| "no error document".into())),
        retry_after: response.header("retry-after").and_then(retry_after_secs),
    })
}

/// A `Retry-After` in delay-seconds; `None` for anything else (an HTTP date, garbage).
fn retry_after_secs(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only overflow can fail, and a delay that long is as good as u64::MAX.
    Some(value.parse().unwrap_or(u64::MAX))
}

/// `Action=…&Version=…&k=v…`, form-encoded.
fn form(action: &str, version: &str, params: &[(&str, &str)]) -> String {
    let mut body = format!("Action={}&Version={}", encode(action), encode(version));
    for (k, v) in params {
        body.push('&');
        body.push_str(&encode(k));
        body.push('=');
        body.push_str(&encode(v));
    }
    body
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (valid in a form
/// body and what SigV4 expects).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first line of an AWS message, bounded, without control characters.
fn clean(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default().trim();
    let mut out: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE)
        .collect();
    if line.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Response::new(status, headers, body)
    }

    fn error_document(code: &str) -> String {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>Rate exceeded</Message></Error></ErrorResponse>"
        )
    }

    #[test]
    fn throttling_statuses_are_unavailable_with_retry_after() {
        for status in [429, 503] {
            let r = response(status, &[("Retry-After", "5")], "");
            let failure = answer("CreateUser", &r).unwrap_err();
            assert!(failure.is_throttled());
            let e = Error::from(failure);
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{status}");
            assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
            assert_eq!(
                e.message(),
                format!("AWS CreateUser failed ({status} HTTP{status}): no error document")
            );
        }
    }

    #[test]
    fn throttling_codes_are_unavailable_whatever_the_status() {
        for code in THROTTLING_CODES {
            let r = response(400, &[], &error_document(code));
            let e = Error::from(answer("AttachUserPolicy", &r).unwrap_err());
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{code}");
            // No Retry-After: one second.
            assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{code}");
            assert!(e.message().contains(code), "{e}");
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let cases = [
            ("7", 7),
            (" 12 ", 12),
            ("0", 0),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 1),
            ("-3", 1),
            ("1.5", 1),
            ("", 1),
        ];
        for (header, secs) in cases {
            let r = response(503, &[("retry-after", header)], &error_document("SlowDown"));
            let e = Error::from(answer("ListUsers", &r).unwrap_err());
            // 0 stays 0 here; the SDK sends at least one second.
            assert_eq!(
                e.retry_after(),
                Some(Duration::from_secs(secs)),
                "{header:?}"
            );
        }
        assert_eq!(retry_after_secs("99999999999999999999999"), Some(u64::MAX));
    }

    #[test]
    fn other_errors_stay_upstream_without_retry_after() {
        let r = response(
            409,
            &[("Retry-After", "5")],
            &error_document("EntityAlreadyExists"),
        );
        let failure = answer("CreateUser", &r).unwrap_err();
        assert!(!failure.is_throttled() && failure.is_code("EntityAlreadyExists"));
        let e = Error::from(failure);
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert_eq!(e.retry_after(), None);
        let r = response(500, &[], "not xml");
        let e = Error::from(answer("CreateUser", &r).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert!(answer("CreateUser", &response(200, &[], "<a/>")).is_ok());
    }

    #[test]
    fn form_encoding() {
        let body = form(
            "PutUserPolicy",
            "2010-05-08",
            &[
                ("PolicyDocument", r#"{"a": "b/c*"}"#),
                ("UserName", "u+1@x"),
            ],
        );
        assert_eq!(
            body,
            "Action=PutUserPolicy&Version=2010-05-08&PolicyDocument=%7B%22a%22%3A%20%22b%2Fc%2A%22%7D&UserName=u%2B1%40x"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn failures_map_to_error_kinds() {
        let aws = Failure::Aws {
            action: "CreateUser",
            status: 409,
            code: "EntityAlreadyExists".into(),
            message: "exists".into(),
            retry_after: None,
        };
        assert!(aws.is_code("EntityAlreadyExists") && !aws.effect_unknown());
        let e = Error::from(aws);
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert_eq!(
            e.message(),
            "AWS CreateUser failed (409 EntityAlreadyExists): exists"
        );
        let down = Failure::Host {
            action: "CreateUser",
            error: HostError::Upstream("connection `aws`: cannot connect".into()),
        };
        assert!(down.effect_unknown());
        assert_eq!(Error::from(down).kind(), ErrorKind::Upstream);
        let denied = Failure::Host {
            action: "CreateUser",
            error: HostError::Denied("not bound".into()),
        };
        assert_eq!(Error::from(denied).kind(), ErrorKind::Denied);
        let refused = Failure::Host {
            action: "CreateUser",
            error: HostError::Invalid("too large".into()),
        };
        assert_eq!(Error::from(refused).kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn messages_are_cleaned() {
        assert_eq!(clean("first line\nCanonical request: …"), "first line");
        assert_eq!(clean(&"x".repeat(500)).chars().count(), MAX_MESSAGE + 1);
        assert_eq!(clean("a\u{7}b"), "ab");
    }
}
