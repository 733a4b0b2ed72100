//! Plain records exchanged with the store. Timestamps are unix milliseconds.

use serde::{Deserialize, Serialize};

/// A human account.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Login name, lower-cased.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Bypasses RBAC (the bootstrap root user).
    pub superuser: bool,
    /// Capabilities that are not tied to a realm, such as `realms:manage`.
    pub global_capabilities: Vec<String>,
    /// Creation time.
    pub created_at: i64,
}

/// An API token; the secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Public id (safe to log).
    pub id: String,
    /// Hex SHA-256 of the token secret.
    pub hash: String,
    /// The user the token acts for.
    pub user_id: String,
    /// The token that issued this one, if any.
    pub parent_id: Option<String>,
    /// Human label.
    pub name: String,
    /// Capability ceiling; `None` inherits all of the user's rights.
    pub capabilities: Option<Vec<String>>,
    /// Realm restriction.
    pub realm_id: Option<String>,
    /// Environment restriction.
    pub env: Option<String>,
    /// Key glob restriction.
    pub key_glob: Option<String>,
    /// Expiry.
    pub expires_at: i64,
    /// Creation time.
    pub created_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

/// A tenant boundary.
#[derive(Debug, Clone, Serialize)]
pub struct Realm {
    /// Internal id.
    pub id: String,
    /// URL name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
    /// Creator's user id.
    pub created_by: String,
}

/// A realm's data key, wrapped by the master key.
#[derive(Debug, Clone)]
pub struct DataKey {
    /// Owning realm.
    pub realm_id: String,
    /// Id of the master key that wrapped it.
    pub master_key_id: String,
    /// Wrapped key bytes.
    pub wrapped: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
}

/// A custom role: capabilities, optionally narrowed to an environment and a key glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role name, unique in its realm.
    pub name: String,
    /// Granted capabilities.
    pub capabilities: Vec<String>,
    /// Only this environment, when set.
    pub env: Option<String>,
    /// Only keys matching this glob, when set.
    pub key_glob: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: i64,
}

/// Who a binding applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user, by id.
    User(String),
    /// A token, by id.
    Token(String),
}

impl Subject {
    /// `user` or `token`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Token(_) => "token",
        }
    }
    /// The subject's id.
    pub fn id(&self) -> &str {
        match self {
            Subject::User(id) | Subject::Token(id) => id,
        }
    }
}

/// A subject bound to a role in a realm.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Binding id.
    pub id: String,
    /// Realm the binding lives in.
    pub realm_id: String,
    /// The bound user or token.
    pub subject: Subject,
    /// Role name (built-in or custom).
    pub role: String,
    /// Creation time.
    pub created_at: i64,
    /// Creator's user id.
    pub created_by: String,
}

/// A secret write: the sealed value and who wrote it.
#[derive(Debug, Clone)]
pub struct SecretWrite {
    /// Environment.
    pub env: String,
    /// Key path.
    pub key: String,
    /// Sealed value (nonce ‖ ciphertext), bound to realm, env and key as AAD.
    pub sealed: Vec<u8>,
    /// Writer (user id).
    pub by: String,
    /// Write time.
    pub at: i64,
}

/// Metadata of a secret (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Environment.
    pub env: String,
    /// Key path.
    pub key: String,
    /// Current version.
    pub version: i64,
    /// First write.
    pub created_at: i64,
    /// First writer.
    pub created_by: String,
    /// Last write.
    pub updated_at: i64,
    /// Last writer.
    pub updated_by: String,
}

/// One stored version of a secret, still sealed.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// Secret metadata.
    pub meta: SecretMeta,
    /// The version read.
    pub version: i64,
    /// Sealed value.
    pub sealed: Vec<u8>,
    /// When this version was written.
    pub created_at: i64,
    /// Who wrote this version.
    pub created_by: String,
}

/// Metadata of one version (history).
#[derive(Debug, Clone, Serialize)]
pub struct VersionMeta {
    /// Version number.
    pub version: i64,
    /// When it was written.
    pub created_at: i64,
    /// Who wrote it.
    pub created_by: String,
}
