//! Plain records exchanged with the store. Timestamps are unix milliseconds.

use serde::{Deserialize, Serialize};

use crate::ids::{BindingId, Outcome, RealmId, TokenId, UserId};

/// What kind of account a user row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserKind {
    /// A person: logs in with email and password.
    #[default]
    Human,
    /// The principal of a machine login role (`auth:<method>/<role>`): no password, no
    /// global capability, bound to realms only through its login role.
    LoginRole,
}

impl UserKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Human => "human",
            UserKind::LoginRole => "login_role",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(UserKind::Human),
            "login_role" => Some(UserKind::LoginRole),
            _ => None,
        }
    }
}

/// An account: a person, or the principal of a machine login role.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Human or login-role principal.
    pub kind: UserKind,
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
    pub id: TokenId,
    /// Hex SHA-256 of the token secret.
    pub hash: String,
    /// The user the token acts for.
    pub user_id: UserId,
    /// The token that issued this one, if any.
    pub parent_id: Option<TokenId>,
    /// Human label.
    pub name: String,
    /// Capability ceiling; `None` inherits all of the user's rights.
    pub capabilities: Option<Vec<String>>,
    /// Realm restriction.
    pub realm_id: Option<RealmId>,
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
    /// Who a machine login proved to be (JSON: method, type, role, subject, issuer,
    /// mapped claims); inherited by tokens minted from it. `None` for other tokens.
    pub identity: Option<String>,
}

/// A configured machine-identity auth method (`jwt` or `kubernetes`).
#[derive(Debug, Clone)]
pub struct AuthMethod {
    /// Internal id.
    pub id: String,
    /// Unique name (the login path segment).
    pub name: String,
    /// `jwt` or `kubernetes`.
    pub kind: String,
    /// Free text.
    pub description: String,
    /// The normalised configuration (JSON, without secrets).
    pub config: String,
    /// Secret parts of the configuration, sealed with the system key.
    pub secrets: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: i64,
    /// Creator (user id).
    pub created_by: String,
    /// Last change (part of the verifier cache key).
    pub updated_at: i64,
}

/// A login role of an auth method: what a verified identity must show, and the principal
/// whose realm bindings a login receives.
#[derive(Debug, Clone)]
pub struct AuthRole {
    /// Internal id.
    pub id: String,
    /// The method.
    pub method_id: String,
    /// Name, unique per method.
    pub name: String,
    /// The principal (a [`UserKind::LoginRole`] user).
    pub user_id: UserId,
    /// The lineage anchor: parent of every token its logins mint.
    pub anchor_id: TokenId,
    /// The role's bounds and mappings (JSON).
    pub definition: String,
    /// Default login token lifetime (ms).
    pub token_ttl: i64,
    /// Longest login token lifetime (ms).
    pub token_max_ttl: i64,
    /// Creation time.
    pub created_at: i64,
    /// Creator (user id).
    pub created_by: String,
    /// Last change.
    pub updated_at: i64,
}

/// One realm's part of a login role's grants, as the store applies it: bindings of the
/// principal to existing roles, and at most one role the login role manages.
#[derive(Debug, Clone)]
pub struct RealmGrant {
    /// The realm.
    pub realm_id: RealmId,
    /// The principal's bindings there (to existing roles, and to the managed one).
    pub bindings: Vec<Binding>,
    /// The managed role (named `auth.<method>.<role>`) created there, if any.
    pub managed: Option<Role>,
}

/// A tenant boundary.
#[derive(Debug, Clone, Serialize)]
pub struct Realm {
    /// Internal id.
    pub id: RealmId,
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
    pub realm_id: RealmId,
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
    User(UserId),
    /// A token, by id.
    Token(TokenId),
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
            Subject::User(id) => id.as_str(),
            Subject::Token(id) => id.as_str(),
        }
    }
}

/// A subject bound to a role in a realm.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Binding id.
    pub id: BindingId,
    /// Realm the binding lives in.
    pub realm_id: RealmId,
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

/// Chain of events that belong to no realm (and of events whose realm chain was found
/// tampered with).
pub const SYSTEM_CHAIN: &str = "_system";

/// An audit event ready to be chained: the store assigns its sequence number, previous
/// hash and hash inside the append transaction.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Event id.
    pub id: String,
    /// Hash chain: the realm id, or `_system`.
    pub chain: String,
    /// Event time.
    pub time: i64,
    /// Realm, for filtering.
    pub realm_id: Option<RealmId>,
    /// Action, for filtering.
    pub action: String,
    /// Outcome, for filtering.
    pub outcome: Outcome,
    /// Actor (user id), for filtering.
    pub actor: Option<String>,
    /// The canonical JSON of the event; what the hash covers.
    pub body: String,
}

/// A stored audit event.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Global delivery order.
    pub gseq: i64,
    /// Event id.
    pub id: String,
    /// Hash chain.
    pub chain: String,
    /// Position in its chain, from 1.
    pub seq: i64,
    /// Event time.
    pub time: i64,
    /// Realm.
    pub realm_id: Option<RealmId>,
    /// Action.
    pub action: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Actor.
    pub actor: Option<String>,
    /// Canonical JSON.
    pub body: String,
    /// Hash of the previous event in the chain.
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ "\n" ‖ body)`.
    pub hash: String,
}

/// A realm-scoped audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Realm (required: the API never lists across realms); its chain is queried.
    pub realm_id: RealmId,
    /// From this time (inclusive).
    pub since: Option<i64>,
    /// Until this time (exclusive).
    pub until: Option<i64>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// After this chain sequence number (cursor).
    pub after: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// A configured delivery sink.
#[derive(Debug, Clone)]
pub struct SinkRow {
    /// Unique name.
    pub name: String,
    /// `webhook` or `syslog`.
    pub kind: String,
    /// Sealed JSON configuration.
    pub config: Vec<u8>,
    /// Last delivered `gseq`.
    pub cursor: i64,
    /// Creation time.
    pub created_at: i64,
}
