//! The `.arcanpkg` format: pack, sign, verify, and safe extraction.
//!
//! A package is a gzip'd tar of flat, regular files: `manifest.json`, `engine.wasm`, optional
//! files (README.md, templates) and `signature`. `manifest.json` lists the sha256 of every
//! file except itself and `signature` under `files`; `signature` is
//! `{"key": "ed25519:<base64>", "sig": "<base64>"}`, an Ed25519 signature over the manifest's
//! canonical bytes ([`crate::manifest::canonical_bytes`]). So the signature covers the
//! declared capabilities and, through the digests, the code.
//!
//! Every check runs in memory before anything is written: [`verify`] for packages,
//! [`verify_dir`] for installed plugin directories (the host's load-time check).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::archive::read_dir;
pub use crate::archive::{Files, Limits};
pub use crate::archive::{read_archive, write_archive};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::manifest::{ENGINE, MANIFEST, Manifest, SIGNATURE, canonical_bytes};

/// Contents of the `signature` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The signer's public key string, `ed25519:<base64>`.
    pub key: String,
    /// Base64 of the 64-byte Ed25519 signature over the canonical manifest bytes.
    pub sig: String,
}

/// A package or directory that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// The key that signed it.
    pub key: PublicKey,
    /// Every file, `manifest.json` and `signature` included, as verified.
    pub files: Files,
}

