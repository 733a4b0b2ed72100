//! Errors of packaging, verification and the registry client. Each names what was wrong.

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can refuse a package or fail a registry call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The package or plugin directory has no `signature`.
    #[error("no signature: the package is unsigned (sign it with `arcan plugin sign`)")]
    Unsigned,
    /// Signed by a key that is not trusted.
    #[error(
        "signature by untrusted key {fingerprint} ({key}); add it to the trusted keys to accept it"
    )]
    UntrustedKey {
        /// Fingerprint of the signing key.
        fingerprint: String,
        /// The key string.
        key: String,
    },
    /// The signature does not match the manifest (the manifest was changed after signing).
    #[error("signature invalid: manifest.json was not signed by key {fingerprint} in this form")]
    BadSignature {
        /// Fingerprint of the key named in the signature.
        fingerprint: String,
    },
    /// A file's sha256 differs from the one in the manifest.
    #[error("digest mismatch for `{file}`: manifest says {expected}, file has {actual}")]
    DigestMismatch {
        /// File name.
        file: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// A file listed in the manifest is absent.
    #[error("file `{0}` is listed in manifest.json but missing")]
    MissingFile(String),
    /// A file is present but not listed in the manifest.
    #[error("file `{0}` is not listed in manifest.json")]
    ExtraFile(String),
    /// The archive or directory breaks a structural rule (path, link, type, duplicate).
    #[error("unsafe package: {0}")]
    Unsafe(String),
    /// A size or count limit was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Not a valid archive (truncated, not gzip, not tar).
    #[error("corrupt package: {0}")]
    Corrupt(String),
    /// `manifest.json` or `signature` is malformed.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A key could not be parsed or read.
    #[error("key: {0}")]
    Key(String),
    /// Version resolution failed.
    #[error("{0}")]
    Resolve(String),
    /// The package does not match the index entry that announced it.
    #[error("package mismatch: {0}")]
    Mismatch(String),
    /// Installing would downgrade.
    #[error("refusing to downgrade {name} from {installed} to {candidate} (use --allow-downgrade)")]
    Downgrade {
        /// Plugin name.
        name: String,
        /// Installed version.
        installed: String,
        /// Version that would be installed.
        candidate: String,
    },
    /// The registry answered with an error status.
    #[error("registry: {status} {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Message from the body.
        message: String,
    },
    /// Transport failure (connect, TLS, timeout).
    #[error("registry unreachable: {0}")]
    Transport(String),
    /// Local I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
