//! Keys of the audit chain: each link is an HMAC-SHA256 under a key derived from the system
//! key (itself wrapped by the master key, so the link key is never stored anywhere), and each
//! chain's head is signed under a second derived key. Someone who can write the database but
//! does not hold the master key can neither recompute a link nor move a head.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Domain separation of the link key.
const LINK_LABEL: &[u8] = b"arcan:audit-chain-link:v1";
/// Domain separation of the head key.
const HEAD_LABEL: &[u8] = b"arcan:audit-chain-head:v1";

/// The two audit chain keys.
#[derive(Clone)]
pub struct ChainKey {
    link: Zeroizing<[u8; 32]>,
    head: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// A chain's signed head: the last link, as of the transaction that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain (realm id, or `_system`).
    pub chain: String,
    /// Sequence number of the last event.
    pub seq: i64,
    /// Link of the last event.
    pub hash: String,
    /// Where verification starts: 0 (genesis) or the last event retention removed.
    pub from_seq: i64,
    /// The link verification starts from (genesis, or that removed event's link).
    pub from_hash: String,
}

fn derive(system_key: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(system_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(label);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

fn hmac_parts(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b"\n");
        }
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

impl ChainKey {
    /// Derives both keys from the system key.
    pub fn derive(system_key: &[u8; 32]) -> Self {
        Self {
            link: derive(system_key, LINK_LABEL),
            head: derive(system_key, HEAD_LABEL),
        }
    }

    /// The link of an event: `HMAC(link key, prev_hash ‖ "\n" ‖ body)`, hex.
    pub fn link(&self, prev_hash: &str, body: &str) -> String {
        hmac_parts(&self.link, &[prev_hash.as_bytes(), body.as_bytes()])
    }

    /// The signature of a head.
    pub fn sign_head(&self, head: &ChainHead) -> String {
        hmac_parts(
            &self.head,
            &[
                head.chain.as_bytes(),
                head.seq.to_string().as_bytes(),
                head.hash.as_bytes(),
                head.from_seq.to_string().as_bytes(),
                head.from_hash.as_bytes(),
            ],
        )
    }

    /// True when `mac` signs `head` (constant-time comparison).
    pub fn head_signed(&self, head: &ChainHead, mac: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.sign_head(head).as_bytes().ct_eq(mac.as_bytes()).into()
    }

    /// True when `hash` is the link of `body` after `prev_hash` (constant-time comparison).
    pub fn links(&self, prev_hash: &str, body: &str, hash: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.link(prev_hash, body)
            .as_bytes()
            .ct_eq(hash.as_bytes())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_depend_on_the_key_and_differ_from_plain_sha256() {
        let a = ChainKey::derive(&[1; 32]);
        let b = ChainKey::derive(&[2; 32]);
        let l = a.link("prev", "body");
        assert_ne!(l, b.link("prev", "body"));
        use sha2::Digest;
        let unkeyed = hex::encode(sha2::Sha256::digest(b"prev\nbody"));
        assert_ne!(l, unkeyed);
        assert!(a.links("prev", "body", &l));
        assert!(!a.links("prev", "body2", &l));
    }

    #[test]
    fn head_signature_covers_every_field() {
        let k = ChainKey::derive(&[7; 32]);
        let h = ChainHead {
            chain: "r1".into(),
            seq: 10,
            hash: "ab".into(),
            from_seq: 3,
            from_hash: "cd".into(),
        };
        let mac = k.sign_head(&h);
        assert!(k.head_signed(&h, &mac));
        for changed in [
            ChainHead {
                chain: "r2".into(),
                ..h.clone()
            },
            ChainHead {
                seq: 9,
                ..h.clone()
            },
            ChainHead {
                hash: "ac".into(),
                ..h.clone()
            },
            ChainHead {
                from_seq: 4,
                ..h.clone()
            },
            ChainHead {
                from_hash: "ce".into(),
                ..h.clone()
            },
        ] {
            assert!(!k.head_signed(&changed, &mac), "{changed:?}");
        }
        assert!(!ChainKey::derive(&[8; 32]).head_signed(&h, &mac));
    }
}
