//! The wasmtime engine, the compiled-code cache and the load pipeline.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;
use super::host::EnginePre;
use super::manifest::{
    HostCapability, Manifest, check_for_host, host_capabilities, parse_unsigned,
};
use super::model::ContractVersion;
use crate::config::PluginsConfig;
use arcan_registry_client::manifest::{ENGINE, MANIFEST};

/// How often the epoch advances: guest code yields to the async runtime (and checks its
/// deadline) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Largest `engine.wasm` accepted.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;
/// Largest `manifest.json` accepted.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// WASI packages linked (deny-all) for components built with a WASI-targeting toolchain.
const WASI_PACKAGES: &[&str] = &["cli", "io", "clocks", "random", "filesystem", "sockets"];

/// Per-call limits, from `plugins.*`.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Wall-clock deadline of one call.
    pub call_timeout: Duration,
    /// Deadline of one host call.
    pub host_call_timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Largest value an export may return.
    pub max_result_bytes: usize,
    /// Quotas on what one call or one mount may accumulate through host calls.
    pub quotas: Quotas,
}

/// Quotas on host-call side effects, from `plugins.max_*`.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Audit events per call.
    pub audit_events_per_call: u32,
    /// Audit event bytes per call.
    pub audit_bytes_per_call: u32,
    /// Plugin data puts and deletes per call.
    pub data_writes_per_call: u32,
    /// Plugin data keys per mount.
    pub data_keys_per_mount: u64,
    /// Plugin data bytes per mount.
    pub data_bytes_per_mount: u64,
}

