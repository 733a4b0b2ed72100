//! `manifest.json` of a package and its canonical bytes.
//!
//! Canonical bytes: the manifest parsed as a JSON value and written back with object keys
//! sorted (by their UTF-8 bytes), no whitespace, strings escaped as `serde_json` escapes
//! them. The signature covers exactly these bytes, so formatting of the stored file does
//! not matter but every field (capabilities, `files` digests) does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The manifest: the plugin manifest the host reads, plus `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[a-z0-9-]`, 1–64 characters.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Who publishes it.
    pub publisher: String,
    /// One line for listings.
    #[serde(default)]
    pub description: String,
    /// The WIT package it was built against, e.g. `arcan:plugin@0.1.0`.
    pub wit: String,
    /// Declared capabilities: `host:*` and `engine:*`.
    pub capabilities: Vec<String>,
    /// sha256 (hex) of every other file of the package except `signature`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses a manifest and checks name, version, publisher and file names.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Manifest(format!("manifest.json: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// The parsed semantic version.
    pub fn semver(&self) -> Result<semver::Version> {
        semver::Version::parse(&self.version).map_err(|_| {
            Error::Manifest(format!(
                "version `{}` is not a semantic version",
                self.version
            ))
        })
    }

    fn validate(&self) -> Result<()> {
        if !valid_name(&self.name) {
            return Err(Error::Manifest(format!(
                "plugin name `{}` must be 1-64 characters of a-z 0-9 -",
                self.name
            )));
        }
        self.semver()?;
        if self.publisher.trim().is_empty() {
            return Err(Error::Manifest("publisher is empty".into()));
        }
        for (file, digest) in &self.files {
            check_file_name(file)?;
            if file == MANIFEST || file == SIGNATURE {
                return Err(Error::Manifest(format!("`files` must not list `{file}`")));
            }
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Manifest(format!(
                    "digest of `{file}` is not a sha256 hex string"
                )));
            }
        }
        if !self.files.contains_key(ENGINE) {
            return Err(Error::Manifest(format!("`files` does not list `{ENGINE}`")));
        }
        Ok(())
    }
}

/// Name of the manifest file.
pub const MANIFEST: &str = "manifest.json";
/// Name of the signature file.
pub const SIGNATURE: &str = "signature";
/// Name of the component.
pub const ENGINE: &str = "engine.wasm";

/// Plugin names: 1–64 of `[a-z0-9-]`, not starting with `-`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// File names inside a package: flat (no `/`), 1–128 of `[A-Za-z0-9._-]`, not starting
/// with `.` (so no `.`, `..` or hidden files).
pub fn check_file_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Unsafe(format!(
            "file name `{}` is not allowed (only flat names of A-Z a-z 0-9 . _ -, no paths, links or `..`)",
            name.escape_default()
        )))
    }
}

/// The canonical bytes of a manifest file (see the module docs).
pub fn canonical_bytes(manifest_json: &[u8]) -> Result<Vec<u8>> {
    let v: Value = serde_json::from_slice(manifest_json)
        .map_err(|e| Error::Manifest(format!("manifest.json: {e}")))?;
    let mut out = Vec::with_capacity(manifest_json.len());
    write_canonical(&v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    let enc = |e: serde_json::Error| Error::Manifest(e.to_string());
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).map_err(enc)?;
                out.push(b':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out)?;
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).map_err(enc)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_sorted_and_compact() {
        let a = br#"{ "b": 1, "a": {"z": [1, "x"], "y": null} }"#;
        let b = br#"{"a":{"y":null,"z":[1,"x"]},"b":1}"#;
        assert_eq!(canonical_bytes(a).expect("a"), b.to_vec());
        assert_eq!(canonical_bytes(b).expect("b"), b.to_vec());
    }

    #[test]
    fn file_names() {
        for ok in ["engine.wasm", "README.md", "role-template_1.sql"] {
            check_file_name(ok).expect(ok);
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "a\\b",
            "a b",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
    }
}
