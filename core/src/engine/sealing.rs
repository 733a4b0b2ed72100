//! Sealing of realm-owned engine data (connection credentials, plugin data, lease state)
//! under the realm's data key, with associated data naming what the value is and where it
//! belongs, so a sealed value moved to another row, mount or realm does not open.

use zeroize::Zeroizing;

use super::kv::{SealError, dek};
use crate::crypto::{Keyring, open, seal};
use crate::store::Store;

fn aad(realm_id: &str, purpose: &str, parts: &[&str]) -> Vec<u8> {
    let mut out = format!("arcan:{purpose}:v1\0{realm_id}");
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
    realm_id: &str,
    purpose: &str,
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
    realm_id: &str,
    purpose: &str,
    parts: &[&str],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let d = dek(store, keyring, realm_id).await?;
    Ok(open(&d, sealed, &aad(realm_id, purpose, parts))?)
}
