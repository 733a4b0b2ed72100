//! Engine mounts: `/api/v1/realms/{slug}/engines[/{mount}[/roles/{role}|/creds/{role}|/rotate-root]]`
//! and the installed plugins at `/api/v1/plugins`. The response bodies are in [`responses`].

pub mod responses;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use salvo::oapi::ToSchema;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::extract::Body;
use super::super::middleware::audit::audit_detail;
use super::super::middleware::auth::principal;
use super::super::middleware::policy::{RealmCtx, resolve_realm};
use super::super::middleware::request_id::RequestId;
use super::super::state::{AppState, state};
use arcan_engine::EngineError;
use arcan_engine::leases::{self, StoredRole};
use arcan_engine::registry::{BUILTIN_KV, Engines, MountHandle, parse_grants};
use arcan_plugin_host::CallInfo;
use arcan_plugin_host::connections::{parse_specs, public_view, seal_specs};
use arcan_plugin_host::manifest::valid_name;
use arcan_rbac::Capability;
use arcan_store::{EngineRoleRecord, MountRecord};
use arcan_util::{new_id, now_ms};
use responses::{
    BuiltinMount, DescribedMount, EngineRole, EngineRoleList, IssuedCredential, Mount, MountDetail,
    MountEntry, MountList, PluginList, RootRotated, Unmounted,
};

/// Body of a mount.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountBody {
    /// Mount name in the realm (`[a-z0-9-]`).
    pub name: String,
    /// Installed plugin name.
    pub plugin: String,
    /// Engine configuration (validated by the engine).
    #[serde(default)]
    pub config: Option<Value>,
    /// Named connections: `{"db": {"type": "postgres", "url": "postgres://…"}}`. Every
    /// endpoint must match `plugins.connections.allow` unless the caller holds
    /// `connections:manage`; unix sockets and metadata addresses need an explicit entry.
    #[serde(default)]
    pub connections: Option<Value>,
    /// Host capabilities granted, e.g. `["host:sql"]`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Check that PostgreSQL connections answer before mounting (default true).
    #[serde(default)]
    pub verify_connections: Option<bool>,
}

/// Body of a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// Credential lifetime unless the request asks for less, e.g. `1h` (default 1h).
    #[serde(default)]
    pub default_ttl: Option<String>,
    /// Longest lifetime, renewals included, e.g. `24h` (default 24h).
    #[serde(default)]
    pub max_ttl: Option<String>,
    /// The engine's role definition.
    pub definition: Value,
}

/// Body of a credential request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredsBody {
    /// Requested lifetime, e.g. `15m` (default: the role's default_ttl).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Parses a humantime duration from the API.
pub fn duration(field: &str, s: &str) -> ApiResult<Duration> {
    humantime::parse_duration(s).map_err(|_| {
        ApiError::bad_request(format!("{field} `{s}` is not a duration like 30m or 24h"))
    })
}

/// The call context of a request.
pub fn call_info(req: &Request, depot: &Depot) -> CallInfo {
    let p = principal(depot).ok();
    CallInfo {
        request_id: depot
            .get_typed::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        user_id: p.as_ref().map(|p| p.user_id.to_string()),
        token_id: p.as_ref().map(|p| p.token_id.to_string()),
        ip: req.remote_addr().ip().map(|ip| ip.to_string()),
        lease_id: None,
        role: None,
    }
}

fn realm_of(ctx: &RealmCtx) -> (&arcan_store::RealmId, &str) {
    (&ctx.realm.id, &ctx.realm.slug)
}

async fn mount_record(st: &AppState, ctx: &RealmCtx, mount: &str) -> ApiResult<MountRecord> {
    st.store
        .mount_get(&ctx.realm.id, mount)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no engine is mounted at `{mount}`")))
}

/// The loaded handle of a mount of the request's realm.
async fn mount_handle(st: &AppState, ctx: &RealmCtx, mount: &str) -> ApiResult<Arc<MountHandle>> {
    let record = mount_record(st, ctx, mount).await?;
    Ok(st.engines.handle(&ctx.realm.slug, record).await?)
}

