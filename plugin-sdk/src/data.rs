//! Key-value storage scoped by the host to this engine mount in this realm, encrypted at
//! rest (capability `host:store`, WIT import `arcan:plugin/plugin-data`). No other mount
//! or realm can read it.
//!
//! ```no_run
//! use arcan_plugin_sdk::data;
//!
//! # fn f() -> arcan_plugin_sdk::Result<()> {
//! data::put("users/app_x", b"1")?;
//! data::put_json("state", &serde_json::json!({"rotated": 3}))?;
//! let keys = data::list("users/", 100)?;
//! let state: Option<serde_json::Value> = data::get_json("state")?;
//! # Ok(()) }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::arcan::plugin::plugin_data as wit;
use crate::{Error, HostError};

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
    Ok(wit::get(key)?)
}

/// Stores `value` under `key`, replacing any previous value.
pub fn put(key: &str, value: &[u8]) -> Result<(), HostError> {
    Ok(wit::put(key, value)?)
}

/// Deletes `key`; returns whether it existed.
pub fn delete(key: &str) -> Result<bool, HostError> {
    Ok(wit::delete(key)?)
}

/// Keys starting with `prefix`, sorted, at most `limit`.
pub fn list(prefix: &str, limit: u32) -> Result<Vec<String>, HostError> {
    Ok(wit::list(prefix, limit)?)
}

/// The JSON value stored under `key`, if any. A value that does not deserialize into `T`
/// is an [`ErrorKind::Internal`](crate::ErrorKind::Internal) error.
pub fn get_json<T: DeserializeOwned>(key: &str) -> crate::Result<Option<T>> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::internal(format!("plugin data {key:?} is not the expected JSON: {e}"))
        }),
    }
}

/// Stores `value` as JSON under `key`.
pub fn put_json<T: Serialize + ?Sized>(key: &str, value: &T) -> crate::Result<()> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("cannot serialize plugin data {key:?}: {e}")))?;
    Ok(put(key, &bytes)?)
}
