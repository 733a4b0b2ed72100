//! The route table. Every route under `/api/v1` except login and registration passes the
//! auth hoop, and every route declares its policy need with a guard.

use std::sync::Arc;

use salvo::oapi::OpenApi;
use salvo::prelude::*;

use super::handlers::{auth, policy, realms, secrets, sys, tokens};
use super::middleware::policy::{Guard, Need, need};
use super::middleware::{auth as authn, logging, rate_limit, request_id};
use super::state::{AppState, InjectState};
use crate::rbac::Capability::*;

fn guarded(
    method: salvo::routing::filters::MethodFilter,
    guard: Guard,
    goal: impl Handler,
) -> Router {
    Router::with_filter(method).hoop(guard).goal(goal)
}

use salvo::routing::filters::{delete, get, post, put};

/// Builds the router with the OpenAPI document at `/api/v1/openapi.json`.
pub fn build(state: Arc<AppState>) -> Router {
    let realm = Router::with_path("realms/{slug}")
        .push(guarded(get(), Guard(Need::RealmMember), realms::get))
        .push(guarded(delete(), need(PolicyManage), realms::delete))
        .push(
            Router::with_path("secrets")
                .push(guarded(get(), need(SecretsList), secrets::list))
                .push(
                    Router::with_path("{**key}")
                        .push(guarded(get(), need(SecretsRead), secrets::get))
                        .push(guarded(put(), need(SecretsWrite), secrets::put))
                        .push(guarded(delete(), need(SecretsDelete), secrets::delete)),
                ),
        )
        .push(Router::with_path("metadata/{**key}").push(guarded(
            get(),
            need(SecretsList),
            secrets::history,
        )))
        .push(
            Router::with_path("roles")
                .push(guarded(get(), need(PolicyManage), policy::roles))
                .push(guarded(post(), need(PolicyManage), policy::put_role))
                .push(Router::with_path("{name}").push(guarded(
                    delete(),
                    need(PolicyManage),
                    policy::delete_role,
                ))),
        )
        .push(
            Router::with_path("bindings")
                .push(guarded(get(), need(PolicyManage), policy::bindings))
                .push(guarded(post(), need(PolicyManage), policy::bind))
                .push(Router::with_path("{id}").push(guarded(
                    delete(),
                    need(PolicyManage),
                    policy::unbind,
                ))),
        )
        .push(Router::with_path("policy/explain").push(guarded(
            post(),
            need(PolicyManage),
            policy::explain,
        )));

    let authed = Router::new()
        .hoop(authn::auth)
        .push(
            Router::with_path("realms")
                .push(guarded(get(), Guard(Need::Authenticated), realms::list))
                .push(guarded(
                    post(),
                    Guard(Need::Global(RealmsManage)),
                    realms::create,
                )),
        )
        .push(realm)
        .push(
            Router::with_path("tokens")
                .push(guarded(get(), Guard(Need::Authenticated), tokens::list))
                .push(guarded(post(), Guard(Need::Authenticated), tokens::create))
                .push(Router::with_path("self").push(guarded(
                    get(),
                    Guard(Need::Authenticated),
                    tokens::lookup_self,
                )))
                .push(Router::with_path("{id}").push(guarded(
                    delete(),
                    Guard(Need::Authenticated),
                    tokens::revoke,
                ))),
        )
        .push(
            Router::with_path("sys/master-key")
                .push(guarded(
                    get(),
                    Guard(Need::Authenticated),
                    sys::master_key_verify,
                ))
                .push(Router::with_path("rewrap").push(guarded(
                    post(),
                    Guard(Need::Authenticated),
                    sys::master_key_rewrap,
                ))),
        );

    let api = Router::with_path("api/v1")
        .push(Router::with_path("auth/register").post(auth::register))
        .push(Router::with_path("auth/login").post(auth::login))
        .push(authed);

    let app = Router::new()
        .push(Router::with_path("health").get(sys::health))
        .push(Router::with_path("metrics").get(sys::metrics))
        .push(api);

    let doc = OpenApi::new("Arcan", env!("CARGO_PKG_VERSION")).merge_router(&app);
    Router::new()
        .hoop(InjectState(state))
        .hoop(request_id::request_id)
        .hoop(logging::logging)
        .hoop(rate_limit::rate_limit)
        .push(app)
        .push(doc.into_router("/api/v1/openapi.json"))
}
