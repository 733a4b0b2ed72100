//! The HTTPS server: build, bind, serve, drain.
//!
//! There is no plaintext listener: the only listener is rustls (TLS 1.2 and 1.3). The
//! listener bounds concurrent connections and the time a client may take for each step
//! (`server.max_connections`, `server.*_timeout`).
//!
//! The request path is guardian middleware (request id, logging, rate limits, token
//! authentication in [`auth`], the policy decision, audit) in front of the handlers, which
//! call the engines (`arcan-engine`) and the store. [`error::ApiError`] is the one mapping
//! from every lower crate's error to an HTTP status and message. Above this crate is only
//! the CLI (`arcan-cli`), which calls [`run`].

pub mod auth;
pub mod bootstrap;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod login_guard;
pub mod machine;
pub mod metrics;
pub mod middleware;
pub mod router;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use salvo::catcher::Catcher;
use salvo::conn::Acceptor;
use salvo::conn::rustls::{Keycert, RustlsConfig};
use salvo::fuse::FuseConfig;
use salvo::prelude::*;

use arcan_config::Config;
use arcan_lifecycle::Stage;
use state::AppState;

/// TLS 1.3 and 1.2; nothing older.
static TLS_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The least time the store gets to close at shutdown, even past the deadline.
const CLOSE_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the server until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let boot = bootstrap::prepare(&config).await?;
    let state = Arc::new(AppState::new(config.clone(), boot.store, boot.keyring)?);

    let cert = std::fs::read(&boot.tls_cert)
        .with_context(|| format!("reading {}", boot.tls_cert.display()))?;
    let key = std::fs::read(&boot.tls_key)
        .with_context(|| format!("reading {}", boot.tls_key.display()))?;
    let tls = RustlsConfig::new(Keycert::new().cert(cert).key(key)).tls_versions(TLS_VERSIONS);
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let acceptor = TcpListener::new(addr)
        .rustls(tls)
        .try_bind()
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = acceptor
        .holdings()
        .first()
        .and_then(|h| h.local_addr.clone().into_std())
        .unwrap_or(addr);

    let service = Service::new(router::build(state.clone()))
        .catcher(Catcher::default().hoop(error::CatchAll(state.clone())));
    start_audit(&state).await?;
    let server = Server::new(acceptor)
        .fuse_config(listener_limits(&config.server))
        .max_connections(config.server.max_connections);
    let handle = server.handle();

    let life = state.lifecycle.clone();
    arcan_engine::reaper::spawn(state.engines.clone(), config.reaper.clone(), &life);
    // Installed plugins go through the load pipeline (verify → inspect → compile) at start,
    // so a bad one is reported now and compiled code is ready for the first call.
    let engines = state.engines.clone();
    tokio::task::spawn_blocking(move || {
        for p in engines.installed() {
            match &p.error {
                None => tracing::info!(plugin = %p.manifest.name, version = %p.manifest.version,
                    digest = p.digest.as_deref().unwrap_or_default(), "plugin loaded"),
                Some(e) => tracing::error!(plugin = %p.manifest.name, error = %e, "plugin refused"),
            }
        }
    });
    let limits = state.clone();
    life.spawn_until_stopped(Stage::Work, "rate-limit upkeep", async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.limits.shrink();
        }
    });

    // One deadline for the whole shutdown, from the signal: requests drain, the reaper
    // finishes what it started, audit stores what is queued, the store's writer drains.
    let grace = config.server.shutdown_grace;
    let (signalled, deadline) = tokio::sync::oneshot::channel();
    let watcher = life.clone();
    life.spawn_until_stopped(Stage::Work, "signal watcher", async move {
        arcan_lifecycle::shutdown_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down; draining in-flight requests and background work"
        );
        let _ = signalled.send(tokio::time::Instant::now() + grace);
        handle.stop_graceful(grace);
        watcher.begin_shutdown();
    });

    tracing::info!(addr = %bound, store = state.store.backend(), "arcan listening");
    println!("Listening on https://{bound}");
    server.serve(service).await;
    let deadline = deadline
        .await
        .unwrap_or_else(|_| tokio::time::Instant::now() + grace);
    let aborted = life.shutdown(deadline).await;
    if aborted.contains(&arcan_audit::dispatcher::DISPATCHER_TASK) {
        tracing::error!("audit events still queued at exit could not be stored");
    }
    // The writer commits what it holds; a store that cannot finish by then is left to
    // SQLite's (or PostgreSQL's) own recovery: nothing acknowledged depends on it.
    let closing = deadline.max(tokio::time::Instant::now() + CLOSE_AT_LEAST);
    if tokio::time::timeout_at(closing, state.store.close())
        .await
        .is_err()
    {
        tracing::error!("the store did not close in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The per-connection timeouts of `server.*`, enforced by salvo's transport (the fuse):
/// TLS handshake, request head (which also bounds the HTTP/1-vs-2 detection read, so a
/// client that sends nothing is covered), request-body gaps and idle connections.
fn listener_limits(cfg: &arcan_config::ServerConfig) -> FuseConfig {
    FuseConfig::default()
        .with_tls_handshake_timeout(cfg.tls_handshake_timeout)
        .with_http1_header_timeout(cfg.header_read_timeout)
        .with_request_body_timeout(cfg.request_body_timeout)
        .with_connection_idle_timeout(cfg.idle_timeout)
}

/// Stores the sinks of the config file, starts every sink, and runs audit retention.
async fn start_audit(state: &Arc<AppState>) -> anyhow::Result<()> {
    for sink in &state.config.audit.sinks {
        let sealed = arcan_audit::sinks::seal_config(&state.keyring, &sink.config)?;
        state
            .store
            .sink_put(&arcan_store::SinkRow {
                name: sink.name.clone(),
                kind: sink.config.kind().into(),
                config: sealed,
                cursor: 0,
                created_at: arcan_util::now_ms(),
            })
            .await?;
    }
    state.sinks.start_all(&state.keyring).await?;
    let st = state.clone();
    state
        .lifecycle
        .spawn_until_stopped(Stage::Work, "audit retention", async move {
            let keep =
                std::time::Duration::from_secs_f64(st.config.audit.retention_days * 86_400.0);
            let mut tick = tokio::time::interval(st.config.audit.retention_interval);
            loop {
                tick.tick().await;
                let before = arcan_util::now_ms() - keep.as_millis() as i64;
                match st.store.audit_prune(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "audit retention removed old events"),
                    Err(e) => tracing::warn!(error = %e, "audit retention failed"),
                }
            }
        });
    Ok(())
}
