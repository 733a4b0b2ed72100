//! `manifest.json` of a plugin: the one manifest type, and its canonical bytes.
//!
//! [`Manifest`] is shared by this crate (pack, sign, verify, install) and the plugin host,
//! which loads the value [`crate::package::verify_dir`] returns. The checks here are the
//! ones that need no host knowledge: name, semantic version, publisher, and `files`. What
//! only a host can judge (which `wit` contract versions it serves, which capability names
//! exist, what an operator may grant) is checked by the host over this same type.
//!
//! Two forms, one format: a packed manifest (in a package or an installed plugin
//! directory, [`Manifest::parse`]) lists the sha256 of every file under `files`, at least
//! `engine.wasm`; an unpacked one (a plugin directory before `arcan plugin pack`, or an
//! unsigned development plugin, [`Manifest::parse_unpacked`]) may leave `files` out. An
//! empty `files` is not written back when a manifest is serialized.
//!
//! Canonical bytes: the manifest parsed as a JSON value and written back with object keys
//! sorted (by their UTF-8 bytes), no whitespace, strings escaped as `serde_json` escapes
//! them. The signature covers exactly these bytes, so formatting of the stored file does
//! not matter but every field (capabilities, `files` digests) does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A plugin's `manifest.json`: what it is, the contract it targets, the capabilities it
/// declares, and (once packed) the digests of its files.
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
    /// sha256 (hex) of every other file of the package except `signature`; covered by the
    /// signature. Empty (and then not serialized) in an unpacked manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// Which form of manifest is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// In a package or an installed, signed plugin directory: `files` lists `engine.wasm`.
    Packed,
    /// Before packing, or an unsigned development plugin: `files` may be empty.
    Unpacked,
}

impl Manifest {
    /// Parses a packed manifest and checks name, version, publisher and `files` (flat file
    /// names, sha256 digests, `engine.wasm` listed, `manifest.json` and `signature` not).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_as(bytes, Form::Packed)
    }

    /// Parses an unpacked manifest (a plugin directory that was never packed, or an
    /// unsigned development plugin): the checks of [`Manifest::parse`], except that `files`
    /// may be absent; the names and digest format of the entries it has are still checked
    /// (not the files they name).
    pub fn parse_unpacked(bytes: &[u8]) -> Result<Self> {
        Self::parse_as(bytes, Form::Unpacked)
    }

    fn parse_as(bytes: &[u8], form: Form) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Manifest(format!("manifest.json: {e}")))?;
        m.validate(form)?;
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

    fn validate(&self, form: Form) -> Result<()> {
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
        if form == Form::Packed && !self.files.contains_key(ENGINE) {
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

/// Plugin names: 1–64 of `[a-z0-9-]`, not starting with `-`. The host uses the same rule for
/// mount and connection names.
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

    fn manifest(files: Option<Value>) -> Vec<u8> {
        let mut m = serde_json::json!({
            "name": "pg", "version": "1.0.0", "publisher": "tests",
            "wit": "arcan:plugin@0.1.0", "capabilities": ["host:sql"],
        });
        if let Some(files) = files {
            m["files"] = files;
        }
        m.to_string().into_bytes()
    }

    #[test]
    fn packed_needs_files_unpacked_does_not() {
        let digest = "a".repeat(64);
        let packed = manifest(Some(serde_json::json!({ "engine.wasm": digest })));
        for parse in [Manifest::parse, Manifest::parse_unpacked] {
            assert_eq!(parse(&packed).expect("packed").files.len(), 1);
        }
        let bare = manifest(None);
        let err = Manifest::parse(&bare).expect_err("packed without files");
        assert!(
            err.to_string().contains("does not list `engine.wasm`"),
            "{err}"
        );
        let m = Manifest::parse_unpacked(&bare).expect("unpacked without files");
        assert!(m.files.is_empty());
        let written = serde_json::to_value(&m).expect("serialize");
        assert!(written.get("files").is_none(), "{written}");
        // The entries an unpacked manifest has are checked all the same.
        for bad in [
            serde_json::json!({ "engine.wasm": "not hex" }),
            serde_json::json!({ "signature": digest }),
            serde_json::json!({ "../engine.wasm": digest }),
        ] {
            assert!(
                Manifest::parse_unpacked(&manifest(Some(bad.clone()))).is_err(),
                "{bad}"
            );
        }
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
