//! `http`: requests through a named endpoint. The plugin gives a path; the host joins it
//! to the endpoint's base URL (the host part cannot change), adds authentication, refuses
//! redirects and bounds both bodies.

use super::bindings::arcan::plugin::http::{self, Request, Response};
use super::bindings::arcan::plugin::types::HostError;
use super::{HostState, bounded};
use crate::plugin::connections::HttpAuth;

/// Largest request body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Largest response body.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Headers the plugin may not set: the host owns authentication and framing.
const RESERVED: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "cookie",
    "proxy-authorization",
];

fn check_path(path: &str) -> Result<(), HostError> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.contains('#')
        && !path.chars().any(|c| c.is_control() || c == ' ');
    if ok {
        bounded("path", path.len(), 8192)
    } else {
        Err(HostError::Invalid(
            "path must start with a single `/` and contain no spaces, control characters or fragments"
                .into(),
        ))
    }
}

impl http::Host for HostState {
    async fn send(
        &mut self,
        connection: String,
        request: Request,
    ) -> wasmtime::Result<Result<Response, HostError>> {
        let found = self.scope.connections.http(&connection);
        let (client, base, auth) = match found {
            Ok(c) => c,
            Err(m) => return Ok(Err(self.deny(m))),
        };
        if let Err(e) =
            check_path(&request.path).and(bounded("body", request.body.len(), MAX_REQUEST_BYTES))
        {
            return Ok(Err(e));
        }
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return Ok(Err(HostError::Invalid(format!(
                "`{}` is not an HTTP method",
                request.method
            ))));
        };
        let url = format!("{}{}", base.trim_end_matches('/'), request.path);
        let mut rb = client.request(method, &url);
        for (k, v) in &request.headers {
            if RESERVED.contains(&k.to_ascii_lowercase().as_str()) {
                return Ok(Err(HostError::Invalid(format!(
                    "header `{k}` is set by the host"
                ))));
            }
            rb = rb.header(k, v);
        }
        rb = match &auth {
            HttpAuth::None => rb,
            HttpAuth::Bearer { token } => rb.bearer_auth(token),
            HttpAuth::Basic { username, password } => rb.basic_auth(username, Some(password)),
        };
        let sent = rb.body(request.body).send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    "request failed".to_owned()
                };
                return Ok(Err(HostError::Upstream(format!(
                    "connection `{connection}`: {why}"
                ))));
            }
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Ok(Err(HostError::Upstream(format!(
                            "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return Ok(Err(HostError::Upstream(format!(
                        "connection `{connection}`: reading the response failed"
                    ))));
                }
            }
        }
        Ok(Ok(Response {
            status,
            headers,
            body,
        }))
    }

    async fn rotate_root(&mut self, connection: String) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(m) = self.scope.connections.http(&connection) {
            return Ok(Err(self.deny(m)));
        }
        Ok(Err(HostError::Invalid(format!(
            "connection `{connection}` has no rotatable root credential (only AWS SigV4 endpoints rotate, which this build does not have yet)"
        ))))
    }
}
