//! The one place where errors become HTTP responses.
//!
//! Every handler and guardian returns [`ApiError`]; it renders as
//! `{"error":{"code","message","status","request_id"}}`. Internal failures are logged with
//! their cause and answered with a generic message, so no detail of the store or the crypto
//! layer leaks to the client.

use salvo::http::StatusCode;
use salvo::oapi::{self, Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use serde::Serialize;

use super::middleware::request_id::RequestId;
use arcan_crypto::CryptoError;
use arcan_engine::EngineError;
use arcan_engine::kv::SealError;
use arcan_plugin_host::connection_policy::PolicyError;
use arcan_plugin_host::{CallError, PluginError};
use arcan_store::StoreError;

/// An error answer: status, stable machine code and a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_found`.
    pub code: &'static str,
    /// Human-readable explanation (never contains secret material).
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404: no such thing (or not visible to the caller).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 409: conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 412: a precondition (check-and-set) failed.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "cas_mismatch", message)
    }
    /// 413: body or value too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// 429: rate limited.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "rate limit exceeded; retry later",
            )
        }
    }
    /// 429: too many failed logins for one account.
    pub fn login_throttled(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "login_throttled",
                format!(
                    "too many failed logins for this account; retry in {}s",
                    retry_after.max(1)
                ),
            )
        }
    }
    /// 503: the server is at capacity for this kind of work (password hashing); retry.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
        }
    }
    /// 500: logs `cause` with the request id; the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
    /// 502: an engine plugin or the system behind it failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "plugin_failed", message)
    }
    /// 502: an issuer, key set or Kubernetes API server behind a machine login failed; the
    /// message says how (status, timeout, TLS), never what it answered.
    pub fn upstream_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_failed", message)
    }
    /// 503: a dependency is unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 503: the request's audit event could not be made durable, so the request was not
    /// performed (strict audit).
    pub fn audit_unavailable(reason: impl std::fmt::Display) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!("audit unavailable: {reason}"),
            )
        }
    }
}

/// True for store failures that are an outage rather than a bug: the connection or the
/// disk is gone, the database is read-only or full, or the server is shutting down.
fn store_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                // SQLSTATE: connection exception, insufficient resources, operator
                // intervention (shutdown), system error, read-only transaction.
                ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c)) || code == "25006"
            } else {
                code.parse::<i32>().is_ok_and(arcan_store::sqlite_outage)
            }
        }
        _ => false,
    }
}

impl From<arcan_machine_auth::Refusal> for ApiError {
    fn from(r: arcan_machine_auth::Refusal) -> Self {
        use arcan_machine_auth::Class;
        match r.class {
            Class::BadRequest => Self::bad_request(r.message),
            Class::Unauthorized => Self::unauthorized(r.message),
            Class::Forbidden => Self::forbidden(r.message),
            Class::Upstream => Self::upstream_failed(r.message),
            Class::Busy => Self::busy(r.message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ApiError::conflict("already exists"),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable("the store is overloaded; retry")
            }
            StoreError::Database(ref db) if store_unavailable(db) => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::unavailable("the store is unavailable; nothing was changed; retry")
            }
            ref outage if outage.is_outage() => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::unavailable("the store is unavailable; nothing was changed; retry")
            }
            StoreError::Tampered(ref what) => {
                tracing::error!(problem = %what, "audit log tampered with; refusing to append");
                ApiError::audit_unavailable(
                    "the audit log in the store was modified without the chain key; run `arcan audit verify`",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            _ => ApiError::new(StatusCode::FORBIDDEN, "connection_refused", e.to_string()),
        }
    }
}

/// Longest `Retry-After` an engine may ask callers to wait, in seconds.
pub const MAX_ENGINE_RETRY_AFTER: u64 = 3600;

/// An engine's retry hint as sent to callers: at least 1 s, at most an hour (an engine, or
/// the system behind it, does not get to stall clients for longer).
fn engine_retry_after(secs: u32) -> u64 {
    u64::from(secs).clamp(1, MAX_ENGINE_RETRY_AFTER)
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use arcan_plugin_host::ErrorKind as K;
        let msg = e.to_string();
        match e {
            EngineError::Invalid(m) => ApiError::bad_request(m),
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::conflict(m),
            EngineError::Connection(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "connection_failed", m)
            }
            EngineError::Plugin(PluginError::NotInstalled(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "plugin_not_installed", msg)
            }
            EngineError::Plugin(PluginError::Io(_)) => ApiError::internal(msg),
            EngineError::Plugin(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "plugin_refused", msg)
            }
            EngineError::Call(CallError::Engine {
                kind,
                message,
                retry_after,
                ..
            }) => match kind {
                K::InvalidInput => ApiError::bad_request(message),
                K::NotFound => ApiError::not_found(message),
                K::Conflict => ApiError::conflict(message),
                K::Denied => ApiError::forbidden(message),
                K::Unsupported => {
                    ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", message)
                }
                K::Upstream => ApiError {
                    retry_after: retry_after.map(engine_retry_after),
                    ..ApiError::new(StatusCode::BAD_GATEWAY, "upstream_failed", msg)
                },
                K::Internal => ApiError::bad_gateway(msg),
                K::Unavailable => ApiError {
                    retry_after: Some(engine_retry_after(retry_after.unwrap_or(1))),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", msg)
                },
            },
            EngineError::Call(CallError::Denied { .. }) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_granted", msg)
            }
            EngineError::Call(CallError::Busy) => ApiError::unavailable(msg),
            EngineError::Call(CallError::Instantiate { .. }) => ApiError::internal(msg),
            EngineError::Call(CallError::Trap { .. } | CallError::Oversized { .. }) => {
                tracing::warn!(error = %msg, "engine call failed");
                ApiError::bad_gateway(msg)
            }
            EngineError::Seal(SealError::NoKey) => ApiError::not_found("realm not found"),
            EngineError::Seal(other) => ApiError::internal(other),
            EngineError::Store(s) => s.into(),
        }
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        ApiError::internal(e)
    }
}

