//! `arcan:plugin@0.2.0`, the newest contract. The host functions (`sql`, `http`,
//! `plugin-data`, `log`, `audit` in the parent module) implement these bindings' traits
//! directly; older versions convert to them.
//!
//! New since 0.1.0: `error-kind.unavailable`, `engine-error.retry-after-seconds`, and typed
//! `capability` values in the descriptor.

use std::collections::BTreeSet;

use wasmtime::component::{HasSelf, Linker};

use crate::host::HostState;
use crate::manifest::HostCapability;
use crate::model::{self, HostFault};

wasmtime::component::bindgen!({
    path: "../../wit/arcan-plugin-0.2.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "arcan:plugin/types.host-error" => crate::model::HostFault,
    },
});

use self::arcan::plugin::types;
use self::exports::arcan::plugin::engine;

super::same_in_every_version!();

/// Links `types`, `log` and the granted interfaces.
pub fn link(
    linker: &mut Linker<HostState>,
    grants: &BTreeSet<HostCapability>,
) -> wasmtime::Result<()> {
    use self::arcan::plugin as wit;
    wit::types::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::log::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    for cap in grants {
        match cap {
            HostCapability::Sql => wit::sql::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?,
            HostCapability::Http => {
                wit::http::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?
            }
            HostCapability::Store => {
                wit::plugin_data::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?
            }
            HostCapability::Audit => {
                wit::audit::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?
            }
        }
    }
    Ok(())
}

impl From<types::EngineError> for model::EngineFailure {
    fn from(e: types::EngineError) -> Self {
        use model::ErrorKind as K;
        use types::ErrorKind as W;
        let kind = match e.kind {
            W::InvalidInput => K::InvalidInput,
            W::NotFound => K::NotFound,
            W::Conflict => K::Conflict,
            W::Denied => K::Denied,
            W::Unsupported => K::Unsupported,
            W::Upstream => K::Upstream,
            W::Internal => K::Internal,
            W::Unavailable => K::Unavailable,
        };
        model::EngineFailure {
            kind,
            message: e.message,
            retry_after: e.retry_after_seconds,
        }
    }
}

impl From<engine::Capability> for model::EngineCapability {
    fn from(c: engine::Capability) -> Self {
        match c {
            engine::Capability::DynamicCredentials => model::EngineCapability::DynamicCredentials,
            engine::Capability::RootRotation => model::EngineCapability::RootRotation,
            engine::Capability::StaticRoles => model::EngineCapability::StaticRoles,
        }
    }
}

impl From<engine::Descriptor> for model::Descriptor {
    fn from(d: engine::Descriptor) -> Self {
        // At most one of each, in a fixed order, however long the guest's list.
        let capabilities: BTreeSet<model::EngineCapability> =
            d.capabilities.into_iter().map(Into::into).collect();
        model::Descriptor {
            config_schema: super::parse_schema(&d.config_schema),
            role_schema: super::parse_schema(&d.role_schema),
            name: d.name,
            version: d.version,
            capabilities: capabilities.into_iter().collect(),
        }
    }
}
