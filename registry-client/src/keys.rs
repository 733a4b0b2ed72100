//! Publisher keys: Ed25519.
//!
//! - Private key file: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), written with mode 0600.
//! - Public key string: `ed25519:<standard base64 of the 32 key bytes>`.
//! - Fingerprint: the first 16 hex characters of sha256 of the 32 key bytes.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Prefix of the public key string.
pub const KEY_PREFIX: &str = "ed25519:";

/// A publisher's public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl PublicKey {
    /// First 16 hex characters of sha256 of the key bytes.
    pub fn fingerprint(&self) -> String {
        let mut h = hex::encode(Sha256::digest(self.0.as_bytes()));
        h.truncate(16);
        h
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let b64 = s.strip_prefix(KEY_PREFIX).ok_or_else(|| {
            Error::Key(format!(
                "public key `{s}` must look like `{KEY_PREFIX}<base64>`"
            ))
        })?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| Error::Key(format!("public key `{s}`: {e}")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Key(format!("public key `{s}` is not 32 bytes")))?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|e| Error::Key(format!("public key `{s}`: {e}")))
    }
}

/// Parses a list of public key strings (e.g. `plugins.trusted_keys`).
pub fn parse_keys<S: AsRef<str>>(keys: &[S]) -> Result<Vec<PublicKey>> {
    keys.iter().map(|k| k.as_ref().parse()).collect()
}

/// A new random signing key.
pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    seed.zeroize();
    key
}

/// The public key of a signing key.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key())
}

/// Writes the private key as PKCS#8 PEM with mode 0600; refuses to overwrite a file.
pub fn write_private(key: &SigningKey, path: &Path) -> Result<()> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Key(format!("encoding the private key: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private(path: &Path) -> Result<SigningKey> {
    let mut text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        Error::Key(format!(
            "{}: not an Ed25519 PKCS#8 PEM key: {e}",
            path.display()
        ))
    });
    text.zeroize();
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("arcan-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let key = generate();
        let path = dir.join("k.pem");
        write_private(&key, &path).expect("write");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_private(&key, &path).is_err(), "no overwrite");
        let back = read_private(&path).expect("read");
        assert_eq!(back.to_bytes(), key.to_bytes());
        let pk = public_key(&key);
        let parsed: PublicKey = pk.to_string().parse().expect("parse");
        assert_eq!(parsed, pk);
        assert_eq!(pk.fingerprint().len(), 16);
        for bad in ["", "ed25519:", "rsa:AAAA", "ed25519:!!", "ed25519:AAAA"] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
