//! Audit: every request and every engine action becomes an [`Event`], chained per realm in
//! the store (tamper-evident) and delivered from there to webhook and syslog sinks.
//!
//! Architecture Path 4. In strict mode (the default) no request is acknowledged without its
//! durable event: a change's event is appended in the change's own transaction
//! ([`arcan_store::change`]), any other request's event is group-committed by the
//! [dispatcher] before the answer, and a request whose event cannot be stored is refused
//! with 503. Async mode (weaker, opt-in) answers first and stores after. Links are HMACs
//! under a key derived from the master key and every chain has a signed head
//! ([`arcan_crypto::chain`]). Sinks read the durable log with their own cursor, so a sink
//! that is down costs the request path nothing and catches up when it returns
//! (at-least-once, ordered, with event ids for de-duplication).
//! Secret values, passwords and tokens never enter an event; a value that must be
//! correlatable is HMAC-SHA256'd with the deployment's audit key.

pub mod dispatcher;
pub mod sinks;
pub mod verify;

use serde::{Deserialize, Serialize};

pub use dispatcher::{AuditMode, AuditStats, Auditor, NotDurable, Receipt, to_row};

use arcan_crypto::{CryptoError, Keyring, hmac_hex};

pub use arcan_store::{Outcome, SYSTEM_CHAIN};

/// Who acted.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// User id, when authenticated.
    pub user_id: Option<String>,
    /// Token id (never the token), when authenticated.
    pub token_id: Option<String>,
    /// `token`, `password`, `none`, `system`, or for tokens of a machine login the
    /// method's type (`jwt`, `kubernetes`).
    pub auth_method: String,
    /// Client IP.
    pub ip: Option<String>,
    /// For tokens of a machine login: `{method, role, subject}` (absent otherwise, so the
    /// stored form of other events is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
}

/// One audit event. Field order is fixed: the serialized form is what the chain hashes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Event id (UUIDv7).
    pub id: String,
    /// RFC 3339 time.
    pub time: String,
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Request id, when the event comes from a request.
    pub request_id: Option<String>,
    /// Who.
    pub actor: Actor,
    /// Realm id.
    pub realm_id: Option<String>,
    /// Realm slug.
    pub realm: Option<String>,
    /// What, e.g. `secrets.read`.
    pub action: String,
    /// On what, e.g. the request path.
    pub target: String,
    /// `success`, `denied`, `failure` or `error`.
    pub outcome: Outcome,
    /// HTTP status, when the event comes from a request.
    pub status: Option<u16>,
    /// Action-specific facts (never secret values; HMACs where correlation is needed).
    pub detail: Option<serde_json::Value>,
}

/// The outcome class of an HTTP status.
pub fn outcome_of(status: u16) -> Outcome {
    Outcome::of_status(status)
}

/// HMAC-SHA256 of a value under the deployment's audit key (derived from the system key),
/// so two events about the same value can be correlated without revealing it.
pub fn audit_hmac(keyring: &Keyring, value: &[u8]) -> Result<String, CryptoError> {
    let system = keyring.system_key()?;
    let audit_key = hmac_hex(system.as_slice(), b"arcan:audit-hmac-key:v1");
    Ok(hmac_hex(audit_key.as_bytes(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome_of(200), "success");
        assert_eq!(outcome_of(204), "success");
        for s in [401, 403, 404, 429] {
            assert_eq!(outcome_of(s), "denied");
        }
        assert_eq!(outcome_of(400), "failure");
        assert_eq!(outcome_of(413), "failure");
        assert_eq!(outcome_of(500), "error");
    }
}
