//! The host side of the WIT contract: the state of one call, the bindings of every served
//! contract version ([`wit`]: the linker that exposes only granted interfaces, the typed
//! engine handle), and the host functions (`sql`, `http`, `plugin-data`, `audit`, `log`),
//! written once against the newest bindings; `rotate-root` of `sql` and `http` goes to the
//! connection's provider ([`crate::providers`]).
//!
//! Host functions never trust the guest: every argument is bounded, every connection name
//! is looked up in the mount's own connections, and every external call has a timeout. A
//! refusal of something not granted is recorded in [`HostState::denied`] so the call can
//! answer 501 even if the plugin hides the error.

mod data;
mod http;
mod observe;
mod rotate;
mod sql;
pub mod wit;

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use wit::{EngineInstance, EnginePre};

use super::call::CallInfo;
use super::connections::Connections;
use super::model::HostFault;
use super::runtime::CallLimits;
use arcan_audit::Auditor;
use arcan_crypto::Keyring;
use arcan_store::prelude::*;

/// Bytes of stdout/stderr kept per call (then routed to the log).
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// What every call of every mount shares.
pub struct HostServices {
    /// The store (plugin data).
    pub store: Arc<dyn Store>,
    /// Seals plugin data.
    pub keyring: Arc<Keyring>,
    /// Plugin audit events go here.
    pub audit: Auditor,
    /// Whether audit is on.
    pub audit_enabled: bool,
    /// Per-call limits.
    pub limits: CallLimits,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices").finish_non_exhaustive()
    }
}

/// Who a mount's calls run as: realm, mount and plugin, and its connections.
#[derive(Debug)]
pub struct MountScope {
    /// Realm id.
    pub realm_id: arcan_store::RealmId,
    /// Realm slug.
    pub realm: String,
    /// Mount id (plugin data is keyed by it).
    pub mount_id: String,
    /// Mount name.
    pub mount: String,
    /// Plugin name.
    pub plugin: String,
    /// Shared services.
    pub services: Arc<HostServices>,
    /// The mount's named connections.
    pub connections: Arc<Connections>,
}

/// The memory cap of one instance; remembers that it refused a growth.
#[derive(Debug)]
pub struct MemoryCap {
    limit: usize,
    /// A growth past the cap was refused (the call trapped because of it).
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded",
                self.limit / (1024 * 1024)
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What one call used of its quotas, and which overflows were already logged.
#[derive(Debug, Default)]
pub struct CallUsage {
    /// Audit events emitted.
    pub audit_events: u32,
    /// Bytes of the audit events emitted (action, target, detail).
    pub audit_bytes: u32,
    /// The call went over its audit quota (reported once).
    pub audit_refused: bool,
    /// Plugin data puts and deletes.
    pub data_writes: u32,
    /// A data quota refusal was logged (once per call).
    pub data_logged: bool,
}

/// The store data of one call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The memory cap.
    pub limiter: MemoryCap,
    /// The mount.
    pub scope: Arc<MountScope>,
    /// The request.
    pub call: CallInfo,
    /// Set when a host call refused something not granted.
    pub denied: Option<String>,
    /// What this call used of its per-call quotas.
    pub used: CallUsage,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("mount", &self.scope.mount)
            .finish_non_exhaustive()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// Fresh state for one call: WASI with no preopened directories, no environment, no
    /// arguments and no network; stdout and stderr captured for the log.
    pub fn new(scope: Arc<MountScope>, call: CallInfo) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: scope.services.limits.memory_bytes,
                hit: false,
            },
            scope,
            call,
            denied: None,
            used: CallUsage::default(),
            stdout,
            stderr,
        }
    }

    /// What the plugin wrote to stdout and stderr during the call.
    pub fn output(&self) -> (bytes::Bytes, bytes::Bytes) {
        (self.stdout.contents(), self.stderr.contents())
    }

    /// Records a refusal of something not granted and returns the error for the guest.
    fn deny(&mut self, message: String) -> HostFault {
        tracing::warn!(plugin = %self.scope.plugin, mount = %self.scope.mount,
            realm = %self.scope.realm, request_id = %self.call.request_id, "{message}");
        self.denied = Some(message.clone());
        HostFault::Denied(message)
    }

    /// The host-call timeout.
    fn host_timeout(&self) -> std::time::Duration {
        self.scope.services.limits.host_call_timeout
    }
}

/// Checks a guest-supplied string or byte length against a bound.
fn bounded(what: &str, len: usize, max: usize) -> Result<(), HostFault> {
    if len > max {
        Err(HostFault::Invalid(format!(
            "{what} is {len} bytes, more than the {max} allowed"
        )))
    } else {
        Ok(())
    }
}

pub(crate) use observe::truncate;

/// Routes what a plugin printed to stdout (info) and stderr (warn) to the log.
pub fn observe_output(state: &HostState, stdout: &[u8], stderr: &[u8]) {
    let s = &state.scope;
    for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        if bytes.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().take(50) {
            let line = truncate(line, 1024);
            if stream == "stdout" {
                tracing::info!(plugin = %s.plugin, mount = %s.mount, realm = %s.realm,
                    request_id = %state.call.request_id, stream, "plugin: {line}");
            } else {
                tracing::warn!(plugin = %s.plugin, mount = %s.mount, realm = %s.realm,
                    request_id = %state.call.request_id, stream, "plugin: {line}");
            }
        }
    }
}

/// Why new connection specs could not be stored (root rotation).
#[derive(Debug, thiserror::Error)]
pub enum StoreConnectionsError {
    /// The mount was removed meanwhile.
    #[error("mount `{0}` is gone")]
    MountGone(String),
    /// Sealing the specs failed.
    #[error(transparent)]
    Seal(#[from] arcan_store::sealing::SealError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] arcan_store::StoreError),
}

/// Stores new connection specs for the mount of `scope` (root rotation): sealed, with a
/// new `updated_at` so every node rebuilds its handle with the new credentials.
pub async fn store_connections(
    scope: &MountScope,
    specs: &std::collections::BTreeMap<String, super::connections::ConnectionSpec>,
) -> Result<(), StoreConnectionsError> {
    let sv = &scope.services;
    let mut record = sv
        .store
        .mount_by_id(&scope.realm_id, &scope.mount_id)
        .await?
        .ok_or_else(|| StoreConnectionsError::MountGone(scope.mount.clone()))?;
    record.connections_sealed = super::connections::seal_specs(
        sv.store.as_ref(),
        &sv.keyring,
        &scope.realm_id,
        &scope.mount_id,
        specs,
    )
    .await?;
    record.connections = super::connections::public_view(specs).to_string();
    record.updated_at = arcan_util::now_ms().max(record.updated_at + 1);
    sv.store.mount_update(&record).await?;
    Ok(())
}
