//! One module of generated bindings per released `arcan:plugin` version, and the
//! version-dispatching engine handle.
//!
//! The host functions' logic is written once, against the newest bindings ([`latest`]);
//! an older version's module implements its generated host traits by converting its
//! values to the newest ones and back (as zed's extension host does with its `since_v*`
//! modules). Export calls go through [`EnginePre`] and [`EngineInstance`], enums over the
//! versions whose methods take and return the version-neutral [`model`](crate::model)
//! types. Adding a version: a new folder in `wit/`, a module here with its bindgen and
//! conversions, a variant in each enum and in [`ContractVersion`].

use std::collections::BTreeSet;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::HostState;
use crate::manifest::HostCapability;
use crate::model::{CallContext, ContractVersion, Credential, Descriptor, EngineFailure};

/// What reads the same in every version's bindings: turning a [`HostFault`] into the
/// guest's `host-error` (or a trap), the call context, and an issued credential. Expanded
/// in each version's module, where `types`, `engine` and `model` name that version's
/// generated modules and the neutral model.
///
/// [`HostFault`]: crate::model::HostFault
macro_rules! same_in_every_version {
    () => {
        impl types::Host for HostState {
            fn convert_host_error(&mut self, err: HostFault) -> wasmtime::Result<types::HostError> {
                Ok(match err {
                    HostFault::Denied(m) => types::HostError::Denied(m),
                    HostFault::Invalid(m) => types::HostError::Invalid(m),
                    HostFault::Upstream(m) => types::HostError::Upstream(m),
                    HostFault::Trap(e) => return Err(e),
                })
            }
        }

        impl From<&model::CallContext> for types::CallContext {
            fn from(c: &model::CallContext) -> Self {
                types::CallContext {
                    request_id: c.request_id.clone(),
                    user_id: c.user_id.clone(),
                    token_id: c.token_id.clone(),
                    realm_id: c.realm_id.clone(),
                    realm: c.realm.clone(),
                    mount: c.mount.clone(),
                    lease_id: c.lease_id.clone(),
                    role: c.role.clone(),
                }
            }
        }

        impl From<engine::Credential> for model::Credential {
            fn from(c: engine::Credential) -> Self {
                model::Credential {
                    data: c.data,
                    ttl_seconds: c.ttl_seconds,
                    renewable: c.renewable,
                    revocable: c.revocable,
                    internal: c.internal,
                }
            }
        }
    };
}
use same_in_every_version;

pub mod v0_1;
pub mod v0_2;

/// The newest contract version's bindings: the host functions are implemented on these.
pub use v0_2 as latest;

/// The result of an export call: a trap (outer) or the engine's own answer (inner).
pub type ExportResult<T> = wasmtime::Result<Result<T, EngineFailure>>;

/// A component linked with deny-all WASI, `log`, `types` and the granted interfaces of its
/// contract version, ready to instantiate.
pub enum EnginePre {
    /// Built against `arcan:plugin@0.1.0`.
    V0_1(v0_1::PluginPre<HostState>),
    /// Built against `arcan:plugin@0.2.0`.
    V0_2(v0_2::PluginPre<HostState>),
}

impl std::fmt::Debug for EnginePre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EnginePre").field(&self.contract()).finish()
    }
}

impl EnginePre {
    /// Links and pre-instantiates `component` for its contract version.
    pub fn new(
        engine: &Engine,
        component: &Component,
        grants: &BTreeSet<HostCapability>,
        contract: ContractVersion,
    ) -> wasmtime::Result<Self> {
        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Ok(match contract {
            ContractVersion::V0_1 => {
                v0_1::link(&mut linker, grants)?;
                EnginePre::V0_1(v0_1::PluginPre::new(linker.instantiate_pre(component)?)?)
            }
            ContractVersion::V0_2 => {
                v0_2::link(&mut linker, grants)?;
                EnginePre::V0_2(v0_2::PluginPre::new(linker.instantiate_pre(component)?)?)
            }
        })
    }

    /// The contract version the component was built against.
    pub fn contract(&self) -> ContractVersion {
        match self {
            EnginePre::V0_1(_) => ContractVersion::V0_1,
            EnginePre::V0_2(_) => ContractVersion::V0_2,
        }
    }

    /// A fresh instance in `store`.
    pub async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<EngineInstance> {
        Ok(match self {
            EnginePre::V0_1(pre) => EngineInstance::V0_1(pre.instantiate_async(store).await?),
            EnginePre::V0_2(pre) => EngineInstance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// One instance of an engine, whatever its contract version; its methods are the `engine`
/// exports in version-neutral types.
pub enum EngineInstance {
    /// `arcan:plugin@0.1.0`.
    V0_1(v0_1::Plugin),
    /// `arcan:plugin@0.2.0`.
    V0_2(v0_2::Plugin),
}

/// Runs `$body` with `$e` bound to the instance's `engine` export, whichever contract
/// version the instance is of: the generated export types differ per version, the calls and
/// the conversions to the model (`Into`) read the same.
macro_rules! each_version {
    ($instance:expr, $e:ident => $body:expr) => {
        match $instance {
            EngineInstance::V0_1(p) => {
                let $e = p.arcan_plugin_engine();
                $body
            }
            EngineInstance::V0_2(p) => {
                let $e = p.arcan_plugin_engine();
                $body
            }
        }
    };
}

impl EngineInstance {
    /// `describe`.
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Descriptor> {
        Ok(each_version!(self, e => e.call_describe(store).await?.into()))
    }

    /// `configure(config)`: the stored form of the configuration.
    pub async fn configure(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
    ) -> ExportResult<String> {
        Ok(each_version!(self, e => e
                .call_configure(store, &ctx.into(), config)
                .await?
                .map_err(Into::into)))
    }

    /// `validate-role(config, role)`: the stored form of the role.
    pub async fn validate_role(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
        role: &str,
    ) -> ExportResult<String> {
        Ok(each_version!(self, e => e
                .call_validate_role(store, &ctx.into(), config, role)
                .await?
                .map_err(Into::into)))
    }

    /// `issue(config, role, ttl)`.
    pub async fn issue(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
        role: &str,
        ttl_seconds: u64,
    ) -> ExportResult<Credential> {
        Ok(each_version!(self, e => e
                .call_issue(store, &ctx.into(), config, role, ttl_seconds)
                .await?
                .map(Into::into)
                .map_err(Into::into)))
    }

    /// `renew(config, role, internal, ttl)`: the seconds granted.
    pub async fn renew(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
        role: &str,
        internal: &str,
        ttl_seconds: u64,
    ) -> ExportResult<u64> {
        Ok(each_version!(self, e => e
                .call_renew(store, &ctx.into(), config, role, internal, ttl_seconds)
                .await?
                .map_err(Into::into)))
    }

    /// `revoke(config, role, internal)`.
    pub async fn revoke(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
        role: &str,
        internal: &str,
    ) -> ExportResult<()> {
        Ok(each_version!(self, e => e
                .call_revoke(store, &ctx.into(), config, role, internal)
                .await?
                .map_err(Into::into)))
    }

    /// `rotate-root(config)`.
    pub async fn rotate_root(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext,
        config: &str,
    ) -> ExportResult<()> {
        Ok(each_version!(self, e => e
                .call_rotate_root(store, &ctx.into(), config)
                .await?
                .map_err(Into::into)))
    }
}

/// A descriptor's JSON Schema: `null` when the engine sent something that is not JSON.
fn parse_schema(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
}
