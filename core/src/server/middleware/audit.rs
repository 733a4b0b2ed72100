//! The audit observer: one event per API request, refusals included, emitted after the
//! response is decided. Routes name their action with [`Action`]; handlers may attach
//! non-secret facts with [`AuditDetail`].

use std::sync::Arc;

use salvo::prelude::*;

use super::super::state::{AppState, state};
use super::policy::RealmCtx;
use super::rate_limit::client_of;
use super::request_id::RequestId;
use crate::audit::{Actor, Event, outcome_of};
use crate::auth::Principal;
use crate::util::{new_id, now_ms, rfc3339};

/// The audit action of a route, e.g. `secrets.read`.
#[derive(Debug, Clone, Copy)]
pub struct Action(pub &'static str);

/// Facts a handler adds to its request's event (never a secret value).
#[derive(Debug, Clone)]
pub struct AuditDetail(pub serde_json::Value);

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
            user_id: principal.map(|p| p.user_id.clone()),
            token_id: principal.map(|p| p.token_id.clone()),
            auth_method: if principal.is_some() { "token" } else { "none" }.to_owned(),
            ip: Some(client_of(req, depot).to_string()),
        },
        realm_id: realm.map(|r| r.realm.id.clone()),
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

/// Emits the event of an API request (paths under `/api/`; health, metrics and the
/// OpenAPI document are not audited).
pub fn emit_for(
    st: &AppState,
    req: &Request,
    depot: &Depot,
    status: u16,
    default_action: &'static str,
) {
    if st.config.audit.enabled && req.uri().path().starts_with("/api/") {
        st.audit
            .emit(request_event(req, depot, status, default_action));
    }
}

/// The hoop.
#[handler]
pub async fn audit(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    ctrl.call_next(req, depot, res).await;
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let st = state(depot).clone();
    emit_for(&st, req, depot, status, "http.request");
}
