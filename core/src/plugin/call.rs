//! One engine call: a fresh instance with a deadline and a memory cap, the export called,
//! the outcome classified. An instance is never reused, so a trap cannot poison another
//! call.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::host::bindings::arcan::plugin::types::{self, ErrorKind};
use super::host::bindings::exports::arcan::plugin::engine;
use super::host::observe_output;
use super::host::{HostState, MountScope, PluginPre};
use super::runtime::Runtime;

/// Who and what a call is for (the request side of the WIT `call-context`).
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    /// Request id (or a reaper run id).
    pub request_id: String,
    /// Acting user.
    pub user_id: Option<String>,
    /// Acting token.
    pub token_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// The lease concerned.
    pub lease_id: Option<String>,
    /// The role concerned.
    pub role: Option<String>,
}

/// An engine export to call. JSON documents travel as strings.
#[derive(Debug)]
pub enum Op {
    /// `describe`.
    Describe,
    /// `configure(config)`.
    Configure {
        /// Mount configuration.
        config: String,
    },
    /// `validate-role(config, role)`.
    ValidateRole {
        /// Mount configuration.
        config: String,
        /// Role definition.
        role: String,
    },
    /// `issue(config, role, ttl)`.
    Issue {
        /// Mount configuration.
        config: String,
        /// Role definition.
        role: String,
        /// Seconds.
        ttl: u64,
    },
    /// `renew(config, role, internal, ttl)`.
    Renew {
        /// Mount configuration.
        config: String,
        /// Role definition.
        role: String,
        /// Engine-private lease state.
        internal: String,
        /// Seconds.
        ttl: u64,
    },
    /// `revoke(config, role, internal)`.
    Revoke {
        /// Mount configuration.
        config: String,
        /// Role definition.
        role: String,
        /// Engine-private lease state.
        internal: String,
    },
    /// `rotate-root(config)`.
    RotateRoot {
        /// Mount configuration.
        config: String,
    },
}

/// What an engine describes about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// JSON Schema of the configuration.
    pub config_schema: serde_json::Value,
    /// JSON Schema of a role.
    pub role_schema: serde_json::Value,
    /// Engine capabilities.
    pub capabilities: Vec<String>,
}

/// A successful call's result.
#[derive(Debug)]
pub enum OpResult {
    /// From `describe`.
    Descriptor(Descriptor),
    /// From `configure`, `validate-role`.
    Json(String),
    /// From `issue`.
    Credential(engine::Credential),
    /// From `renew`: seconds granted.
    Ttl(u64),
    /// From `revoke`, `rotate-root`.
    Done,
}

/// How an instance died.
#[derive(Debug, Clone)]
pub enum TrapKind {
    /// The wall-clock deadline passed.
    Deadline(Duration),
    /// Linear memory would have grown past the cap (MiB).
    Memory(usize),
    /// The wasm stack overflowed.
    StackOverflow,
    /// The plugin panicked (or hit `unreachable`).
    Panic(Option<String>),
    /// Any other trap.
    Other(String),
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapKind::Deadline(d) => write!(f, "deadline of {d:?} exceeded"),
            TrapKind::Memory(mb) => write!(f, "memory limit of {mb} MiB exceeded"),
            TrapKind::StackOverflow => write!(f, "stack overflow"),
            TrapKind::Panic(Some(m)) => write!(f, "panicked: {m}"),
            TrapKind::Panic(None) => write!(f, "panicked"),
            TrapKind::Other(m) => write!(f, "trapped: {m}"),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The instance trapped; the core is unaffected (502).
    #[error("plugin `{plugin}` failed: {kind} (request {request_id})")]
    Trap {
        /// Plugin.
        plugin: String,
        /// Request id.
        request_id: String,
        /// What happened.
        kind: TrapKind,
    },
    /// The engine returned an error.
    #[error("{plugin}: {message}")]
    Engine {
        /// Plugin.
        plugin: String,
        /// Its kind (maps to the status).
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// A host call was refused because it needs something not granted (501).
    #[error("plugin `{plugin}` used something not granted to this mount: {message}")]
    Denied {
        /// Plugin.
        plugin: String,
        /// What.
        message: String,
    },
    /// A returned value is larger than allowed (502).
    #[error(
        "plugin `{plugin}` returned {size} bytes, more than the {max} allowed (request {request_id})"
    )]
    Oversized {
        /// Plugin.
        plugin: String,
        /// Request id.
        request_id: String,
        /// Bytes returned.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No instance slot freed up in time (503).
    #[error("all plugin instance slots are busy; retry")]
    Busy,
    /// Instantiation failed for a reason of the host (500).
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate {
        /// Plugin.
        plugin: String,
        /// Why.
        message: String,
    },
}

