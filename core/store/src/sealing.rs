//! Sealing of realm-owned data (secret values, connection credentials, plugin data, lease
//! state) under the realm's data key, with associated data naming what the value is and
//! where it belongs, so a sealed value moved to another row, mount or realm does not open.
//!
//! A layer above the [`Store`] trait, not part of it: the store's implementations only
//! ever receive what this has sealed.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::prelude::*;
use crate::{RealmId, StoreError};
use arcan_crypto::{CryptoError, Keyring, aad as kv_aad, open, seal};

/// Errors of value sealing.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The realm has no data key (deleted concurrently).
    #[error("realm has no data key")]
    NoKey,
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Crypto failure.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The unwrapped data key of a realm.
pub(crate) async fn dek(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
) -> Result<Arc<Zeroizing<[u8; 32]>>, SealError> {
    if let Some(d) = keyring.cached(realm_id) {
        return Ok(d);
    }
    let key = store.data_key(realm_id).await?.ok_or(SealError::NoKey)?;
    Ok(keyring.dek(realm_id, &key.wrapped).await?)
}

/// What a value sealed with [`seal_in_realm`] is: part of its associated data, so a value
/// sealed as one cannot be opened as another. (KV secret values have their own form, see
/// [`seal_value`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A mount's connection specs (root credentials).
    Connections,
    /// A key of a plugin's own data.
    PluginData,
    /// The engine-private state of a lease.
    Lease,
    /// A listing cursor of secret keys (sealed so it neither leaks nor can be forged).
    SecretsCursor,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Connections => "connections",
            Purpose::PluginData => "plugin-data",
            Purpose::Lease => "lease",
            Purpose::SecretsCursor => "secrets-cursor",
        }
    }
}

fn aad(realm_id: &RealmId, purpose: Purpose, parts: &[&str]) -> Vec<u8> {
    let mut out = format!("arcan:{}:v1\0{realm_id}", purpose.as_str());
    for p in parts {
        out.push('\0');
        out.push_str(p);
    }
    out.into_bytes()
}

/// Seals `value` for `purpose` (e.g. `plugin-data`) at `parts` (e.g. mount id, key).
pub async fn seal_in_realm(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    purpose: Purpose,
    parts: &[&str],
    value: &[u8],
) -> Result<Vec<u8>, SealError> {
    let d = dek(store, keyring, realm_id).await?;
    Ok(seal(&d, value, &aad(realm_id, purpose, parts))?)
}

/// Opens a value sealed by [`seal_in_realm`] with the same purpose and parts.
pub async fn open_in_realm(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    purpose: Purpose,
    parts: &[&str],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let d = dek(store, keyring, realm_id).await?;
    Ok(open(&d, sealed, &aad(realm_id, purpose, parts))?)
}

/// Seals a KV secret value for (realm, env, key).
pub async fn seal_value(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    env: &str,
    key: &str,
    value: &[u8],
) -> Result<Vec<u8>, SealError> {
    let d = dek(store, keyring, realm_id).await?;
    Ok(seal(&d, value, &kv_aad(realm_id, env, key))?)
}

/// Opens a KV secret value sealed for (realm, env, key).
pub async fn open_value(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    env: &str,
    key: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let d = dek(store, keyring, realm_id).await?;
    Ok(open(&d, sealed, &kv_aad(realm_id, env, key))?)
}
