//! `plugin-data`: key-value storage scoped to (realm, mount), sealed under the realm's
//! data key with the mount id and key as associated data.

use super::bindings::arcan::plugin::plugin_data;
use super::bindings::arcan::plugin::types::HostError;
use super::{HostState, bounded};
use crate::engine::sealing::{open_in_realm, seal_in_realm};
use crate::util::now_ms;

/// Longest key.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys one `list` returns.
pub const MAX_LIST: u32 = 1000;

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(HostError::Invalid(
            "plugin data keys are 1-256 bytes without control characters".into(),
        ));
    }
    bounded("key", key.len(), MAX_KEY_BYTES)
}

fn upstream(e: impl std::fmt::Display) -> HostError {
    tracing::error!(error = %e, "plugin data store error");
    HostError::Upstream("the plugin data store failed".into())
}

async fn with_timeout<T>(
    limit: std::time::Duration,
    fut: impl std::future::Future<Output = Result<T, HostError>>,
) -> Result<T, HostError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(HostError::Upstream("plugin data store timed out".into())))
}

impl plugin_data::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        let s = self.scope.clone();
        let sv = &s.services;
        Ok(with_timeout(self.host_timeout(), async {
            let Some(sealed) = sv
                .store
                .plugin_data_get(&s.realm_id, &s.mount_id, &key)
                .await
                .map_err(upstream)?
            else {
                return Ok(None);
            };
            let plain = open_in_realm(
                sv.store.as_ref(),
                &sv.keyring,
                &s.realm_id,
                "plugin-data",
                &[&s.mount_id, &key],
                &sealed,
            )
            .await
            .map_err(upstream)?;
            Ok(Some(plain.to_vec()))
        })
        .await)
    }

    async fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = check_key(&key).and(bounded("value", value.len(), MAX_VALUE_BYTES)) {
            return Ok(Err(e));
        }
        let s = self.scope.clone();
        let sv = &s.services;
        Ok(with_timeout(self.host_timeout(), async {
            let sealed = seal_in_realm(
                sv.store.as_ref(),
                &sv.keyring,
                &s.realm_id,
                "plugin-data",
                &[&s.mount_id, &key],
                &value,
            )
            .await
            .map_err(upstream)?;
            sv.store
                .plugin_data_put(&s.realm_id, &s.mount_id, &key, &sealed, now_ms())
                .await
                .map_err(upstream)
        })
        .await)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, HostError>> {
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        let s = self.scope.clone();
        Ok(with_timeout(self.host_timeout(), async {
            s.services
                .store
                .plugin_data_delete(&s.realm_id, &s.mount_id, &key)
                .await
                .map_err(upstream)
        })
        .await)
    }

    async fn list(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        if let Err(e) = bounded("prefix", prefix.len(), MAX_KEY_BYTES) {
            return Ok(Err(e));
        }
        let s = self.scope.clone();
        let limit = i64::from(limit.clamp(1, MAX_LIST));
        Ok(with_timeout(self.host_timeout(), async {
            s.services
                .store
                .plugin_data_keys(&s.realm_id, &s.mount_id, &prefix, limit)
                .await
                .map_err(upstream)
        })
        .await)
    }
}
