//! Shared server state, injected into every request's depot.

use std::sync::Arc;
use std::time::Duration;

use salvo::prelude::*;

use super::login_guard::LoginGuard;
use super::machine::MachineAuth;
use super::metrics::Metrics;
use super::middleware::rate_limit::RateLimits;
use crate::auth::Principal;
use arcan_audit::Auditor;
use arcan_audit::sinks::SinkManager;
use arcan_config::Config;
use arcan_crypto::Keyring;
use arcan_engine::registry::Engines;
use arcan_lifecycle::Lifecycle;
use arcan_plugin_host::PluginError;
use arcan_rbac::Access;
use arcan_store::Realm;
use arcan_store::prelude::*;

/// How long cached token, realm and access lookups live. Changes made on this node
/// invalidate them at once; other nodes sharing a PostgreSQL store see them within this.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Everything a handler needs.
pub struct AppState {
    /// Merged configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Data keys and the master-key provider.
    pub keyring: Arc<Keyring>,
    /// Rate limiters.
    pub limits: RateLimits,
    /// Failed-login throttle and the password-hashing bound.
    pub logins: LoginGuard,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Token hash → principal.
    pub tokens: moka::sync::Cache<String, Arc<Principal>>,
    /// Realm slug → realm.
    pub realms: moka::sync::Cache<String, Arc<Realm>>,
    /// (realm id, token id) → access.
    pub access: moka::sync::Cache<(arcan_store::RealmId, arcan_store::TokenId), Arc<Access>>,
    /// The audit dispatcher.
    pub audit: Auditor,
    /// Running audit sinks.
    pub sinks: SinkManager,
    /// Engine plugins and mounts.
    pub engines: Arc<Engines>,
    /// Owns every background task (see [`arcan_lifecycle`]).
    pub lifecycle: Arc<Lifecycle>,
    /// Verifiers of the machine-identity auth methods in use.
    pub machine: MachineAuth,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

fn cache<K, V>() -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(CACHE_TTL)
        .build()
}

impl AppState {
    /// Builds the state.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keyring: Keyring,
    ) -> Result<Self, PluginError> {
        let lifecycle = Arc::new(Lifecycle::new());
        let audit = Auditor::start(
            store.clone(),
            config.audit.buffer,
            config.audit.mode,
            config.audit.timeout,
            &lifecycle,
        );
        let sinks = SinkManager::new(store.clone(), &audit, lifecycle.clone());
        let keyring = Arc::new(keyring);
        let engines = Arc::new(Engines::new(
            &config,
            store.clone(),
            keyring.clone(),
            audit.clone(),
        )?);
        Ok(Self {
            engines,
            lifecycle,
            audit,
            sinks,
            limits: RateLimits::new(&config.rate_limit),
            logins: LoginGuard::new(&config.auth),
            machine: MachineAuth::new(config.auth.machine.clone()),
            metrics: Metrics::new(),
            config,
            store,
            keyring,
            tokens: cache(),
            realms: cache(),
            access: cache(),
        })
    }

    /// Drops cached access decisions after a policy change.
    pub fn policy_changed(&self) {
        self.access.invalidate_all();
    }
}

/// The state from a depot (injected by the outermost hoop).
pub fn state(depot: &Depot) -> &Arc<AppState> {
    match depot.get_typed::<Arc<AppState>>() {
        Ok(s) => s,
        // The injecting hoop is the router's first; without it nothing can be served.
        Err(_) => unreachable!("AppState hoop missing from the router"),
    }
}

/// Hoop that injects the state.
#[derive(Debug)]
pub struct InjectState(pub Arc<AppState>);

#[async_trait]
impl Handler for InjectState {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.0.clone());
    }
}