/// Mounts an engine in the realm.
#[endpoint(
    tags("engines"),
    status_codes(201, 400, 401, 403, 404, 413, 429),
    responses((status_code = 201, body = Mount, description = "The mount created"))
)]
pub async fn enable(
    slug: PathParam<String>,
    body: Body<MountBody>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Mount>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let who = principal(depot)?;
    let b = body.0;
    if !valid_name(&b.name) || b.name == BUILTIN_KV {
        return Err(ApiError::bad_request(
            "mount name must be 1-64 characters of a-z 0-9 - (and not `kv`)",
        ));
    }
    let engines: &Engines = &st.engines;
    let plugin = engines.load(&b.plugin).map_err(EngineError::from)?;
    parse_grants(&plugin.manifest, &b.grants)?;
    let specs = match b.connections {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => parse_specs(v).map_err(ApiError::bad_request)?,
    };
    // Where the connections point is the operator's decision, made before anything
    // connects (verification included).
    let allowlist = st
        .config
        .plugins
        .connections
        .allowlist()
        .map_err(ApiError::internal)?;
    let may_manage = who.has_global(Capability::ConnectionsManage);
    allowlist.check_specs(&specs, may_manage)?;
    allowlist.check_resolution(&specs, may_manage).await?;
    let config = b.config.unwrap_or_else(|| json!({}));
    let now = now_ms();
    let mut record = MountRecord {
        id: new_id(),
        realm_id: ctx.realm.id.clone(),
        name: b.name.clone(),
        plugin: plugin.manifest.name.clone(),
        plugin_version: plugin.manifest.version.clone(),
        digest: plugin.digest.clone(),
        config: config.to_string(),
        grants: b.grants.clone(),
        connections: public_view(&specs).to_string(),
        connections_sealed: Vec::new(),
        created_at: now,
        created_by: who.user_id.to_string(),
        updated_at: now,
    };
    let handle = engines.build(
        &ctx.realm.slug,
        record.clone(),
        plugin.clone(),
        specs.clone(),
    )?;
    if b.verify_connections.unwrap_or(true) {
        handle
            .scope
            .connections
            .verify()
            .await
            .map_err(EngineError::Connection)?;
    }
    let normalised = engines
        .call(&handle, call_info(req, depot))
        .configure(record.config.clone())
        .await
        .map_err(EngineError::from)?;
    serde_json::from_str::<Value>(&normalised).map_err(|_| {
        ApiError::bad_gateway(format!(
            "plugin `{}` returned a configuration that is not JSON",
            b.plugin
        ))
    })?;
    record.config = normalised;
    record.connections_sealed = seal_specs(
        st.store.as_ref(),
        &st.keyring,
        &ctx.realm.id,
        &record.id,
        &specs,
    )
    .await?;
    audit_detail(
        depot,
        json!({
            "mount": record.name, "plugin": record.plugin, "version": record.plugin_version,
            "digest": record.digest, "grants": record.grants,
            "connections": specs.keys().collect::<Vec<_>>(),
        }),
    );
    st.store.mount_create(&record).await.map_err(|e| match e {
        arcan_store::StoreError::Conflict => {
            ApiError::conflict(format!("an engine is already mounted at `{}`", record.name))
        }
        other => other.into(),
    })?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(Mount::from(&record)))
}

/// Lists the realm's engines (the built-in `kv` first).
#[endpoint(tags("engines"))]
pub async fn list(slug: PathParam<String>, depot: &mut Depot) -> ApiResult<Json<MountList>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let mut items = vec![MountEntry::Builtin(BuiltinMount::kv())];
    let mounts = st.store.mounts(&ctx.realm.id).await?;
    items.extend(
        mounts
            .iter()
            .map(|m| MountEntry::Mounted(Box::new(m.into()))),
    );
    Ok(Json(MountList { items }))
}

