//! One engine call: a fresh instance with a deadline and a memory cap, the export called,
//! the outcome classified. An instance is never reused, so a trap cannot poison another
//! call.
//!
//! [`EngineCall`] is the typed handle callers use: one method per `engine` export, taking
//! and returning the version-neutral [`model`](super::model) types, whatever contract
//! version the component was built against.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::host::observe_output;
use super::host::{EngineInstance, EnginePre, HostState, MountScope};
use super::model::{CallContext, Credential, Descriptor, EngineFailure, ErrorKind};
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
        /// When to retry, in seconds (`Retry-After`), if the engine said.
        retry_after: Option<u32>,
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

/// A typed call of one export on a fresh instance of a mount's engine: build it with
/// [`EngineCall::new`], then call one method (each consumes the call).
pub struct EngineCall<'r> {
    runtime: &'r Runtime,
    pre: &'r EnginePre,
    scope: Arc<MountScope>,
    info: CallInfo,
}

impl std::fmt::Debug for EngineCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineCall")
            .field("plugin", &self.scope.plugin)
            .field("contract", &self.pre.contract())
            .field("request_id", &self.info.request_id)
            .finish()
    }
}

/// The future of one export call on an instance.
type ExportFuture<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, EngineFailure>>> + Send + 'a>>;

impl<'r> EngineCall<'r> {
    /// A call of the engine `pre` of the mount `scope`, for the request `info`.
    pub fn new(
        runtime: &'r Runtime,
        pre: &'r EnginePre,
        scope: Arc<MountScope>,
        info: CallInfo,
    ) -> Self {
        Self {
            runtime,
            pre,
            scope,
            info,
        }
    }

    /// `describe`: name, version, schemas and capabilities.
    pub async fn describe(self) -> Result<Descriptor, CallError> {
        self.invoke(
            |d: &Descriptor| {
                d.name.len()
                    + d.version.len()
                    + d.config_schema.to_string().len()
                    + d.role_schema.to_string().len()
                    + d.capabilities.len() * 32
            },
            |i, s, _| Box::pin(async move { Ok(Ok(i.describe(s).await?)) }),
        )
        .await
    }

    /// `configure(config)`: the configuration's stored form (JSON).
    pub async fn configure(self, config: String) -> Result<String, CallError> {
        self.invoke(String::len, move |i, s, c| {
            Box::pin(async move { i.configure(s, c, &config).await })
        })
        .await
    }

    /// `validate-role(config, role)`: the role's stored form (JSON).
    pub async fn validate_role(self, config: String, role: String) -> Result<String, CallError> {
        self.invoke(String::len, move |i, s, c| {
            Box::pin(async move { i.validate_role(s, c, &config, &role).await })
        })
        .await
    }

    /// `issue(config, role, ttl)`: a credential valid for at most `ttl_seconds`.
    pub async fn issue(
        self,
        config: String,
        role: String,
        ttl_seconds: u64,
    ) -> Result<Credential, CallError> {
        let undo = EngineCall::new(
            self.runtime,
            self.pre,
            self.scope.clone(),
            self.info.clone(),
        );
        let (undo_config, undo_role) = (config.clone(), role.clone());
        let issued = self
            .run(
                |c: &Credential| c.data.len() + c.internal.len(),
                move |i, s, c| {
                    Box::pin(async move { i.issue(s, c, &config, &role, ttl_seconds).await })
                },
            )
            .await;
        match issued {
            Ok(credential) => Ok(credential),
            // The engine issued a credential the host will not hand out (it used something
            // not granted, or answered too much): revoke it now, so nothing is left behind
            // that no lease tracks.
            Err(Refusal {
                error,
                returned: Some(credential),
            }) => {
                if credential.revocable {
                    let revoked = undo
                        .revoke(undo_config, undo_role, credential.internal)
                        .await;
                    if let Err(e) = revoked {
                        tracing::error!(error = %e, refused = %error,
                            "an issued credential the host refused could not be revoked");
                    }
                }
                Err(error)
            }
            Err(refusal) => Err(refusal.error),
        }
    }

    /// `renew(config, role, internal, ttl)`: the seconds the engine granted.
    pub async fn renew(
        self,
        config: String,
        role: String,
        internal: String,
        ttl_seconds: u64,
    ) -> Result<u64, CallError> {
        self.invoke(
            |_| 0,
            move |i, s, c| {
                Box::pin(async move { i.renew(s, c, &config, &role, &internal, ttl_seconds).await })
            },
        )
        .await
    }

