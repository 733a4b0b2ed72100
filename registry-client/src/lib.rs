//! Arcan plugin packages and the registry client.
//!
//! What it is for:
//! - [`package`]: the `.arcanpkg` format (a gzip'd tar of `manifest.json`, `engine.wasm`,
//!   optional flat files and `signature`), with [`package::pack`], [`package::sign`],
//!   [`package::verify`], [`package::unpack_verified`] (safe extraction) and
//!   [`package::verify_dir`], the check the host runs on an installed plugin before
//!   anything is compiled.
//! - [`manifest`]: the one [`Manifest`] type (shared with the plugin host, which adds its own
//!   contract and capability checks) and its canonical bytes.
//! - [`keys`]: Ed25519 publisher keys (PKCS#8 PEM private keys, `ed25519:<base64>` public
//!   keys, fingerprints).
//! - [`protocol`] and [`client`]: the registry's HTTPS JSON protocol and a client that
//!   resolves, downloads (bounded, retried, cached), verifies and installs packages.
//!
//! What it is not: it does not decide which capabilities a plugin may use (the host's
//! manifest check and the operator's grants do), and it does not load WebAssembly.
//! See `README.md` for the format, the canonical bytes and the protocol.

mod archive;
pub mod client;
pub mod error;
pub mod keys;
pub mod manifest;
pub mod package;
pub mod protocol;

pub use client::{Client, ClientOptions};
pub use error::{Error, Result};
pub use keys::PublicKey;
pub use manifest::Manifest;
pub use package::{Limits, Verified};
