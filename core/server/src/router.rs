//! The route table. Every route names its audit action; every route under `/api/v1` except
//! login and registration passes the auth guardian, and declares its policy need.

use std::sync::Arc;

use salvo::oapi::OpenApi;
use salvo::prelude::*;
use salvo::routing::filters::{MethodFilter, delete, get, post, put};

use super::handlers::{
    audit, auth, auth_methods, engines, leases, login_roles, machine_login, policy, realms,
    secrets, sys, tokens,
};
use super::middleware::audit::Action;
use super::middleware::policy::{Guard, Need, need};
use super::middleware::{audit as audit_mw, auth as authn, logging, rate_limit, request_id};
use super::state::{AppState, InjectState};
use arcan_rbac::Capability::*;

/// A public route: action and rate limit, no token.
fn public(method: MethodFilter, action: &'static str, goal: impl Handler) -> Router {
    Router::with_filter(method)
        .hoop(Action(action))
        .hoop(rate_limit::public)
        .hoop(audit_mw::change_scope)
        .goal(goal)
}

/// An authenticated route: action, rate limit, auth, then the policy guard.
fn guarded(method: MethodFilter, action: &'static str, guard: Guard, goal: impl Handler) -> Router {
    Router::with_filter(method)
        .hoop(Action(action))
        .hoop(rate_limit::rate_limit)
        .hoop(authn::auth)
        .hoop(guard)
        .hoop(audit_mw::change_scope)
        .goal(goal)
}

const AUTHED: Guard = Guard(Need::Authenticated);
const MEMBER: Guard = Guard(Need::RealmMember);

/// `/auth/methods`: machine-identity methods and login roles (global `auth:manage`), and
/// the public machine login.
fn auth_methods_routes() -> Router {
    const AUTH: Guard = Guard(Need::Global(AuthManage));
    Router::with_path("auth/methods")
        .push(guarded(
            get(),
            "auth.methods.list",
            AUTH,
            auth_methods::list,
        ))
        .push(guarded(
            post(),
            "auth.methods.enable",
            AUTH,
            auth_methods::enable,
        ))
        .push(
            Router::with_path("{name}")
                .push(guarded(
                    get(),
                    "auth.methods.read",
                    AUTH,
                    auth_methods::read,
                ))
                .push(guarded(
                    put(),
                    "auth.methods.update",
                    AUTH,
                    auth_methods::update,
                ))
                .push(guarded(
                    delete(),
                    "auth.methods.disable",
                    AUTH,
                    auth_methods::disable,
                ))
                .push(Router::with_path("login").push(public(
                    post(),
                    "auth.method.login",
                    machine_login::login,
                )))
                .push(Router::with_path("roles").push(guarded(
                    get(),
                    "auth.roles.list",
                    AUTH,
                    login_roles::list,
                )))
                .push(
                    Router::with_path("roles/{role}")
                        .push(guarded(get(), "auth.roles.read", AUTH, login_roles::read))
                        .push(guarded(put(), "auth.roles.write", AUTH, login_roles::put))
                        .push(guarded(
                            delete(),
                            "auth.roles.delete",
                            AUTH,
                            login_roles::delete,
                        )),
                ),
        )
}

