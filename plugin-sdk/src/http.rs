//! HTTP through a named endpoint configured in the host (capability `host:http`, WIT
//! import `arcan:plugin/http`).
//!
//! The host joins the request's path to the endpoint's base URL and adds its
//! authentication (bearer, basic, AWS SigV4): the engine never sees the root credentials.
//!
//! ```no_run
//! use arcan_plugin_sdk::http::{self, Request};
//!
//! # fn f() -> Result<(), arcan_plugin_sdk::HostError> {
//! let request = Request::post("/?Action=CreateUser&UserName=app", Vec::new())
//!     .header("accept", "application/json");
//! let response = http::send("aws", &request)?;
//! if !response.is_success() {
//!     eprintln!("{}: {}", response.status, response.text());
//! }
//! # Ok(()) }
//! ```

use crate::__private::arcan::plugin::http as wit;
use crate::HostError;

/// An outbound request, relative to the endpoint's base URL. Build it with
/// [`new`](Request::new), [`get`](Request::get), ... and the builder methods (fields may be
/// added).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// Path and query relative to the endpoint's base URL, e.g. `/?Action=ListUsers`.
    pub path: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with any method and no headers or body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` request with a body.
    pub fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body)
    }

    /// A `PUT` request with a body.
    pub fn put(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self::new("PUT", path).body(body)
    }

    /// A `DELETE` request.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new("DELETE", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its `content-type`.
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// The endpoint's response (fields may be added; an engine's unit tests build one with
/// [`new`](Response::new)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response, as the host would return it (for unit tests).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` through the endpoint named `connection`.
pub fn send(connection: &str, request: &Request) -> Result<Response, HostError> {
    let request = wit::Request {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
    };
    let response = wit::send(connection, &request)?;
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
    })
}

/// Asks the host to replace the endpoint's root credentials with new ones (for AWS:
/// create a new access key, switch to it, delete the old one). The engine never sees them.
pub fn rotate_root(connection: &str) -> Result<(), HostError> {
    Ok(wit::rotate_root(connection)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        let r = Request::get("/x").header("a", "b");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/x"));
        assert_eq!(r.headers, [("a".to_string(), "b".to_string())]);
        let r = Request::post("/", "body");
        assert_eq!(r.body, b"body");
        let r = Request::put("/", Vec::new()).json(&serde_json::json!({"k": 1}));
        assert_eq!(r.body, br#"{"k":1}"#);
        assert_eq!(r.headers[0].1, "application/json");
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 204,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: vec![b'o', b'k', 0xff],
        };
        assert!(r.is_success());
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.text(), "ok\u{fffd}");
    }
}
