//! `rotate-root` of `sql` and `http`, written once. The connection's provider
//! ([`crate::providers`]) replaces the root credential on its system; this module gives it
//! the mount's sealed connection record to store the new spec in, and reports the outcome:
//! to the guest as an upstream error, to the operator as a log line when the rotation
//! changed something but did not finish. Which interface may rotate which connection is
//! checked by the caller (`sql` only PostgreSQL connections, `http` only HTTP ones).

use super::{MountScope, store_connections};
use crate::connections::ConnectionSpec;
use crate::model::HostFault;
use crate::providers::{Provider, RootRotation, SpecStore};

/// The mount's connections as stored: a new spec for one of them is sealed into the mount
/// record (with a new `updated_at`, so every node rebuilds its handle).
struct MountSpecs<'a> {
    scope: &'a MountScope,
    connection: &'a str,
}

impl SpecStore for MountSpecs<'_> {
    async fn store_spec(&self, spec: ConnectionSpec) -> Result<(), String> {
        let mut specs = self.scope.connections.specs().clone();
        specs.insert(self.connection.to_owned(), spec);
        store_connections(self.scope, &specs)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Rotates the root credential of `connection` of the mount of `scope`.
pub(super) async fn rotate_root(scope: &MountScope, connection: &str) -> Result<(), HostFault> {
    let provider =
        Provider::for_connection(&scope.connections, connection).map_err(HostFault::Upstream)?;
    let store = MountSpecs { scope, connection };
    provider.rotate(&store).await.map_err(|e| {
        if let Some((aftermath, cause)) = e.aftermath() {
            tracing::error!(mount = %scope.mount, realm = %scope.realm, connection = %connection,
                error = %cause, "{aftermath}");
        }
        HostFault::Upstream(e.to_string())
    })
}
