//! The file master key's rotation on disk, crash-safe at every step.
//!
//! A rotation writes the new key to `master.key.new` (file and directory fsynced) before the
//! store is re-wrapped under it, and installs it with a rename followed by an fsync of the
//! directory after the store commit. Whatever stops a rotation, one of the two files opens
//! the store: before the commit it is `master.key` (the pending file is discarded), after
//! it `master.key.new` (the next start or rewrap installs it). A pending key is removed only
//! when it is provably unused and the current key provably is the one the store uses.
//!
//! It knows nothing of the store: callers pass what the store holds as [`StoreKeys`].

use std::fs;
use std::path::{Path, PathBuf};

use super::CryptoError;
use super::keyprovider::{FileKeyProvider, KeyProvider, generate_master_key_file};

/// What the store holds that a master key must open.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreKeys<'a> {
    /// `master_key_id` of every stored data key.
    pub ids: &'a [&'a str],
    /// Wrapped keys (the system key, a data key) to try when no id matches.
    pub wrapped: &'a [&'a [u8]],
}

impl StoreKeys<'_> {
    /// Nothing is wrapped yet (first start).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.wrapped.is_empty()
    }
}

/// What [`settle_pending`] did with a pending key.
#[derive(Debug)]
pub enum Settled {
    /// No pending key.
    Nothing,
    /// The store uses the pending key: it is now `master.key`.
    Installed(FileKeyProvider),
    /// The store does not use it and the current key opens the store: removed.
    Discarded,
    /// Neither key is provably in use: both files are left for the operator.
    Kept,
}

/// `master.key.new` beside `master.key`.
pub fn pending_path(path: &Path) -> PathBuf {
    path.with_extension("key.new")
}

/// Fsyncs the directory holding `path`, so a create, rename or unlink in it is durable.
pub fn sync_parent(path: &Path) -> Result<(), CryptoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Whether `key` is the master key of what the store holds.
pub async fn in_use(key: &FileKeyProvider, store: StoreKeys<'_>) -> bool {
    if store.ids.contains(&key.key_id()) {
        return true;
    }
    for w in store.wrapped {
        if key.unwrap(w).await.is_ok() {
            return true;
        }
    }
    false
}

/// Writes a new key to the pending file, durably (file and directory fsynced), and loads
/// it. Refuses when a pending file exists: settle it first.
pub fn create_pending(path: &Path) -> Result<FileKeyProvider, CryptoError> {
    let pending = pending_path(path);
    generate_master_key_file(&pending)?;
    sync_parent(&pending)?;
    FileKeyProvider::load(&pending)
}

/// Renames the pending key over `master.key` and fsyncs the directory.
pub fn install_pending(path: &Path) -> Result<(), CryptoError> {
    fs::rename(pending_path(path), path)?;
    sync_parent(path)
}

/// Removes the pending key (a rotation that stopped before its store commit).
pub fn discard_pending(path: &Path) -> Result<(), CryptoError> {
    match fs::remove_file(pending_path(path)) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Finishes or undoes an interrupted rotation: installs the pending key when the store
/// uses it, removes it when the store provably uses the current key, else keeps both.
pub async fn settle_pending(path: &Path, store: StoreKeys<'_>) -> Result<Settled, CryptoError> {
    let pending = pending_path(path);
    if !pending.exists() {
        return Ok(Settled::Nothing);
    }
    if let Ok(next) = FileKeyProvider::load(&pending)
        && in_use(&next, store).await
    {
        install_pending(path)?;
        return Ok(Settled::Installed(FileKeyProvider::load(path)?));
    }
    let current_in_use = match FileKeyProvider::load(path) {
        Ok(current) => store.is_empty() || in_use(&current, store).await,
        Err(_) => false,
    };
    if current_in_use {
        discard_pending(path)?;
        Ok(Settled::Discarded)
    } else {
        Ok(Settled::Kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_key() -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("arcan-rot-{}", uuid::Uuid::new_v4()));
        let path = dir.join("master.key");
        generate_master_key_file(&path).expect("generate");
        (dir, path)
    }

    const DEK: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn a_pending_key_the_store_uses_is_installed() {
        let (dir, path) = temp_key();
        let next = create_pending(&path).expect("pending");
        assert!(
            create_pending(&path).is_err(),
            "never overwrites a pending key"
        );
        let id = next.key_id().to_owned();
        let ids = [id.as_str()];
        let got = settle_pending(
            &path,
            StoreKeys {
                ids: &ids,
                wrapped: &[],
            },
        )
        .await
        .expect("settle");
        assert!(
            matches!(&got, Settled::Installed(k) if k.key_id() == id),
            "{got:?}"
        );
        assert!(!pending_path(&path).exists());
        assert_eq!(FileKeyProvider::load(&path).expect("load").key_id(), id);
        fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_system_key_wrapped_under_the_pending_key_is_enough() {
        // No realm yet (no data keys): only the system key tells which key is in use.
        let (dir, path) = temp_key();
        let next = create_pending(&path).expect("pending");
        let system = next.wrap(DEK).await.expect("wrap");
        let wrapped = [system.as_slice()];
        let got = settle_pending(
            &path,
            StoreKeys {
                ids: &[],
                wrapped: &wrapped,
            },
        )
        .await
        .expect("settle");
        assert!(matches!(got, Settled::Installed(_)), "{got:?}");
        let now = FileKeyProvider::load(&path).expect("load");
        assert_eq!(now.unwrap(&system).await.expect("opens").as_slice(), DEK);
        fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn an_unused_pending_key_is_discarded_and_the_current_one_kept() {
        let (dir, path) = temp_key();
        let current = FileKeyProvider::load(&path).expect("load");
        let wrapped_dek = current.wrap(DEK).await.expect("wrap");
        let before = fs::read(&path).expect("read");
        create_pending(&path).expect("pending");
        let id = current.key_id().to_owned();
        let (ids, wrapped) = ([id.as_str()], [wrapped_dek.as_slice()]);
        let store = StoreKeys {
            ids: &ids,
            wrapped: &wrapped,
        };
        let got = settle_pending(&path, store).await.expect("settle");
        assert!(matches!(got, Settled::Discarded), "{got:?}");
        assert!(!pending_path(&path).exists());
        assert_eq!(
            fs::read(&path).expect("read"),
            before,
            "the working key stays"
        );
        assert!(matches!(
            settle_pending(&path, store).await.expect("settle"),
            Settled::Nothing
        ));
        discard_pending(&path).expect("discarding nothing is fine");
        fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn nothing_is_deleted_when_no_key_is_provably_in_use() {
        let (dir, path) = temp_key();
        create_pending(&path).expect("pending");
        let ids = ["file:someotherkey"];
        let got = settle_pending(
            &path,
            StoreKeys {
                ids: &ids,
                wrapped: &[],
            },
        )
        .await
        .expect("settle");
        assert!(matches!(got, Settled::Kept), "{got:?}");
        assert!(path.exists() && pending_path(&path).exists());
        // A torn pending file (a crash before its fsync) is not a reason to lose either.
        fs::write(pending_path(&path), "torn").expect("write");
        let got = settle_pending(
            &path,
            StoreKeys {
                ids: &ids,
                wrapped: &[],
            },
        )
        .await
        .expect("settle");
        assert!(matches!(got, Settled::Kept), "{got:?}");
        fs::remove_dir_all(dir).ok();
    }
}
