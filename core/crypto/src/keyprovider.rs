//! Master-key providers. This build ships the `file` provider; KMS providers plug in
//! behind the same trait.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{CryptoError, open, seal};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Wraps and unwraps data keys with a master key the provider holds.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// A stable, non-secret identifier of the current master key.
    fn key_id(&self) -> &str;
    /// Wraps a data key.
    async fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Unwraps a data key.
    async fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}

/// A master key kept in a local file (hex, mode 0600).
pub struct FileKeyProvider {
    key: Zeroizing<[u8; MASTER_KEY_LEN]>,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for FileKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeyProvider")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const WRAP_AAD: &[u8] = b"arcan:data-key:v1";

impl FileKeyProvider {
    /// Loads the key file, refusing a file readable by group or others.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let meta = fs::metadata(path)
            .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(CryptoError::MasterKey(format!(
                "{} is accessible by group or others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let text = Zeroizing::new(fs::read_to_string(path)?);
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        hex::decode_to_slice(text.trim(), key.as_mut_slice()).map_err(|_| {
            CryptoError::MasterKey(format!(
                "{} must hold {MASTER_KEY_LEN} bytes as hex",
                path.display()
            ))
        })?;
        Ok(Self::from_key(key, path.to_path_buf()))
    }

    fn from_key(key: Zeroizing<[u8; MASTER_KEY_LEN]>, path: PathBuf) -> Self {
        let digest = Sha256::new()
            .chain_update(b"arcan:master-key-id:v1")
            .chain_update(key.as_slice())
            .finalize();
        let id = format!("file:{}", hex::encode(&digest[..8]));
        Self { key, id, path }
    }
}

#[async_trait]
impl KeyProvider for FileKeyProvider {
    fn key_id(&self) -> &str {
        &self.id
    }

    async fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.key, dek, WRAP_AAD)
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.key, wrapped, WRAP_AAD)
    }
}

/// Writes a new random master key to `path` (mode 0600); refuses to overwrite.
pub fn generate_master_key_file(path: &Path) -> Result<(), CryptoError> {
    use rand::RngCore;
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
    let text = Zeroizing::new(hex::encode(key.as_slice()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CryptoError::MasterKey(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    super::rotation::sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generate_load_wrap() {
        let dir = std::env::temp_dir().join(format!("arcan-kp-{}", uuid::Uuid::new_v4()));
        let path = dir.join("master.key");
        generate_master_key_file(&path).expect("generate");
        assert!(
            generate_master_key_file(&path).is_err(),
            "must not overwrite"
        );
        let kp = FileKeyProvider::load(&path).expect("load");
        let key = b"0123456789abcdef0123456789abcdef";
        let w = kp.wrap(key).await.expect("wrap");
        assert!(
            !w.windows(key.len()).any(|x| x == key),
            "the wrapped key holds the key"
        );
        assert_eq!(&kp.unwrap(&w).await.expect("unwrap")[..], &key[..]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            FileKeyProvider::load(&path).is_err(),
            "world-readable key refused"
        );
        fs::remove_dir_all(dir).ok();
    }
}