/// A plugin that passed the pipeline up to compilation.
pub struct LoadedPlugin {
    /// Its manifest.
    pub manifest: Manifest,
    /// sha256 of `engine.wasm`, hex.
    pub digest: String,
    /// The contract version it was built against (its manifest's `wit`, which its
    /// `engine` export and every `arcan:plugin` import must match).
    pub contract: ContractVersion,
    /// The compiled component.
    pub component: Component,
    /// Host capabilities its imports need.
    pub needs: BTreeSet<HostCapability>,
    /// Its `arcan:plugin` imports, for messages.
    pub imports: Vec<(String, Option<HostCapability>)>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// The engine shared by every plugin, with its epoch ticker and code cache.
pub struct Runtime {
    engine: Engine,
    limits: CallLimits,
    cache_dir: PathBuf,
    compiled: Mutex<HashMap<String, Component>>,
    trusted: Vec<arcan_registry_client::PublicKey>,
    allow_unsigned: bool,
    slots: tokio::sync::Semaphore,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Builds the engine (pooling allocator sized by `max_instances`, epoch interruption)
    /// and starts the epoch ticker.
    pub fn new(cfg: &PluginsConfig, cache_dir: PathBuf) -> Result<Self, PluginError> {
        let trusted = arcan_registry_client::keys::parse_keys(&cfg.trusted_keys)
            .map_err(|e| PluginError::Manifest(format!("plugins.trusted_keys: {e}")))?;
        if cfg.allow_unsigned {
            tracing::warn!(
                "DEVELOPMENT OVERRIDE plugins.allow_unsigned is on: plugins without a signature load"
            );
        }
        let memory_bytes = (cfg.memory_limit_mb as usize) * 1024 * 1024;
        let slots = cfg.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
            .max_memory_size(memory_bytes);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| PluginError::Invalid {
            plugin: "(engine)".into(),
            message: e.to_string(),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.weak();
        let stop_ticker = stop.clone();
        std::thread::Builder::new()
            .name("arcan-epoch".into())
            .spawn(move || {
                while !stop_ticker.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Io(format!("epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            limits: CallLimits {
                call_timeout: cfg.call_timeout,
                host_call_timeout: cfg.host_call_timeout,
                memory_bytes,
                max_result_bytes: cfg.max_result_bytes,
                quotas: Quotas {
                    audit_events_per_call: cfg.max_audit_events_per_call,
                    audit_bytes_per_call: cfg.max_audit_bytes_per_call,
                    data_writes_per_call: cfg.max_data_writes_per_call,
                    data_keys_per_mount: cfg.max_data_keys_per_mount,
                    data_bytes_per_mount: cfg.max_data_bytes_per_mount,
                },
            },
            cache_dir,
            compiled: Mutex::new(HashMap::new()),
            trusted,
            allow_unsigned: cfg.allow_unsigned,
            slots: tokio::sync::Semaphore::new(slots as usize),
            stop,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Per-call limits.
    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    /// Waits up to `wait` for one of the `max_instances` slots; calls beyond it queue here
    /// instead of failing in the pooling allocator.
    pub async fn slot(&self, wait: Duration) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(wait, self.slots.acquire())
            .await
            .ok()?
            .ok()
    }

    /// The pipeline up to compilation for the plugin installed in `dir`:
    /// verify the manifest → inspect imports against it → compile (cached).
    pub fn load(&self, dir: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        // 1. Verify: the signature by a trusted publisher over the manifest, and through the
        // manifest's digests every file; the bytes compiled are the bytes verified.
        // The verified manifest is the one the registry client parsed; an unsigned one is
        // parsed here with the same type and checks (minus `files`, which nothing signs).
        let (manifest, wasm) = match arcan_registry_client::package::verify_dir(dir, &self.trusted)
        {
            Ok(mut v) => {
                let wasm = v.files.remove(ENGINE).unwrap_or_default();
                (v.manifest, wasm)
            }
            Err(arcan_registry_client::Error::Unsigned) if self.allow_unsigned => {
                tracing::warn!(dir = %dir.display(),
                    "loading an UNSIGNED plugin (plugins.allow_unsigned is on; development only)");
                let manifest_bytes = read_bounded(&dir.join(MANIFEST), MAX_MANIFEST_BYTES)?;
                let wasm = read_bounded(&dir.join(ENGINE), MAX_COMPONENT_BYTES)?;
                (parse_unsigned(&manifest_bytes)?, wasm)
            }
            Err(e) => return Err(PluginError::Signature(e.to_string())),
        };
        // The checks only this host can make: a served contract version, known capabilities.
        let contract = check_for_host(&manifest)?;
        let digest = hex::encode(Sha256::digest(&wasm));
        // 2. Inspect, before any code is compiled.
        let imports = inspect_imports(&manifest, contract, &wasm)?;
        let needs = imports.iter().filter_map(|(_, c)| *c).collect();
        // 3. Compile, or reuse what this engine compiled before.
        let component = self.compile(&manifest.name, &digest, &wasm)?;
        Ok(Arc::new(LoadedPlugin {
            manifest,
            digest,
            contract,
            component,
            needs,
            imports,
        }))
    }

    /// The last step before instantiation: checks the component's imports against the
    /// operator's grants and links only the granted interfaces (plus deny-all WASI).
    pub fn prepare(
        &self,
        plugin: &LoadedPlugin,
        grants: &BTreeSet<HostCapability>,
    ) -> Result<EnginePre, PluginError> {
        for (import, cap) in &plugin.imports {
            if let Some(cap) = cap
                && !grants.contains(cap)
            {
                return Err(PluginError::NotGranted {
                    plugin: plugin.manifest.name.clone(),
                    import: import.clone(),
                    capability: *cap,
                });
            }
        }
        EnginePre::new(&self.engine, &plugin.component, grants, plugin.contract).map_err(|e| {
            PluginError::Invalid {
                plugin: plugin.manifest.name.clone(),
                message: format!("{e:#}"),
            }
        })
    }

    fn compile(&self, name: &str, digest: &str, wasm: &[u8]) -> Result<Component, PluginError> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = compiled.get(digest) {
            return Ok(c.clone());
        }
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            plugin: name.to_owned(),
            message: format!("{e:#}"),
        };
        let mut hasher = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let path = self
            .cache_dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
        let component = match cached::load(&self.engine, &path) {
            Some(c) => c,
            None => {
                let bytes = self.engine.precompile_component(wasm).map_err(invalid)?;
                cached::store(&self.cache_dir, &path, &bytes);
                cached::deserialize(&self.engine, &bytes).map_err(invalid)?
            }
        };
        compiled.insert(digest.to_owned(), component.clone());
        Ok(component)
    }
}

/// The compiled-code cache. Deserializing native code is `unsafe`: wasmtime trusts it as
/// its own output. Only this process writes the cache (a 0700 directory it creates, files
/// written atomically), entries are named by the sha256 of the component they were
/// compiled from and the engine's compatibility hash, and code from anywhere else is never
/// accepted.
#[allow(unsafe_code)]
mod cached {
    use std::path::Path;

    use wasmtime::Engine;
    use wasmtime::component::Component;

    pub(super) fn load(engine: &Engine, path: &Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was produced by `Engine::precompile_component` of an engine with
        // the same compatibility hash (part of the name), in a directory only this process
        // writes; wasmtime still checks the header and compatibility before using it.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled plugin cache entry");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    pub(super) fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: `bytes` was returned by `precompile_component` of this very engine just now.
        unsafe { Component::deserialize(engine, bytes) }
    }

    pub(super) fn store(dir: &Path, path: &Path, bytes: &[u8]) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled plugin cache; compiling on every start");
        }
    }
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, PluginError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PluginError::Manifest(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(PluginError::Manifest(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > max {
        return Err(PluginError::Manifest(format!(
            "{} is {} bytes, more than the {max} allowed",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| PluginError::Io(format!("{}: {e}", path.display())))
}

/// The component's top-level imports, each with the capability it needs; refuses imports
/// the host does not provide or the manifest does not declare, and a component whose
/// `engine` export or `arcan:plugin` imports are of another contract version than its
/// manifest's `wit`.
pub fn inspect_imports(
    manifest: &Manifest,
    contract: ContractVersion,
    wasm: &[u8],
) -> Result<Vec<(String, Option<HostCapability>)>, PluginError> {
    use wasmtime::wasmparser::{Parser, Payload};
    let invalid = |message: String| PluginError::Invalid {
        plugin: manifest.name.clone(),
        message,
    };
    if !Parser::is_component(wasm) {
        return Err(invalid(
            "engine.wasm is not a WebAssembly component (build with --target wasm32-wasip2)".into(),
        ));
    }
    let declared = host_capabilities(manifest);
    let mut out = Vec::new();
    let mut engine_exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| invalid(format!("malformed component: {e}")))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed import: {e}")))?;
                    let name = import.name.name.to_owned();
                    let cap = classify_import(manifest, contract, &name)?;
                    if let Some(c) = cap
                        && !declared.contains(&c)
                    {
                        return Err(PluginError::Undeclared {
                            plugin: manifest.name.clone(),
                            import: name,
                            capability: c,
                        });
                    }
                    out.push((name, cap));
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| invalid(format!("malformed export: {e}")))?;
                    let name = export.name.name;
                    match name.strip_prefix("arcan:plugin/engine@") {
                        Some(version) => engine_exports.push(version.to_owned()),
                        // The host calls only `engine`; any other contract export is of
                        // something this host does not know.
                        None if name.starts_with("arcan:") => {
                            return Err(invalid(format!(
                                "the component exports `{name}`, which is not part of {}",
                                contract.package()
                            )));
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }
    match engine_exports.as_slice() {
        [v] if ContractVersion::resolve(v) == Some(contract) => Ok(out),
        [v] => Err(invalid(format!(
            "the component exports `arcan:plugin/engine@{v}` but its manifest declares `{}`",
            manifest.wit
        ))),
        [] => Err(invalid(format!(
            "the component does not export `arcan:plugin/engine` ({} expected)",
            contract.package()
        ))),
        several => Err(invalid(format!(
            "the component exports `arcan:plugin/engine` {} times ({}); exactly one is allowed",
            several.len(),
            several.join(", ")
        ))),
    }
}

/// What an import name needs: `Some(cap)` for a capability interface, `None` for one every
/// plugin may import (`log`, `types`, WASI).
fn classify_import(
    manifest: &Manifest,
    contract: ContractVersion,
    name: &str,
) -> Result<Option<HostCapability>, PluginError> {
    let unknown = || PluginError::UnknownImport {
        plugin: manifest.name.clone(),
        import: name.to_owned(),
    };
    let (path, version) = name.split_once('@').ok_or_else(unknown)?;
    let (package, iface) = path.split_once('/').ok_or_else(unknown)?;
    match package {
        "arcan:plugin" => {
            if ContractVersion::resolve(version) != Some(contract) {
                return Err(PluginError::Invalid {
                    plugin: manifest.name.clone(),
                    message: format!(
                        "the component imports `{name}` but its manifest declares `{}`",
                        manifest.wit
                    ),
                });
            }
            HostCapability::for_interface(iface).ok_or_else(unknown)
        }
        wasi if wasi.starts_with("wasi:") => {
            let pkg = &wasi["wasi:".len()..];
            if WASI_PACKAGES.contains(&pkg) && version.starts_with("0.2.") {
                Ok(None)
            } else {
                Err(unknown())
            }
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests;
