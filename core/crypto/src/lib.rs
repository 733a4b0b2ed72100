//! Cryptography: envelope encryption, the master-key provider, tokens, passwords and TLS
//! material.
//!
//! Secret values are sealed with XChaCha20-Poly1305 under a per-realm data key; data keys
//! are wrapped by the master key of a [`KeyProvider`]. Random 192-bit nonces make nonce reuse
//! a non-issue without counters. Key material lives in [`zeroize::Zeroizing`] buffers.

pub mod chain;
mod envelope;
mod keyprovider;
mod password;
pub mod rotation;
pub mod tls;
mod token;

pub use chain::{ChainHead, ChainKey};
pub use envelope::{Keyring, aad};

/// Name of the metadata entry holding the wrapped system key (hex).
pub const SYSTEM_KEY_META: &str = "system_key";
pub use keyprovider::{FileKeyProvider, KeyProvider, MASTER_KEY_LEN, generate_master_key_file};
pub use password::{hash_password, verify_password};
pub use token::{TOKEN_PREFIX, generate_token, hash_token};

/// Errors of the crypto layer.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, or tampered/corrupt ciphertext.
    #[error("decryption failed (wrong key or tampered data)")]
    Decrypt,
    /// Encryption failed (should not happen with valid keys).
    #[error("encryption failed")]
    Encrypt,
    /// The master key is missing, malformed or unreadable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// Password hashing failed.
    #[error("password hashing: {0}")]
    Password(String),
    /// Generating TLS material failed.
    #[error("tls: {0}")]
    Tls(String),
    /// File system error while handling key files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The `prev_hash` of the first event of an audit chain.
pub const CHAIN_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// HMAC-SHA256, hex.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm cannot be taken.
        Err(_) => return String::new(),
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Seals `plaintext` with a 32-byte key; output is `nonce(24) ‖ ciphertext+tag`.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use chacha20poly1305::XChaCha20Poly1305;
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)?;
    let mut out = Vec::with_capacity(nonce.len() + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] produced.
pub fn open(
    key: &[u8; 32],
    sealed: &[u8],
    aad: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    if sealed.len() < 24 + 16 {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ct) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(zeroize::Zeroizing::new)
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"hunter2", b"ctx").expect("seal");
        assert_eq!(
            open(&key, &sealed, b"ctx").expect("open").as_slice(),
            b"hunter2"
        );
        assert!(matches!(
            open(&key, &sealed, b"other"),
            Err(CryptoError::Decrypt)
        ));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            open(&key, &bad, b"ctx"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            open(&[8u8; 32], &sealed, b"ctx"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            open(&key, &sealed[..10], b"ctx"),
            Err(CryptoError::Decrypt)
        ));
    }
}