/// Reads one mount, with what its engine describes about itself.
#[endpoint(tags("engines"))]
pub async fn read(
    slug: PathParam<String>,
    mount: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<MountDetail>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    if mount.as_str() == BUILTIN_KV {
        return Ok(Json(MountDetail::Builtin(BuiltinMount::kv())));
    }
    let h = mount_handle(&st, &ctx, &mount).await?;
    let described = st
        .engines
        .call(&h, call_info(req, depot))
        .describe()
        .await
        .map_err(EngineError::from)?;
    Ok(Json(MountDetail::Mounted(Box::new(DescribedMount {
        mount: Mount::from(&h.record),
        describe: described.into(),
        contract: h.pre.contract().package().into(),
    }))))
}

/// Unmounts an engine after revoking its leases (`?force=true` reports unrevocable ones
/// irrevocable instead of refusing).
#[endpoint(tags("engines"))]
pub async fn disable(
    slug: PathParam<String>,
    mount: PathParam<String>,
    force: QueryParam<bool, false>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Unmounted>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    if mount.as_str() == BUILTIN_KV {
        return Err(ApiError::bad_request(
            "the built-in kv engine cannot be unmounted",
        ));
    }
    let report = leases::unmount(
        &st.engines,
        realm_of(&ctx),
        &mount,
        force.into_inner().unwrap_or(false),
        st.config.reaper.grace,
        call_info(req, depot),
    )
    .await?;
    let leases = serde_json::to_value(&report).unwrap_or(Value::Null);
    audit_detail(depot, json!({"mount": mount.as_str(), "leases": leases}));
    Ok(Json(report.into()))
}

/// Creates or replaces a role (validated by the engine).
#[endpoint(tags("engines"))]
pub async fn put_role(
    slug: PathParam<String>,
    mount: PathParam<String>,
    role: PathParam<String>,
    body: Body<RoleBody>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<EngineRole>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    if !valid_name(&role) {
        return Err(ApiError::bad_request(
            "role name must be 1-64 characters of a-z 0-9 -",
        ));
    }
    let b = body.0;
    let max_ttl = duration("max_ttl", b.max_ttl.as_deref().unwrap_or("24h"))?.as_secs();
    let default_ttl = duration("default_ttl", b.default_ttl.as_deref().unwrap_or("1h"))?.as_secs();
    if max_ttl == 0 || default_ttl == 0 {
        return Err(ApiError::bad_request("ttls must be at least 1s"));
    }
    if default_ttl > max_ttl {
        return Err(ApiError::bad_request("default_ttl must not exceed max_ttl"));
    }
    if arcan_util::add_secs_ms(now_ms(), max_ttl).is_none() {
        return Err(ApiError::bad_request(format!(
            "max_ttl of {max_ttl}s is too large"
        )));
    }
    let h = mount_handle(&st, &ctx, &mount).await?;
    let mut info = call_info(req, depot);
    info.role = Some(role.to_string());
    let normalised = st
        .engines
        .call(&h, info)
        .validate_role(h.record.config.clone(), b.definition.to_string())
        .await
        .map_err(EngineError::from)?;
    let definition: Value = serde_json::from_str(&normalised)
        .map_err(|_| ApiError::bad_gateway("the engine returned a role that is not JSON"))?;
    let stored = StoredRole {
        default_ttl,
        max_ttl,
        definition,
    };
    let now = now_ms();
    let existing = st
        .store
        .engine_role_get(&ctx.realm.id, &h.record.id, &role)
        .await?;
    audit_detail(
        depot,
        json!({"mount": mount.as_str(), "role": role.as_str()}),
    );
    st.store
        .engine_role_put(
            &ctx.realm.id,
            &h.record.id,
            &EngineRoleRecord {
                name: role.to_string(),
                definition: serde_json::to_string(&stored).unwrap_or_default(),
                created_at: existing.map(|r| r.created_at).unwrap_or(now),
                updated_at: now,
            },
        )
        .await?;
    Ok(Json(EngineRole::new(&role, stored)))
}