/// Calls `op` on a fresh instance of the mount's component.
pub async fn invoke(
    runtime: &Runtime,
    pre: &PluginPre<HostState>,
    scope: Arc<MountScope>,
    info: CallInfo,
    op: Op,
) -> Result<OpResult, CallError> {
    let limits = runtime.limits().clone();
    let plugin = scope.plugin.clone();
    let request_id = info.request_id.clone();
    let _slot = runtime
        .slot(limits.call_timeout)
        .await
        .ok_or(CallError::Busy)?;
    let ctx = types::CallContext {
        request_id: info.request_id.clone(),
        user_id: info.user_id.clone(),
        token_id: info.token_id.clone(),
        realm_id: scope.realm_id.clone(),
        realm: scope.realm.clone(),
        mount: scope.mount.clone(),
        lease_id: info.lease_id.clone(),
        role: info.role.clone(),
    };
    let mut store = Store::new(runtime.engine(), HostState::new(scope, info));
    store.limiter(|s| &mut s.limiter);
    // Guest code yields to the async runtime at every epoch tick (5 ms), so a spinning
    // plugin shares its worker thread instead of pinning it; past the call's wall-clock
    // deadline the next tick interrupts it (a trap).
    let deadline = std::time::Instant::now() + limits.call_timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if std::time::Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    // The epoch deadline stops guest code; this also bounds time spent in host calls.
    let outer = limits.call_timeout + Duration::from_millis(250);
    let outcome = tokio::time::timeout(outer, run(&mut store, pre, &ctx, op)).await;
    let state = store.data();
    let (stdout, stderr) = state.output();
    observe_output(state, &stdout, &stderr);
    let trap = |kind| CallError::Trap {
        plugin: plugin.clone(),
        request_id: request_id.clone(),
        kind,
    };
    let result = match outcome {
        Err(_) => return Err(trap(TrapKind::Deadline(limits.call_timeout))),
        Ok(Err(e)) => {
            if state.limiter.hit {
                return Err(trap(TrapKind::Memory(limits.memory_bytes / (1024 * 1024))));
            }
            return Err(match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => trap(TrapKind::Deadline(limits.call_timeout)),
                Some(Trap::StackOverflow) => trap(TrapKind::StackOverflow),
                Some(Trap::UnreachableCodeReached) => trap(TrapKind::Panic(panic_message(&stderr))),
                Some(other) => trap(TrapKind::Other(other.to_string())),
                None if e
                    .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
                {
                    CallError::Busy
                }
                None => trap(TrapKind::Other(format!("{e:#}"))),
            });
        }
        Ok(Ok(r)) => r,
    };
    match result {
        Err(err) => Err(match state.denied.clone() {
            Some(message) => CallError::Denied { plugin, message },
            None => CallError::Engine {
                plugin,
                kind: err.kind,
                message: err.message,
            },
        }),
        Ok(r) => {
            let size = match &r {
                OpResult::Json(s) => s.len(),
                OpResult::Credential(c) => c.data.len() + c.internal.len(),
                OpResult::Descriptor(d) => {
                    d.config_schema.to_string().len() + d.role_schema.to_string().len()
                }
                OpResult::Ttl(_) | OpResult::Done => 0,
            };
            if size > limits.max_result_bytes {
                return Err(CallError::Oversized {
                    plugin,
                    request_id,
                    size,
                    max: limits.max_result_bytes,
                });
            }
            Ok(r)
        }
    }
}

async fn run(
    store: &mut Store<HostState>,
    pre: &PluginPre<HostState>,
    ctx: &types::CallContext,
    op: Op,
) -> wasmtime::Result<Result<OpResult, types::EngineError>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let e = instance.arcan_plugin_engine();
    Ok(match op {
        Op::Describe => {
            let d = e.call_describe(&mut *store).await?;
            let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
            Ok(OpResult::Descriptor(Descriptor {
                config_schema: parse(&d.config_schema),
                role_schema: parse(&d.role_schema),
                name: d.name,
                version: d.version,
                capabilities: d.capabilities,
            }))
        }
        Op::Configure { config } => e
            .call_configure(&mut *store, ctx, &config)
            .await?
            .map(OpResult::Json),
        Op::ValidateRole { config, role } => e
            .call_validate_role(&mut *store, ctx, &config, &role)
            .await?
            .map(OpResult::Json),
        Op::Issue { config, role, ttl } => e
            .call_issue(&mut *store, ctx, &config, &role, ttl)
            .await?
            .map(OpResult::Credential),
        Op::Renew {
            config,
            role,
            internal,
            ttl,
        } => e
            .call_renew(&mut *store, ctx, &config, &role, &internal, ttl)
            .await?
            .map(OpResult::Ttl),
        Op::Revoke {
            config,
            role,
            internal,
        } => e
            .call_revoke(&mut *store, ctx, &config, &role, &internal)
            .await?
            .map(|()| OpResult::Done),
        Op::RotateRoot { config } => e
            .call_rotate_root(&mut *store, ctx, &config)
            .await?
            .map(|()| OpResult::Done),
    })
}

/// The panic message a Rust guest printed to stderr before aborting.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines().skip_while(|l| !l.contains("panicked"));
    let first = lines.next()?;
    let msg = match lines.next() {
        Some(next) if first.trim_end().ends_with(':') => next.trim().to_owned(),
        _ => first.trim().to_owned(),
    };
    Some(super::host::truncate(&msg, 300).to_owned())
}
