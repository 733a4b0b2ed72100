//! The audit observer: one event per API request, refusals included. Routes name their
//! action with [`Action`]; handlers attach non-secret facts with [`audit_detail`].
//!
//! Strict mode: [`change_scope`] runs the handler inside a
//! [`ChangeScope`](arcan_store::change::ChangeScope), so the change a data-changing route
//! makes commits the request's event in its own transaction; [`audit`] then writes the event
//! of every request whose event no change carried (reads, refusals, failed changes), waits
//! for it and for the request's plugin events to be durable, and replaces the answer with a
//! 503 when they are not. Async mode: the event is queued after the answer is decided.

use std::sync::Arc;

use salvo::prelude::*;

use super::super::state::{AppState, state};
use super::policy::RealmCtx;
use super::rate_limit::client_of;
use super::request_id::RequestId;
use crate::auth::Principal;
use crate::error::{ApiError, render_error};
use arcan_audit::{Actor, AuditMode, Event, outcome_of, to_row};
use arcan_store::change::{ChangeKind, ChangeScope};
use arcan_util::{new_id, now_ms, rfc3339};

/// The audit action of a route, e.g. `secrets.read`.
#[derive(Debug, Clone, Copy)]
pub struct Action(pub &'static str);

/// Facts a handler adds to its request's event (never a secret value).
#[derive(Debug, Clone)]
pub struct AuditDetail(pub serde_json::Value);

/// Sets the request's non-secret facts. Call it before the change a route makes, so the
/// event committed with the change has them; the store adds what only it knows.
pub fn audit_detail(depot: &mut Depot, detail: serde_json::Value) {
    if let Ok(scope) = depot.get_typed::<Arc<ChangeScope>>() {
        scope.set_detail(detail.clone());
    }
    depot.insert_typed(AuditDetail(detail));
}

/// The change whose transaction carries a route's event, and the status the route answers
/// with when it succeeds. Routes not listed here have their event written after the
/// handler (strict mode still answers only once it is durable).
pub fn change_of(action: &str) -> Option<(ChangeKind, u16)> {
    use ChangeKind::*;
    Some(match action {
        "secrets.write" => (Secret, 200),
        "secrets.delete" => (Secret, 204),
        "roles.write" | "bindings.create" => (Policy, 201),
        "roles.delete" | "bindings.delete" => (Policy, 204),
        "realms.create" => (Realm, 201),
        "realms.delete" => (Realm, 204),
        "engines.mount" => (Mount, 201),
        "engines.unmount" | "engines.rotate_root" => (Mount, 200),
        "engines.roles.write" => (EngineRole, 200),
        "engines.roles.delete" => (EngineRole, 204),
        "engines.creds" | "leases.renew" | "leases.revoke" => (Lease, 200),
        "auth.register" => (User, 201),
        "auth.login" => (Token, 200),
        "tokens.create" => (Token, 201),
        "tokens.revoke" => (Token, 204),
        "audit.sinks.add" => (Sink, 201),
        "audit.sinks.remove" => (Sink, 204),
        "sys.master_key.rewrap" => (MasterKey, 200),
        "auth.methods.enable" => (AuthMethod, 201),
        "auth.methods.update" => (AuthMethod, 200),
        "auth.methods.disable" => (AuthMethod, 204),
        "auth.roles.write" => (AuthRole, 200),
        "auth.roles.delete" => (AuthRole, 204),
        "auth.method.login" => (Token, 200),
        _ => return None,
    })
}

#[async_trait]
impl Handler for Action {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(*self);
    }
}

/// Builds the event of a finished request.
pub fn request_event(
    req: &Request,
    depot: &Depot,
    status: u16,
    default_action: &'static str,
) -> Event {
    let principal = depot.get_typed::<Arc<Principal>>().ok();
    let realm = depot.get_typed::<RealmCtx>().ok();
    let path = req.uri().path();
    let target = match req.query::<String>("env") {
        Some(env) => format!("{path}?env={env}"),
        None => path.to_owned(),
    };
    let now = now_ms();
    Event {
        id: new_id(),
        time: rfc3339(now),
        time_ms: now,
        request_id: depot.get_typed::<RequestId>().ok().map(|r| r.0.clone()),
        actor: Actor {
            user_id: principal.map(|p| p.user_id.to_string()),
            token_id: principal.map(|p| p.token_id.to_string()),
            auth_method: match principal {
                Some(p) => match p.identity.as_ref().and_then(|i| i["type"].as_str()) {
                    Some(kind) => kind.to_owned(),
                    None => "token".to_owned(),
                },
                None => "none".to_owned(),
            },
            ip: Some(client_of(req, depot).to_string()),
            identity: principal.and_then(|p| p.identity.as_ref()).map(|i| {
                serde_json::json!({
                    "method": i["method"], "role": i["role"], "subject": i["subject"],
                })
            }),
        },
        realm_id: realm.map(|r| r.realm.id.to_string()),
        realm: realm.map(|r| r.realm.slug.clone()),
        action: depot
            .get_typed::<Action>()
            .map(|a| a.0)
            .unwrap_or(default_action)
            .to_owned(),
        target,
        outcome: outcome_of(status).to_owned(),
        status: Some(status),
        detail: depot.get_typed::<AuditDetail>().ok().map(|d| d.0.clone()),
    }
}

