//! The registry's JSON documents and paths (see `README.md` § Protocol).

use serde::{Deserialize, Serialize};

/// The public registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.getarcan.dev";
/// Header carrying the publisher token is `Authorization: Bearer <token>`; this one
/// carries the activation token for enterprise packages.
pub const ACTIVATION_HEADER: &str = "X-Arcan-Activation";

/// `GET /v1/packages/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    /// Plugin name.
    pub name: String,
    /// Every published version, in publish order.
    pub versions: Vec<VersionEntry>,
}

/// One published version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionEntry {
    /// Semantic version.
    pub version: String,
    /// sha256 of the package blob, hex.
    pub sha256: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The `signature` file of the package (`{"key","sig"}`), for display; clients verify
    /// the one inside the package.
    pub signature: serde_json::Value,
    /// Where to download the blob; relative URLs resolve against the registry base.
    pub url: String,
    /// Withdrawn: never chosen by resolution.
    #[serde(default)]
    pub yanked: bool,
    /// Download needs an activation token.
    #[serde(default)]
    pub enterprise: bool,
    /// Publisher from the manifest.
    #[serde(default)]
    pub publisher: String,
}

/// `GET /v1/search?q=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matches.
    pub results: Vec<SearchHit>,
}

/// One search match: the newest non-yanked version of a package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    /// Plugin name.
    pub name: String,
    /// Newest non-yanked version.
    pub version: String,
    /// Description from its manifest.
    #[serde(default)]
    pub description: String,
    /// Publisher.
    #[serde(default)]
    pub publisher: String,
    /// Declared capabilities.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Needs an activation token.
    #[serde(default)]
    pub enterprise: bool,
}

/// Error body: `{"error": {"code", "message", "status"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error details.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// HTTP status.
    pub status: u16,
}