/// The JSON body of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Fields of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code.
    pub code: String,
    /// Human message.
    pub message: String,
    /// HTTP status.
    pub status: u16,
    /// Request id (also in the `X-Request-Id` header).
    pub request_id: String,
}

/// Renders an error into a response.
pub fn render_error(err: &ApiError, depot: &Depot, res: &mut Response) {
    let request_id = match depot.get_typed::<RequestId>() {
        Ok(r) => r.0.clone(),
        // Unrouted requests reach the catcher without passing the request-id hoop.
        Err(_) => {
            let id = uuid::Uuid::now_v7().to_string();
            if let Ok(v) = id.parse() {
                res.headers_mut().insert("x-request-id", v);
            }
            id
        }
    };
    res.status_code(err.status);
    if let Some(secs) = err.retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        res.headers_mut().insert("retry-after", v);
    }
    res.render(Json(ErrorBody {
        error: ErrorDetail {
            code: err.code.to_owned(),
            message: err.message.clone(),
            status: err.status.as_u16(),
            request_id,
        },
    }));
}

#[async_trait]
impl Writer for ApiError {
    async fn write(self, _req: &mut Request, depot: &mut Depot, res: &mut Response) {
        render_error(&self, depot, res);
    }
}

impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        for (status, what) in [
            ("400", "Malformed request"),
            ("401", "Missing or invalid token"),
            ("403", "Not allowed by policy"),
            ("404", "Not found or not visible"),
            ("413", "Body or value too large"),
            ("429", "Rate limited"),
        ] {
            operation.responses.insert(
                status,
                oapi::Response::new(what)
                    .add_content("application/json", ErrorBody::to_schema(components)),
            );
        }
    }
}

/// Turns salvo's own error statuses (unknown route, wrong method, …) into our JSON shape,
/// and audits unrouted API requests.
#[derive(Debug)]
pub struct CatchAll(pub std::sync::Arc<super::state::AppState>);

#[async_trait]
impl Handler for CatchAll {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
        let err = match status {
            StatusCode::NOT_FOUND => ApiError::not_found("no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "method_not_allowed",
                "method not allowed on this route",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("request body too large"),
            s if s.is_client_error() => ApiError::new(s, "bad_request", "bad request"),
            s => ApiError::new(s, "internal", "internal error"),
        };
        let audited = super::middleware::audit::emit_for(
            &self.0,
            req,
            depot,
            status.as_u16(),
            "http.unrouted",
        )
        .await;
        let err = if audited {
            err
        } else {
            ApiError::audit_unavailable("the event could not be stored")
        };
        render_error(&err, depot, res);
        ctrl.skip_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arcan_plugin_host::ErrorKind;

    fn engine(kind: ErrorKind, retry_after: Option<u32>) -> ApiError {
        ApiError::from(EngineError::Call(CallError::Engine {
            plugin: "p".into(),
            kind,
            message: "m".into(),
            retry_after,
        }))
    }

    #[test]
    fn engine_retry_hints_are_bounded_and_only_where_they_mean_something() {
        let unavailable = engine(ErrorKind::Unavailable, None);
        assert_eq!(
            (unavailable.status, unavailable.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        for (asked, sent) in [(0, 1), (13, 13), (u32::MAX, MAX_ENGINE_RETRY_AFTER)] {
            assert_eq!(
                engine(ErrorKind::Unavailable, Some(asked)).retry_after,
                Some(sent)
            );
            let upstream = engine(ErrorKind::Upstream, Some(asked));
            assert_eq!(
                (upstream.status, upstream.retry_after),
                (StatusCode::BAD_GATEWAY, Some(sent))
            );
        }
        assert_eq!(engine(ErrorKind::Upstream, None).retry_after, None);
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Denied,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ] {
            assert_eq!(engine(kind, Some(30)).retry_after, None, "{kind:?}");
        }
    }
}
