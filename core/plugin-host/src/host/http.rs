//! `http`: requests through a named endpoint. The plugin gives a path; the host joins it
//! to the endpoint's base URL (the host part cannot change), adds authentication, refuses
//! redirects and bounds both bodies. `rotate-root` checks that the connection is an HTTP
//! one of this mount and hands it to its provider (`super::rotate`).

use super::wit::latest::arcan::plugin::http::{self, Request, Response};
use super::{HostState, bounded};
use crate::connections::HttpAuth;
use crate::model::HostFault;
use crate::sigv4::sign_request;

/// Request header naming the AWS service to sign for; consumed by the host.
const SERVICE_HEADER: &str = "x-arcan-aws-service";

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
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn check_path(path: &str) -> Result<(), HostFault> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.contains('#')
        && !path.chars().any(|c| c.is_control() || c == ' ');
    if ok {
        bounded("path", path.len(), 8192)
    } else {
        Err(HostFault::Invalid(
            "path must start with a single `/` and contain no spaces, control characters or fragments"
                .into(),
        ))
    }
}

impl http::Host for HostState {
    async fn send(&mut self, connection: String, request: Request) -> Result<Response, HostFault> {
        let found = self.scope.connections.http(&connection);
        let (client, base, auth) = match found {
            Ok(c) => c,
            Err(m) => return Err(self.deny(m)),
        };
        check_path(&request.path).and(bounded("body", request.body.len(), MAX_REQUEST_BYTES))?;
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return Err(HostFault::Invalid(format!(
                "`{}` is not an HTTP method",
                request.method
            )));
        };
        let service = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(SERVICE_HEADER))
            .map_or_else(|| "iam".to_owned(), |(_, v)| v.clone());
        let base = match &auth {
            HttpAuth::AwsSigv4(keys) => keys.base_for(&service, &base).to_owned(),
            _ => base,
        };
        let url = format!("{}{}", base.trim_end_matches('/'), request.path);
        let mut rb = client.request(method, &url);
        for (k, v) in &request.headers {
            let lower = k.to_ascii_lowercase();
            if lower == SERVICE_HEADER {
                continue;
            }
            if RESERVED.contains(&lower.as_str()) {
                return Err(HostFault::Invalid(format!(
                    "header `{k}` is set by the host"
                )));
            }
            rb = rb.header(k, v);
        }
        rb = match &auth {
            HttpAuth::None | HttpAuth::AwsSigv4(_) => rb,
            HttpAuth::Bearer { token } => rb.bearer_auth(token),
            HttpAuth::Basic { username, password } => rb.basic_auth(username, Some(password)),
        };
        let mut req = match rb.body(request.body).build() {
            Ok(r) => r,
            Err(_) => {
                return Err(HostFault::Invalid(
                    "the request is not valid HTTP (header names or values)".into(),
                ));
            }
        };
        if let HttpAuth::AwsSigv4(keys) = &auth {
            let valid = !service.is_empty()
                && service.len() <= 64
                && service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(HostFault::Invalid(format!(
                    "`{SERVICE_HEADER}` is not an AWS service name"
                )));
            }
            if let Err(e) = sign_request(&mut req, keys, &service) {
                return Err(HostFault::Invalid(e));
            }
        }
        let sent = client.execute(req).await;
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
                return Err(HostFault::Upstream(format!(
                    "connection `{connection}`: {why}"
                )));
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
                        return Err(HostFault::Upstream(format!(
                            "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return Err(HostFault::Upstream(format!(
                        "connection `{connection}`: reading the response failed"
                    )));
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn rotate_root(&mut self, connection: String) -> Result<(), HostFault> {
        if let Err(m) = self.scope.connections.http(&connection) {
            return Err(self.deny(m));
        }
        let scope = self.scope.clone();
        super::rotate::rotate_root(&scope, &connection).await
    }
}
