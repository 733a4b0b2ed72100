//! The engine registry: installed plugins, mounts per realm and their loaded handles.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::EngineError;
use arcan_audit::Auditor;
use arcan_config::Config;
use arcan_crypto::Keyring;
use arcan_plugin_host::connections::{ConnectionSpec, Connections, open_specs};
use arcan_plugin_host::host::{EnginePre, HostServices, MountScope};
use arcan_plugin_host::manifest::{host_capabilities, valid_name};
use arcan_plugin_host::{
    CallInfo, EngineCall, HostCapability, LoadedPlugin, Manifest, PluginError, Runtime,
};
use arcan_store::MountRecord;
use arcan_store::prelude::*;

/// The name of the built-in KV engine in listings.
pub const BUILTIN_KV: &str = "kv";

/// A mount ready to be called.
pub struct MountHandle {
    /// Its record (as loaded).
    pub record: MountRecord,
    /// The plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// Pre-instantiated component with the granted interfaces linked.
    pub pre: EnginePre,
    /// The scope host calls run in.
    pub scope: Arc<MountScope>,
}

/// An installed plugin as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// Its manifest.
    #[serde(flatten)]
    pub manifest: Manifest,
    /// sha256 of its component, when it loaded.
    pub digest: Option<String>,
    /// Why it did not load.
    pub error: Option<String>,
}

/// Plugins, mounts and the runtime.
pub struct Engines {
    /// The wasm runtime.
    pub runtime: Runtime,
    /// Services host calls use.
    pub services: Arc<HostServices>,
    plugins_dir: PathBuf,
    handles: Mutex<HashMap<String, Arc<MountHandle>>>,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines").finish_non_exhaustive()
    }
}

/// Parses operator grants: host capabilities only, each declared by the manifest.
pub fn parse_grants(
    manifest: &Manifest,
    grants: &[String],
) -> Result<BTreeSet<HostCapability>, EngineError> {
    let declared = host_capabilities(manifest);
    let mut out = BTreeSet::new();
    for g in grants {
        let cap: HostCapability = g.parse().map_err(EngineError::Invalid)?;
        if !declared.contains(&cap) {
            return Err(EngineError::Invalid(format!(
                "cannot grant `{cap}`: plugin `{}` does not declare it",
                manifest.name
            )));
        }
        out.insert(cap);
    }
    Ok(out)
}

impl Engines {
    /// The registry over the configured plugin directory.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        audit: Auditor,
    ) -> Result<Self, PluginError> {
        let runtime = Runtime::new(&config.plugins, config.plugin_cache_dir())?;
        let services = Arc::new(HostServices {
            store,
            keyring,
            audit,
            audit_enabled: config.audit.enabled,
            limits: runtime.limits().clone(),
        });
        Ok(Self {
            runtime,
            services,
            plugins_dir: config.plugins_dir(),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Runs a plugin through the pipeline up to compilation.
    pub fn load(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        if !valid_name(name) {
            return Err(PluginError::NotInstalled(name.to_owned()));
        }
        let dir = self.plugins_dir.join(name);
        if !dir.join("manifest.json").is_file() {
            return Err(PluginError::NotInstalled(name.to_owned()));
        }
        let plugin = self.runtime.load(&dir)?;
        if plugin.manifest.name != name {
            return Err(PluginError::Manifest(format!(
                "directory `{name}` holds a plugin named `{}`",
                plugin.manifest.name
            )));
        }
        Ok(plugin)
    }

    /// Installed plugins, each loaded through the pipeline.
    pub fn installed(&self) -> Vec<Installed> {
        let Ok(dir) = std::fs::read_dir(&self.plugins_dir) else {
            return Vec::new();
        };
        // Hidden entries are installs and removals in progress.
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| match self.load(&name) {
                Ok(p) => Some(Installed {
                    manifest: p.manifest.clone(),
                    digest: Some(p.digest.clone()),
                    error: None,
                }),
                Err(PluginError::NotInstalled(_)) => None,
                Err(e) => {
                    let bytes =
                        std::fs::read(self.plugins_dir.join(&name).join("manifest.json")).ok()?;
                    let manifest = serde_json::from_slice(&bytes).ok()?;
                    Some(Installed {
                        manifest,
                        digest: None,
                        error: Some(e.to_string()),
                    })
                }
            })
            .collect()
    }

    /// Builds a handle: prepare with the grants, bind the connections.
    pub fn build(
        &self,
        realm: &str,
        record: MountRecord,
        plugin: Arc<LoadedPlugin>,
        specs: BTreeMap<String, ConnectionSpec>,
    ) -> Result<MountHandle, EngineError> {
        let grants = parse_grants(&plugin.manifest, &record.grants)?;
        for (name, spec) in &specs {
            if !grants.contains(&spec.capability()) {
                return Err(EngineError::Invalid(format!(
                    "connection `{name}` needs `{}`, which is not granted",
                    spec.capability()
                )));
            }
        }
        let pre = self.runtime.prepare(&plugin, &grants)?;
        let scope = Arc::new(MountScope {
            realm_id: record.realm_id.clone(),
            realm: realm.to_owned(),
            mount_id: record.id.clone(),
            mount: record.name.clone(),
            plugin: plugin.manifest.name.clone(),
            services: self.services.clone(),
            connections: Arc::new(Connections::new(
                specs,
                self.services.limits.host_call_timeout,
            )),
        });
        Ok(MountHandle {
            record,
            plugin,
            pre,
            scope,
        })
    }

    /// The loaded handle of a mount, rebuilt when the record changed (on this or another node).
    pub async fn handle(
        &self,
        realm: &str,
        record: MountRecord,
    ) -> Result<Arc<MountHandle>, EngineError> {
        if let Some(h) = self.cached(&record.id)
            && h.record.updated_at == record.updated_at
            && h.scope.realm == realm
        {
            return Ok(h);
        }
        let sv = &self.services;
        let specs = open_specs(
            sv.store.as_ref(),
            &sv.keyring,
            &record.realm_id,
            &record.id,
            &record.connections_sealed,
        )
        .await?;
        let plugin = self.load(&record.plugin)?;
        let id = record.id.clone();
        let handle = Arc::new(self.build(realm, record, plugin, specs)?);
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle.clone());
        Ok(handle)
    }

    fn cached(&self, id: &str) -> Option<Arc<MountHandle>> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Drops a mount's handle (unmounted).
    pub fn forget(&self, mount_id: &str) {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(mount_id);
    }

    /// A call of one export on a fresh instance of the mount, for the request `info`.
    pub fn call<'a>(&'a self, h: &'a MountHandle, info: CallInfo) -> EngineCall<'a> {
        EngineCall::new(&self.runtime, &h.pre, h.scope.clone(), info)
    }
}