/// Lists a mount's roles.
#[endpoint(tags("engines"))]
pub async fn roles(
    slug: PathParam<String>,
    mount: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<EngineRoleList>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let record = mount_record(&st, &ctx, &mount).await?;
    let mut items = Vec::new();
    for r in st.store.engine_roles(&ctx.realm.id, &record.id).await? {
        items.push(EngineRole::new(&r.name, StoredRole::parse(&r.definition)?));
    }
    Ok(Json(EngineRoleList { items }))
}

/// Reads a role.
#[endpoint(tags("engines"))]
pub async fn get_role(
    slug: PathParam<String>,
    mount: PathParam<String>,
    role: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<EngineRole>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let record = mount_record(&st, &ctx, &mount).await?;
    let r = st
        .store
        .engine_role_get(&ctx.realm.id, &record.id, &role)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role `{}` does not exist", role.as_str())))?;
    Ok(Json(EngineRole::new(
        &r.name,
        StoredRole::parse(&r.definition)?,
    )))
}

/// Deletes a role (its leases stay valid and revocable).
#[endpoint(
    tags("engines"),
    status_codes(204, 400, 401, 403, 404, 413, 429),
    responses((status_code = 204, description = "The role is deleted"))
)]
pub async fn delete_role(
    slug: PathParam<String>,
    mount: PathParam<String>,
    role: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let record = mount_record(&st, &ctx, &mount).await?;
    if !st
        .store
        .engine_role_delete(&ctx.realm.id, &record.id, &role)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "role `{}` does not exist",
            role.as_str()
        )));
    }
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}

/// Issues a credential for a role; the response carries it once, with its lease.
#[endpoint(tags("engines"))]
pub async fn creds(
    slug: PathParam<String>,
    mount: PathParam<String>,
    role: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<IssuedCredential>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let max = st.config.server.max_body_bytes;
    let raw = req
        .payload_with_max_size(max)
        .await
        .map_err(|_| ApiError::bad_request("cannot read request body"))?;
    let body: CredsBody = if raw.is_empty() {
        CredsBody::default()
    } else {
        serde_json::from_slice(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let ttl = body
        .ttl
        .as_deref()
        .map(|t| duration("ttl", t))
        .transpose()?;
    // Issued in its own task: a client that disconnects mid-request cannot cancel it between
    // the engine creating the credential and the lease being stored (or the undo).
    let (engines, info) = (st.engines.clone(), call_info(req, depot));
    let (realm_id, slug) = (ctx.realm.id.clone(), ctx.realm.slug.clone());
    let (m, r) = (mount.to_string(), role.to_string());
    audit_detail(
        depot,
        json!({"mount": mount.as_str(), "role": role.as_str()}),
    );
    let issued = st
        .lifecycle
        .track(arcan_store::change::carry(async move {
            leases::issue(&engines, (&realm_id, &slug), &m, &r, ttl, info).await
        }))
        .await
        .map_err(ApiError::internal)??;
    let l = &issued.lease;
    audit_detail(
        depot,
        json!({
            "mount": mount.as_str(), "role": role.as_str(), "lease_id": l.id, "plugin": l.plugin,
            "ttl": (l.expires_at - l.issued_at) / 1000,
        }),
    );
    Ok(Json(issued.into()))
}

/// Rotates the engine's root credential through the host; nothing is returned.
#[endpoint(tags("engines"))]
pub async fn rotate_root(
    slug: PathParam<String>,
    mount: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<RootRotated>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let h = mount_handle(&st, &ctx, &mount).await?;
    audit_detail(depot, json!({"mount": mount.as_str()}));
    st.engines
        .call(&h, call_info(req, depot))
        .rotate_root(h.record.config.clone())
        .await
        .map_err(EngineError::from)?;
    Ok(Json(RootRotated { rotated: true }))
}

/// Installed plugins, each run through the load pipeline.
#[endpoint(tags("engines"))]
pub async fn plugins(depot: &mut Depot) -> ApiResult<Json<PluginList>> {
    let st = state(depot).clone();
    let engines = st.engines.clone();
    let items = tokio::task::spawn_blocking(move || engines.installed())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(PluginList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}