/// True for requests that are audited (paths under `/api/`; health, metrics and the
/// OpenAPI document are not).
fn audited(st: &AppState, req: &Request) -> bool {
    st.config.audit.enabled && req.uri().path().starts_with("/api/")
}

/// Emits the event of a request answered before its route ran (throttled, too large):
/// strict mode waits for it like any other.
pub async fn emit_for(
    st: &AppState,
    req: &Request,
    depot: &Depot,
    status: u16,
    default_action: &'static str,
) -> bool {
    if !audited(st, req) {
        return true;
    }
    let event = request_event(req, depot, status, default_action);
    match st.audit.mode() {
        AuditMode::Async => {
            st.audit.emit(event);
            true
        }
        AuditMode::Strict => st.audit.record(event).await.is_ok(),
    }
}

/// How the scope builds the request's event: from what is known about the request now,
/// with the route's success status.
fn build_event(req: &Request, depot: &Depot) -> Box<arcan_store::change::BuildEvent> {
    let action = depot
        .get_typed::<Action>()
        .map(|a| a.0)
        .unwrap_or("http.request");
    let template = request_event(req, depot, change_of(action).map_or(200, |c| c.1), action);
    Box::new(move |detail, facts| {
        let mut e = template.clone();
        let now = now_ms();
        e.id = new_id();
        e.time = rfc3339(now);
        e.time_ms = now;
        let mut d = match detail {
            Some(serde_json::Value::Object(m)) => m.clone(),
            Some(other) => {
                let mut m = serde_json::Map::new();
                m.insert("detail".into(), other.clone());
                m
            }
            None => serde_json::Map::new(),
        };
        for (k, v) in facts {
            d.insert((*k).to_owned(), v.clone());
        }
        e.detail = (!d.is_empty()).then_some(serde_json::Value::Object(d));
        to_row(&e)
    })
}

/// Rebuilds the request's event after a handler authenticated the caller itself (closed
/// registration), so the change's event names them.
pub fn caller_known(req: &Request, depot: &Depot) {
    if let Ok(scope) = depot.get_typed::<Arc<ChangeScope>>() {
        scope.set_build(build_event(req, depot));
    }
}

/// The innermost hoop of every route: runs the handler inside the request's change scope
/// (strict mode), built now that the caller and the realm are known.
#[handler]
pub async fn change_scope(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let st = state(depot).clone();
    if !audited(&st, req) || st.audit.mode() != AuditMode::Strict {
        ctrl.call_next(req, depot, res).await;
        return;
    }
    let action = depot
        .get_typed::<Action>()
        .map(|a| a.0)
        .unwrap_or("http.request");
    let scope = ChangeScope::new(change_of(action).map(|c| c.0), build_event(req, depot));
    depot.insert_typed(scope.clone());
    scope.run(ctrl.call_next(req, depot, res)).await;
}

/// The outermost audit hoop.
#[handler]
pub async fn audit(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    ctrl.call_next(req, depot, res).await;
    let st = state(depot).clone();
    if !audited(&st, req) {
        return;
    }
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    if st.audit.mode() == AuditMode::Async {
        st.audit
            .emit(request_event(req, depot, status, "http.request"));
        return;
    }
    let scope = depot.get_typed::<Arc<ChangeScope>>().ok().cloned();
    let mut side_durable = true;
    if let Some(scope) = &scope {
        for receipt in scope.take_receipts() {
            side_durable &= st.audit.durable(receipt).await.is_ok();
        }
    }
    if scope.as_ref().is_some_and(|s| s.committed()) {
        // The change happened and its event is durable: the answer stands. A plugin event
        // that could not be stored is logged, not turned into a misleading "not performed".
        if !side_durable {
            tracing::error!(
                status,
                "a plugin's audit event of a committed change could not be stored"
            );
        }
        let action = depot.get_typed::<Action>().map(|a| a.0).unwrap_or_default();
        if change_of(action).is_some_and(|(_, ok)| ok != status) {
            tracing::error!(
                action,
                status,
                "a change committed its event with another status than the answer's"
            );
        }
        return;
    }
    let event = request_event(req, depot, status, "http.request");
    let durable = st.audit.record(event).await.is_ok() && side_durable;
    if !durable {
        res.headers_mut().clear();
        res.body(salvo::http::ResBody::None);
        render_error(
            &ApiError::audit_unavailable(
                "the request's event could not be stored, so it was refused",
            ),
            depot,
            res,
        );
    }
}
