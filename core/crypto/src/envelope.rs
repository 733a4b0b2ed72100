//! The keyring: per-realm data keys, unwrapped on first use and cached in memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use zeroize::Zeroizing;

use super::{CryptoError, KeyProvider};

type Dek = Arc<Zeroizing<[u8; 32]>>;

/// Seals and opens realm data; holds the master-key provider.
pub struct Keyring {
    /// Held shared while wrapping a new data key and storing it, exclusively while the
    /// master key is rotated, so no data key is wrapped by a key that is being retired.
    pub rotation: tokio::sync::RwLock<()>,
    provider: RwLock<Arc<dyn KeyProvider>>,
    deks: RwLock<HashMap<String, Dek>>,
    system: RwLock<Option<Dek>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

/// The associated data that binds a secret value to where it is stored.
pub fn aad(realm_id: &str, env: &str, key: &str) -> Vec<u8> {
    format!("arcan:kv:v1\0{realm_id}\0{env}\0{key}").into_bytes()
}

impl Keyring {
    /// A keyring over `provider`.
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            rotation: tokio::sync::RwLock::new(()),
            provider: RwLock::new(provider),
            deks: RwLock::new(HashMap::new()),
            system: RwLock::new(None),
        }
    }

    /// The current provider.
    pub fn provider(&self) -> Arc<dyn KeyProvider> {
        self.provider
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new master-key provider (after a rewrap committed).
    pub fn set_provider(&self, provider: Arc<dyn KeyProvider>) {
        *self.provider.write().unwrap_or_else(|p| p.into_inner()) = provider;
    }

    /// Makes a fresh data key and returns it wrapped, for a new realm.
    pub async fn new_wrapped_dek(&self) -> Result<(String, Vec<u8>), CryptoError> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut_slice());
        let provider = self.provider();
        let wrapped = provider.wrap(dek.as_slice()).await?;
        Ok((provider.key_id().to_owned(), wrapped))
    }

    /// Returns the unwrapped data key of a realm, unwrapping `wrapped` on a cache miss.
    pub async fn dek(&self, realm_id: &str, wrapped: &[u8]) -> Result<Dek, CryptoError> {
        if let Some(d) = self.cached(realm_id) {
            return Ok(d);
        }
        let raw = self.provider().unwrap(wrapped).await?;
        let mut dek = Zeroizing::new([0u8; 32]);
        if raw.len() != 32 {
            return Err(CryptoError::Decrypt);
        }
        dek.copy_from_slice(&raw);
        let dek = Arc::new(dek);
        self.deks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(realm_id.to_owned(), dek.clone());
        Ok(dek)
    }

    /// The cached data key of a realm, if unwrapped already.
    pub fn cached(&self, realm_id: &str) -> Option<Dek> {
        self.deks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(realm_id)
            .cloned()
    }

    /// Forgets a realm's data key (realm deleted).
    pub fn forget(&self, realm_id: &str) {
        self.deks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(realm_id);
    }

    /// Loads the deployment's system key (seals sink credentials, keys the audit HMAC)
    /// from its wrapped form.
    pub async fn load_system_key(&self, wrapped: &[u8]) -> Result<(), CryptoError> {
        let raw = self.provider().unwrap(wrapped).await?;
        if raw.len() != 32 {
            return Err(CryptoError::Decrypt);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&raw);
        *self.system.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(key));
        Ok(())
    }

    /// The system key, once loaded.
    pub fn system_key(&self) -> Result<Dek, CryptoError> {
        self.system
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| CryptoError::MasterKey("system key not loaded".into()))
    }

    /// A fresh random 32-byte key, wrapped by the current master key.
    pub async fn new_wrapped_key(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.new_wrapped_dek().await?.1)
    }
}