    /// `revoke(config, role, internal)`.
    pub async fn revoke(
        self,
        config: String,
        role: String,
        internal: String,
    ) -> Result<(), CallError> {
        self.invoke(
            |_| 0,
            move |i, s, c| Box::pin(async move { i.revoke(s, c, &config, &role, &internal).await }),
        )
        .await
    }

    /// `rotate-root(config)`.
    pub async fn rotate_root(self, config: String) -> Result<(), CallError> {
        self.invoke(
            |_| 0,
            move |i, s, c| Box::pin(async move { i.rotate_root(s, c, &config).await }),
        )
        .await
    }

    /// Runs `export` (see [`EngineCall::run`]); what the host refuses is dropped.
    async fn invoke<T>(
        self,
        size: fn(&T) -> usize,
        export: impl for<'a> FnOnce(
            &'a EngineInstance,
            &'a mut Store<HostState>,
            &'a CallContext,
        ) -> ExportFuture<'a, T>
        + Send,
    ) -> Result<T, CallError> {
        self.run(size, export).await.map_err(|r| r.error)
    }

    /// Runs `export` on a fresh instance under the call's limits and classifies the
    /// outcome; `size` measures a result against `plugins.max_result_bytes`.
    async fn run<T>(
        self,
        size: fn(&T) -> usize,
        export: impl for<'a> FnOnce(
            &'a EngineInstance,
            &'a mut Store<HostState>,
            &'a CallContext,
        ) -> ExportFuture<'a, T>
        + Send,
    ) -> Result<T, Refusal<T>> {
        let Self {
            runtime,
            pre,
            scope,
            info,
        } = self;
        let fail = |error| Refusal {
            error,
            returned: None,
        };
        let limits = runtime.limits().clone();
        let plugin = scope.plugin.clone();
        let request_id = info.request_id.clone();
        let _slot = runtime
            .slot(limits.call_timeout)
            .await
            .ok_or(fail(CallError::Busy))?;
        let ctx = CallContext {
            request_id: info.request_id.clone(),
            user_id: info.user_id.clone(),
            token_id: info.token_id.clone(),
            realm_id: scope.realm_id.to_string(),
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
        let run = async {
            let instance = pre.instantiate(&mut store).await?;
            export(&instance, &mut store, &ctx).await
        };
        let outcome = tokio::time::timeout(outer, run).await;
        let state = store.data();
        let (stdout, stderr) = state.output();
        observe_output(state, &stdout, &stderr);
        let trap = |kind| CallError::Trap {
            plugin: plugin.clone(),
            request_id: request_id.clone(),
            kind,
        };
        let result = match outcome {
            Err(_) => return Err(fail(trap(TrapKind::Deadline(limits.call_timeout)))),
            Ok(Err(e)) => {
                if state.limiter.hit {
                    let mib = limits.memory_bytes / (1024 * 1024);
                    return Err(fail(trap(TrapKind::Memory(mib))));
                }
                return Err(fail(match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => trap(TrapKind::Deadline(limits.call_timeout)),
                    Some(Trap::StackOverflow) => trap(TrapKind::StackOverflow),
                    Some(Trap::UnreachableCodeReached) => {
                        trap(TrapKind::Panic(panic_message(&stderr)))
                    }
                    Some(other) => trap(TrapKind::Other(other.to_string())),
                    None if e
                        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                        .is_some() =>
                    {
                        CallError::Busy
                    }
                    None => trap(TrapKind::Other(format!("{e:#}"))),
                }));
            }
            Ok(Ok(r)) => r,
        };
        // A refusal of something not granted fails the call even when the plugin ignored
        // it and answered anyway: the mount is missing a grant or a connection, and the
        // caller is told so (501) instead of getting what the plugin made of it.
        let refused = |error, returned| Err(Refusal { error, returned });
        match (result, state.denied.clone()) {
            (Err(_), Some(message)) => refused(CallError::Denied { plugin, message }, None),
            (Err(err), None) => refused(
                CallError::Engine {
                    plugin,
                    kind: err.kind,
                    message: err.message,
                    retry_after: err.retry_after,
                },
                None,
            ),
            (Ok(r), Some(message)) => refused(CallError::Denied { plugin, message }, Some(r)),
            (Ok(r), None) => {
                let size = size(&r);
                if size > limits.max_result_bytes {
                    let error = CallError::Oversized {
                        plugin,
                        request_id,
                        size,
                        max: limits.max_result_bytes,
                    };
                    return refused(error, Some(r));
                }
                Ok(r)
            }
        }
    }
}

/// A call the host fails after the engine answered, with what the engine returned, if it
/// returned something (a credential the host will not hand out must be undone).
struct Refusal<T> {
    error: CallError,
    returned: Option<T>,
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
