//! The registry's HTTP routes (see `registry-client/README.md` § Protocol).

use std::sync::Arc;

use arcan_registry_client::manifest::valid_name;
use arcan_registry_client::protocol::{ACTIVATION_HEADER, SearchResults};
use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use super::store::{Refusal, Store};

/// Largest upload accepted (a package is at most 64 MiB uncompressed).
const MAX_UPLOAD: usize = 72 * 1024 * 1024;

/// The whole API as one handler.
pub struct Api(pub Arc<Store>);

fn refuse(res: &mut Response, r: Refusal) {
    let Refusal(status, code, message) = r;
    res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    res.render(Json(
        json!({"error": {"code": code, "message": message, "status": status}}),
    ));
}

fn not_found(what: String) -> Refusal {
    Refusal(404, "not_found", what)
}

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_owned())
}

impl Api {
    fn publisher(&self, req: &Request) -> Result<String, Refusal> {
        let token = bearer(req).ok_or_else(|| {
            Refusal(
                401,
                "unauthorized",
                "a publisher token is required (Authorization: Bearer)".into(),
            )
        })?;
        self.0.publisher(&token).map(str::to_owned).ok_or_else(|| {
            Refusal(
                403,
                "forbidden",
                "the publisher token is not accepted".into(),
            )
        })
    }

    async fn route(&self, req: &mut Request, res: &mut Response) -> Result<(), Refusal> {
        let path = req.uri().path().trim_matches('/').to_owned();
        let parts: Vec<&str> = path.split('/').collect();
        let method = req.method().clone();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["v1", "packages", name]) => {
                if !valid_name(name) {
                    return Err(not_found(format!("no plugin named `{name}`")));
                }
                let idx = self
                    .0
                    .index(name)?
                    .ok_or_else(|| not_found(format!("no plugin named `{name}`")))?;
                res.render(Json(idx));
            }
            ("GET", ["v1", "blobs", sha]) => {
                let valid = sha.len() == 64
                    && sha
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                let (data, enterprise) = valid
                    .then(|| self.0.blob(sha))
                    .flatten()
                    .ok_or_else(|| not_found(format!("no blob {sha}")))?;
                if enterprise {
                    let token = req
                        .headers()
                        .get(ACTIVATION_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if token.is_empty() || !self.0.activation_ok(token) {
                        return Err(Refusal(
                            403,
                            "activation_required",
                            format!(
                                "enterprise package: a valid {ACTIVATION_HEADER} token is required"
                            ),
                        ));
                    }
                }
                res.add_header("content-type", "application/octet-stream", true)
                    .map_err(|e| Refusal(500, "internal", e.to_string()))?;
                res.write_body(data)
                    .map_err(|e| Refusal(500, "internal", e.to_string()))?;
            }
            ("GET", ["v1", "search"]) => {
                let q = req.query::<String>("q").unwrap_or_default();
                res.render(Json(SearchResults {
                    results: self.0.search(&q),
                }));
            }
            ("PUT", ["v1", "packages", name, version]) => {
                let who = self.publisher(req)?;
                let enterprise = req
                    .query::<String>("enterprise")
                    .is_some_and(|v| v == "true");
                let (name, version) = ((*name).to_owned(), (*version).to_owned());
                let body = req
                    .payload_with_max_size(MAX_UPLOAD)
                    .await
                    .map_err(|_| {
                        Refusal(
                            413,
                            "too_large",
                            format!("a package upload is at most {MAX_UPLOAD} bytes"),
                        )
                    })?
                    .clone();
                let stored = self.0.publish(&name, &version, &body, enterprise, &who)?;
                tracing::info!(%name, %version, publisher = %who, "published");
                res.status_code(StatusCode::CREATED);
                res.render(Json(stored.entry));
            }
            ("POST", ["v1", "packages", name, version, "yank"]) => {
                self.publisher(req)?;
                self.0.yank(name, version)?;
                res.render(Json(
                    json!({"name": name, "version": version, "yanked": true}),
                ));
            }
            _ => return Err(not_found(format!("no route {method} /{path}"))),
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for Api {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        if let Err(r) = self.route(req, res).await {
            refuse(res, r);
        }
    }
}
