//! First start and every start: data directory, store, master key, TLS material and the
//! root account.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use arcan_config::Config;
use arcan_crypto::SYSTEM_KEY_META;
use arcan_crypto::rotation::{self, Settled, StoreKeys};
use arcan_crypto::tls::{TlsPaths, ensure_self_signed};
use arcan_crypto::{
    CryptoError, FileKeyProvider, KeyProvider, Keyring, generate_master_key_file, generate_token,
    hash_token,
};
use arcan_store::prelude::*;
use arcan_store::{DataKey, PgStore, SqliteStore, StoreError, TokenRecord, User};
use arcan_util::{new_id, now_ms};

/// What the server needs to start.
pub struct Boot {
    /// The opened store.
    pub store: Arc<dyn Store>,
    /// The keyring over the master key.
    pub keyring: Keyring,
    /// Server certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// Server key (PEM).
    pub tls_key: PathBuf,
}

/// Opens the store named by the config.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.database_url {
        Some(url) => Arc::new(
            PgStore::connect(url, config.store.max_connections)
                .await
                .context("connecting to PostgreSQL")?,
        ),
        None => {
            let path = config.data_dir.join("arcan.db");
            Arc::new(
                SqliteStore::open(&path, config.store.sqlite_synchronous_full)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?,
            )
        }
    })
}

/// The wrapped keys the store holds (data keys and the system key): what a master key
/// must open, and what settles a pending rotation.
pub struct HeldKeys {
    /// Every stored data key.
    pub keys: Vec<DataKey>,
    /// The wrapped system key, once one exists.
    pub system: Option<Vec<u8>>,
}

impl HeldKeys {
    /// Reads them from the store.
    pub async fn read(store: &dyn Store) -> Result<Self, StoreError> {
        let keys = store.data_keys_all().await?;
        let system = match store.meta_get(SYSTEM_KEY_META).await? {
            Some(hex_text) => Some(hex::decode(hex_text.trim()).map_err(|_| {
                StoreError::Corrupt("system key in the store is not hex".to_owned())
            })?),
            None => None,
        };
        Ok(Self { keys, system })
    }

    /// Settles a `master.key.new` left next to `path` (see [`rotation::settle_pending`]).
    pub async fn settle(&self, path: &Path) -> Result<Settled, CryptoError> {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.master_key_id.as_str()).collect();
        let wrapped: Vec<&[u8]> = self
            .system
            .iter()
            .map(Vec::as_slice)
            .chain(self.keys.first().map(|k| k.wrapped.as_slice()))
            .collect();
        let held = StoreKeys {
            ids: &ids,
            wrapped: &wrapped,
        };
        rotation::settle_pending(path, held).await
    }
}

/// Loads the master key, generating it on a first start (no data keys yet), finishing an
/// interrupted rotation, and refusing a key that cannot unwrap the stored data keys.
pub async fn master_key(config: &Config, store: &dyn Store) -> anyhow::Result<FileKeyProvider> {
    let path = config.data_dir.join("master.key");
    let held = HeldKeys::read(store).await?;
    let (keys, system) = (&held.keys, &held.system);
    match held
        .settle(&path)
        .await
        .context("settling an interrupted master-key rotation")?
    {
        Settled::Installed(_) => tracing::warn!("finished an interrupted master-key rotation"),
        Settled::Discarded => {
            tracing::warn!("removed the new key of a master-key rotation that did not commit")
        }
        Settled::Kept => tracing::error!(
            "master.key.new exists and neither key file provably opens the store; both are kept"
        ),
        Settled::Nothing => {}
    }
    if !path.exists() {
        if !keys.is_empty() || system.is_some() {
            bail!(
                "master key {} is missing but the store holds {} data keys and a system key; restore the key file",
                path.display(),
                keys.len()
            );
        }
        generate_master_key_file(&path)?;
        tracing::info!(path = %path.display(), "generated a new master key");
    }
    let provider = FileKeyProvider::load(&path)?;
    if let Some(k) = keys.first() {
        provider.unwrap(&k.wrapped).await.with_context(|| {
            format!(
                "master key {} cannot unwrap the stored data keys",
                path.display()
            )
        })?;
    }
    Ok(provider)
}

/// Prepares everything; prints the root token on the very first start.
pub async fn prepare(config: &Config) -> anyhow::Result<Boot> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = open_store(config).await?;
    let provider = master_key(config, store.as_ref()).await?;

    let (tls_cert, tls_key) = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let paths = TlsPaths::in_dir(&config.data_dir.join("tls"));
            if ensure_self_signed(&paths, &config.server.tls_names)? {
                println!("Generated a self-signed CA: {}", paths.ca_cert.display());
            }
            (paths.cert, paths.key)
        }
    };

    bootstrap_root(config, store.as_ref()).await?;
    let keyring = Keyring::new(Arc::new(provider));
    let fresh = hex::encode(keyring.new_wrapped_key().await?);
    let stored = store.meta_init(SYSTEM_KEY_META, &fresh).await?;
    let wrapped = hex::decode(stored.trim()).context("system key in the store is not hex")?;
    keyring
        .load_system_key(&wrapped)
        .await
        .context("unwrapping the system key")?;
    let system = keyring.system_key()?;
    store.set_chain_key(arcan_crypto::ChainKey::derive(&system));
    Ok(Boot {
        store,
        keyring,
        tls_cert,
        tls_key,
    })
}

/// Creates the root user and token once per deployment.
async fn bootstrap_root(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let id = new_id();
    if store.meta_init("root_user_id", &id).await? != id {
        return Ok(());
    }
    let now = now_ms();
    let unusable = hash_token(&generate_token());
    store
        .user_create(&User {
            id: id.clone().into(),
            kind: arcan_store::UserKind::Human,
            email: "root@arcan.local".into(),
            password_hash: format!("!{unusable}"),
            superuser: true,
            global_capabilities: vec!["realms:manage".into()],
            created_at: now,
        })
        .await?;
    let secret = generate_token();
    store
        .token_create(&TokenRecord {
            id: new_id().into(),
            hash: hash_token(&secret),
            user_id: id.into(),
            parent_id: None,
            name: "root".into(),
            capabilities: None,
            realm_id: None,
            env: None,
            key_glob: None,
            expires_at: now + 100 * 365 * 24 * 3600 * 1000,
            created_at: now,
            revoked_at: None,
            identity: None,
        })
        .await?;
    println!("Root token: {}", secret.as_str());
    println!("(shown once; revoke it once you have created admin users and tokens)");
    if config.dev {
        let path = config.data_dir.join("root-token");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(secret.as_bytes())?;
        println!("Dev mode: root token also written to {}", path.display());
    }
    Ok(())
}
