//! `plugin-data`: key-value storage scoped to (realm, mount), sealed under the realm's
//! data key with the mount id and key as associated data.

use super::wit::latest::arcan::plugin::plugin_data;
use super::{HostState, bounded};
use crate::model::HostFault;
use arcan_store::sealing::{Purpose, open_in_realm, seal_in_realm};
use arcan_util::now_ms;

/// Longest key.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys one `list` returns.
pub const MAX_LIST: u32 = 1000;

fn check_key(key: &str) -> Result<(), HostFault> {
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(HostFault::Invalid(
            "plugin data keys are 1-256 bytes without control characters".into(),
        ));
    }
    bounded("key", key.len(), MAX_KEY_BYTES)
}

fn upstream(e: impl std::fmt::Display) -> HostFault {
    tracing::error!(error = %e, "plugin data store error");
    HostFault::Upstream("the plugin data store failed".into())
}

async fn with_timeout<T>(
    limit: std::time::Duration,
    fut: impl std::future::Future<Output = Result<T, HostFault>>,
) -> Result<T, HostFault> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(HostFault::Upstream("plugin data store timed out".into())))
}

impl HostState {
    /// Counts one plugin data write against the per-call quota.
    fn count_write(&mut self) -> Result<(), HostFault> {
        let max = self.scope.services.limits.quotas.data_writes_per_call;
        if self.used.data_writes >= max {
            return Err(self.over_quota(format!("more than {max} plugin data writes in one call")));
        }
        self.used.data_writes += 1;
        Ok(())
    }

    /// The guest's error for a quota refusal, logged once per call.
    fn over_quota(&mut self, message: String) -> HostFault {
        if !self.used.data_logged {
            self.used.data_logged = true;
            let s = &self.scope;
            tracing::warn!(plugin = %s.plugin, mount = %s.mount, realm = %s.realm,
                request_id = %self.call.request_id, "plugin data quota: {message}");
        }
        HostFault::Invalid(format!("quota exceeded: {message}"))
    }
}

/// Whether a mount holding `usage` (keys, bytes) apart from one key may store that key with
/// `bytes` more: the refusal message when not.
fn over_mount_quota(
    quotas: &crate::runtime::Quotas,
    usage: (u64, u64),
    bytes: u64,
) -> Option<String> {
    let (keys, used) = usage;
    if keys.saturating_add(1) > quotas.data_keys_per_mount {
        return Some(format!(
            "the mount holds {keys} plugin data keys; at most {} are allowed",
            quotas.data_keys_per_mount
        ));
    }
    if used.saturating_add(bytes) > quotas.data_bytes_per_mount {
        return Some(format!(
            "the mount's plugin data would take {} bytes; at most {} are allowed",
            used.saturating_add(bytes),
            quotas.data_bytes_per_mount
        ));
    }
    None
}

impl plugin_data::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostFault> {
        check_key(&key)?;
        let s = self.scope.clone();
        let sv = &s.services;
        with_timeout(self.host_timeout(), async {
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
                Purpose::PluginData,
                &[&s.mount_id, &key],
                &sealed,
            )
            .await
            .map_err(upstream)?;
            Ok(Some(plain.to_vec()))
        })
        .await
    }

    async fn put(&mut self, key: String, value: Vec<u8>) -> Result<(), HostFault> {
        check_key(&key).and(bounded("value", value.len(), MAX_VALUE_BYTES))?;
        self.count_write()?;
        let s = self.scope.clone();
        let sv = &s.services;
        // Per-mount quotas, checked against what the mount holds besides this key. Two
        // concurrent calls of one mount may each pass the check: the overshoot is bounded
        // by one value per concurrent call.
        let usage = with_timeout(self.host_timeout(), async {
            sv.store
                .plugin_data_usage(&s.realm_id, &s.mount_id, &key)
                .await
                .map_err(upstream)
        })
        .await?;
        // Sealed size: the value plus nonce and tag.
        let bytes = (key.len() + value.len() + 40) as u64;
        if let Some(m) = over_mount_quota(&sv.limits.quotas, usage, bytes) {
            return Err(self.over_quota(m));
        }
        with_timeout(self.host_timeout(), async {
            let sealed = seal_in_realm(
                sv.store.as_ref(),
                &sv.keyring,
                &s.realm_id,
                Purpose::PluginData,
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
        .await
    }

    async fn delete(&mut self, key: String) -> Result<bool, HostFault> {
        check_key(&key).and_then(|()| self.count_write())?;
        let s = self.scope.clone();
        with_timeout(self.host_timeout(), async {
            s.services
                .store
                .plugin_data_delete(&s.realm_id, &s.mount_id, &key)
                .await
                .map_err(upstream)
        })
        .await
    }

    async fn list(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, HostFault> {
        bounded("prefix", prefix.len(), MAX_KEY_BYTES)?;
        let s = self.scope.clone();
        let limit = i64::from(limit.clamp(1, MAX_LIST));
        with_timeout(self.host_timeout(), async {
            s.services
                .store
                .plugin_data_keys(&s.realm_id, &s.mount_id, &prefix, limit)
                .await
                .map_err(upstream)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Quotas;

    #[test]
    fn mount_quotas() {
        let q = Quotas {
            audit_events_per_call: 32,
            audit_bytes_per_call: 65536,
            data_writes_per_call: 64,
            data_keys_per_mount: 2,
            data_bytes_per_mount: 100,
        };
        assert_eq!(over_mount_quota(&q, (0, 0), 100), None);
        assert_eq!(over_mount_quota(&q, (1, 50), 50), None);
        assert!(over_mount_quota(&q, (2, 0), 1).is_some_and(|m| m.contains("keys")));
        assert!(over_mount_quota(&q, (1, 50), 51).is_some_and(|m| m.contains("bytes")));
        assert!(over_mount_quota(&q, (0, u64::MAX), 1).is_some());
    }
}