impl Verified {
    /// The verified `engine.wasm` bytes (use these rather than re-reading the file).
    pub fn engine_wasm(&self) -> &[u8] {
        self.files
            .get(ENGINE)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Which signing keys are accepted.
#[derive(Debug, Clone, Copy)]
enum Trust<'a> {
    Keys(&'a [PublicKey]),
    /// Any well-formed signature by the key it names (the registry checks only this).
    SelfSigned,
}

/// sha256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Packs the plugin directory `dir` (`manifest.json`, `engine.wasm`, optional flat files):
/// computes `files` into the manifest and returns the unsigned package. A `signature` file
/// in `dir` is left out. Refuses links, subdirectories and files over the limits.
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let mut files = read_dir(dir, &Limits::default())?;
    files.remove(SIGNATURE);
    let raw = files
        .get(MANIFEST)
        .ok_or_else(|| Error::Manifest(format!("{} has no {MANIFEST}", dir.display())))?;
    let mut value: Value =
        serde_json::from_slice(raw).map_err(|e| Error::Manifest(format!("{MANIFEST}: {e}")))?;
    let digests: serde_json::Map<String, Value> = files
        .iter()
        .filter(|(name, _)| name.as_str() != MANIFEST)
        .map(|(name, data)| (name.clone(), Value::String(sha256_hex(data))))
        .collect();
    let Some(obj) = value.as_object_mut() else {
        return Err(Error::Manifest(format!("{MANIFEST} is not a JSON object")));
    };
    obj.insert("files".into(), Value::Object(digests));
    let bytes = serde_json::to_vec_pretty(&value)
        .map_err(|e| Error::Manifest(format!("{MANIFEST}: {e}")))?;
    Manifest::parse(&bytes)?;
    files.insert(MANIFEST.into(), bytes);
    write_archive(&files)
}

/// Signs a package (replacing any signature) after checking its digests.
pub fn sign(pkg: &[u8], key: &SigningKey) -> Result<Vec<u8>> {
    let mut files = read_archive(pkg, &Limits::default())?;
    files.remove(SIGNATURE);
    let raw = files
        .get(MANIFEST)
        .ok_or_else(|| Error::Manifest(format!("the package has no {MANIFEST}")))?;
    let manifest = Manifest::parse(raw)?;
    check_digests(&manifest, &files)?;
    let sig = key.sign(&canonical_bytes(raw)?);
    let file = SignatureFile {
        key: PublicKey(key.verifying_key()).to_string(),
        sig: B64.encode(sig.to_bytes()),
    };
    let bytes =
        serde_json::to_vec(&file).map_err(|e| Error::Manifest(format!("signature: {e}")))?;
    files.insert(SIGNATURE.into(), bytes);
    write_archive(&files)
}

/// Verifies a package in memory: signed by one of `trusted` over the canonical manifest,
/// every file's digest matches, none missing, none extra.
pub fn verify(pkg: &[u8], trusted: &[PublicKey]) -> Result<Verified> {
    verify_with(pkg, trusted, &Limits::default())
}

/// [`verify`] with explicit limits.
pub fn verify_with(pkg: &[u8], trusted: &[PublicKey], limits: &Limits) -> Result<Verified> {
    check(read_archive(pkg, limits)?, Trust::Keys(trusted))
}

/// Verifies that a package is well-formed and validly signed by the key its signature
/// names, without deciding whether that key is trusted (what a registry checks).
pub fn verify_self_signed(pkg: &[u8], limits: &Limits) -> Result<Verified> {
    check(read_archive(pkg, limits)?, Trust::SelfSigned)
}

/// The host's load-time check of an installed plugin directory: same rules as [`verify`]
/// (flat regular files only, limits, trusted signature, digests, nothing missing or extra).
pub fn verify_dir(dir: &Path, trusted: &[PublicKey]) -> Result<Verified> {
    check(read_dir(dir, &Limits::default())?, Trust::Keys(trusted))
}

/// Verifies `pkg` against `trusted`, then writes it to `dest` (a plugin directory): into a
/// temporary directory next to `dest`, renamed into place, replacing an older version.
pub fn unpack_verified(pkg: &[u8], trusted: &[PublicKey], dest: &Path) -> Result<Verified> {
    let verified = verify(pkg, trusted)?;
    install(&verified, dest)?;
    Ok(verified)
}

fn check(files: Files, trust: Trust<'_>) -> Result<Verified> {
    let raw = files
        .get(MANIFEST)
        .ok_or_else(|| Error::Manifest(format!("no {MANIFEST}")))?;
    let sig_raw = files.get(SIGNATURE).ok_or(Error::Unsigned)?;
    let sig: SignatureFile = serde_json::from_slice(sig_raw)
        .map_err(|e| Error::Manifest(format!("signature file: {e}")))?;
    let key: PublicKey = sig.key.parse()?;
    if let Trust::Keys(trusted) = trust
        && !trusted.contains(&key)
    {
        return Err(Error::UntrustedKey {
            fingerprint: key.fingerprint(),
            key: key.to_string(),
        });
    }
    let bad = || Error::BadSignature {
        fingerprint: key.fingerprint(),
    };
    let sig_bytes: [u8; 64] = B64
        .decode(sig.sig.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    key.0
        .verify_strict(&canonical_bytes(raw)?, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| bad())?;
    let manifest = Manifest::parse(raw)?;
    check_digests(&manifest, &files)?;
    Ok(Verified {
        manifest,
        key,
        files,
    })
}

fn check_digests(manifest: &Manifest, files: &Files) -> Result<()> {
    for (name, expected) in &manifest.files {
        let data = files
            .get(name)
            .ok_or_else(|| Error::MissingFile(name.clone()))?;
        let actual = sha256_hex(data);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::DigestMismatch {
                file: name.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    if let Some(extra) = files
        .keys()
        .find(|n| *n != MANIFEST && *n != SIGNATURE && !manifest.files.contains_key(*n))
    {
        return Err(Error::ExtraFile(extra.clone()));
    }
    Ok(())
}

/// Writes verified files to `dest` through a temporary sibling directory renamed into
/// place (an existing `dest` is moved aside first and removed after).
pub fn install(verified: &Verified, dest: &Path) -> Result<()> {
    let files = &verified.files;
    use std::io::Write;
    let parent = dest
        .parent()
        .ok_or_else(|| Error::Unsafe(format!("{} has no parent directory", dest.display())))?;
    std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sibling = |tag: &str| -> PathBuf {
        parent.join(format!(".{base}.{tag}-{:016x}", rand::random::<u64>()))
    };
    let tmp = sibling("tmp");
    let write_all = || -> std::io::Result<()> {
        std::fs::create_dir(&tmp)?;
        for (name, data) in files {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(tmp.join(name))?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        Ok(())
    };
    if let Err(e) = write_all() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::Io {
            context: format!("writing {}", tmp.display()),
            source: e,
        });
    }
    let old = sibling("old");
    let had_old = std::fs::symlink_metadata(dest).is_ok();
    if had_old && let Err(e) = std::fs::rename(dest, &old) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::io(format!("moving aside {}", dest.display()))(e));
    }
    if let Err(e) = std::fs::rename(&tmp, dest) {
        if had_old {
            let _ = std::fs::rename(&old, dest);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::io(format!("installing {}", dest.display()))(e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

#[cfg(test)]
#[path = "package_tests.rs"]
mod tests;