/// Builds the router with the OpenAPI document at `/api/v1/openapi.json`.
pub fn build(state: Arc<AppState>) -> Router {
    let realm = Router::with_path("realms/{slug}")
        .push(guarded(get(), "realms.read", MEMBER, realms::get))
        .push(guarded(
            delete(),
            "realms.delete",
            need(PolicyManage),
            realms::delete,
        ))
        .push(
            Router::with_path("secrets")
                .push(guarded(
                    get(),
                    "secrets.list",
                    need(SecretsList),
                    secrets::list,
                ))
                .push(
                    Router::with_path("{**key}")
                        .push(guarded(
                            get(),
                            "secrets.read",
                            need(SecretsRead),
                            secrets::get,
                        ))
                        .push(guarded(
                            put(),
                            "secrets.write",
                            need(SecretsWrite),
                            secrets::put,
                        ))
                        .push(guarded(
                            delete(),
                            "secrets.delete",
                            need(SecretsDelete),
                            secrets::delete,
                        )),
                ),
        )
        .push(Router::with_path("metadata/{**key}").push(guarded(
            get(),
            "secrets.history",
            need(SecretsList),
            secrets::history,
        )))
        .push(
            Router::with_path("roles")
                .push(guarded(
                    get(),
                    "roles.list",
                    need(PolicyManage),
                    policy::roles,
                ))
                .push(guarded(
                    post(),
                    "roles.write",
                    need(PolicyManage),
                    policy::put_role,
                ))
                .push(Router::with_path("{name}").push(guarded(
                    delete(),
                    "roles.delete",
                    need(PolicyManage),
                    policy::delete_role,
                ))),
        )
        .push(
            Router::with_path("bindings")
                .push(guarded(
                    get(),
                    "bindings.list",
                    need(PolicyManage),
                    policy::bindings,
                ))
                .push(guarded(
                    post(),
                    "bindings.create",
                    need(PolicyManage),
                    policy::bind,
                ))
                .push(Router::with_path("{id}").push(guarded(
                    delete(),
                    "bindings.delete",
                    need(PolicyManage),
                    policy::unbind,
                ))),
        )
        .push(Router::with_path("policy/explain").push(guarded(
            post(),
            "policy.explain",
            need(PolicyManage),
            policy::explain,
        )))
        .push(
            Router::with_path("engines")
                .push(guarded(
                    get(),
                    "engines.list",
                    need(EnginesRead),
                    engines::list,
                ))
                .push(guarded(
                    post(),
                    "engines.mount",
                    need(EnginesManage),
                    engines::enable,
                ))
                .push(
                    Router::with_path("{mount}")
                        .push(guarded(
                            get(),
                            "engines.read",
                            need(EnginesRead),
                            engines::read,
                        ))
                        .push(guarded(
                            delete(),
                            "engines.unmount",
                            need(EnginesManage),
                            engines::disable,
                        ))
                        .push(Router::with_path("roles").push(guarded(
                            get(),
                            "engines.roles.list",
                            need(EnginesRead),
                            engines::roles,
                        )))
                        .push(
                            Router::with_path("roles/{role}")
                                .push(guarded(
                                    get(),
                                    "engines.roles.read",
                                    need(EnginesRead),
                                    engines::get_role,
                                ))
                                .push(guarded(
                                    put(),
                                    "engines.roles.write",
                                    need(EnginesManage),
                                    engines::put_role,
                                ))
                                .push(guarded(
                                    delete(),
                                    "engines.roles.delete",
                                    need(EnginesManage),
                                    engines::delete_role,
                                )),
                        )
                        .push(Router::with_path("creds/{role}").push(guarded(
                            post(),
                            "engines.creds",
                            need(LeasesCreate),
                            engines::creds,
                        )))
                        .push(Router::with_path("rotate-root").push(guarded(
                            post(),
                            "engines.rotate_root",
                            need(EnginesManage),
                            engines::rotate_root,
                        ))),
                ),
        )
        .push(
            Router::with_path("leases")
                .push(guarded(
                    get(),
                    "leases.list",
                    need(LeasesRead),
                    leases::list,
                ))
                .push(Router::with_path("renew").push(guarded(
                    post(),
                    "leases.renew",
                    need(LeasesCreate),
                    leases::renew,
                )))
                .push(Router::with_path("revoke").push(guarded(
                    post(),
                    "leases.revoke",
                    need(LeasesRevoke),
                    leases::revoke,
                )))
                .push(Router::with_path("revoke-prefix").push(guarded(
                    post(),
                    "leases.revoke_prefix",
                    need(LeasesRevoke),
                    leases::revoke_prefix,
                )))
                .push(Router::with_path("{**id}").push(guarded(
                    get(),
                    "leases.read",
                    need(LeasesRead),
                    leases::get,
                ))),
        )
        .push(
            Router::with_path("audit")
                .push(guarded(get(), "audit.list", need(AuditRead), audit::list))
                .push(Router::with_path("verify").push(guarded(
                    get(),
                    "audit.verify",
                    need(AuditRead),
                    audit::verify,
                ))),
        );

    let api = Router::with_path("api/v1")
        .push(Router::with_path("auth/register").push(public(
            post(),
            "auth.register",
            auth::register,
        )))
        .push(Router::with_path("auth/login").push(public(post(), "auth.login", auth::login)))
        .push(auth_methods_routes())
        .push(
            Router::with_path("realms")
                .push(guarded(get(), "realms.list", AUTHED, realms::list))
                .push(guarded(
                    post(),
                    "realms.create",
                    Guard(Need::Global(RealmsManage)),
                    realms::create,
                )),
        )
        .push(realm)
        .push(Router::with_path("plugins").push(guarded(
            get(),
            "plugins.list",
            Guard(Need::Global(PluginsRead)),
            engines::plugins,
        )))
        .push(
            Router::with_path("tokens")
                .push(guarded(get(), "tokens.list", AUTHED, tokens::list))
                .push(guarded(post(), "tokens.create", AUTHED, tokens::create))
                .push(Router::with_path("self").push(guarded(
                    get(),
                    "tokens.lookup_self",
                    AUTHED,
                    tokens::lookup_self,
                )))
                .push(Router::with_path("{id}").push(guarded(
                    delete(),
                    "tokens.revoke",
                    AUTHED,
                    tokens::revoke,
                ))),
        )
        .push(
            Router::with_path("sys/master-key")
                .push(guarded(
                    get(),
                    "sys.master_key.verify",
                    Guard(Need::Global(SysManage)),
                    sys::master_key_verify,
                ))
                .push(Router::with_path("rewrap").push(guarded(
                    post(),
                    "sys.master_key.rewrap",
                    Guard(Need::Global(SysManage)),
                    sys::master_key_rewrap,
                ))),
        )
        .push(
            Router::with_path("audit")
                .push(Router::with_path("status").push(guarded(
                    get(),
                    "audit.status",
                    Guard(Need::Global(AuditManage)),
                    audit::status,
                )))
                .push(Router::with_path("hash").push(guarded(
                    post(),
                    "audit.hash",
                    Guard(Need::Global(AuditManage)),
                    audit::hash,
                )))
                .push(
                    Router::with_path("sinks")
                        .push(guarded(
                            get(),
                            "audit.sinks.list",
                            Guard(Need::Global(AuditManage)),
                            audit::list_sinks,
                        ))
                        .push(guarded(
                            post(),
                            "audit.sinks.add",
                            Guard(Need::Global(AuditManage)),
                            audit::add_sink,
                        ))
                        .push(Router::with_path("{name}").push(guarded(
                            delete(),
                            "audit.sinks.remove",
                            Guard(Need::Global(AuditManage)),
                            audit::remove_sink,
                        ))),
                ),
        );

    let app = Router::new()
        .push(Router::with_path("health").push(public(get(), "sys.health", sys::health)))
        .push(Router::with_path("metrics").push(public(get(), "sys.metrics", sys::metrics)))
        .push(api);

    let doc = OpenApi::new("Arcan", env!("CARGO_PKG_VERSION")).merge_router(&app);
    Router::new()
        .hoop(InjectState(state))
        .hoop(request_id::request_id)
        .hoop(logging::logging)
        .hoop(audit_mw::audit)
        .push(app)
        .push(
            doc.into_router("/api/v1/openapi.json")
                .hoop(rate_limit::public),
        )
}
