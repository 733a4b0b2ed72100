//! Connection providers: what the host knows about one kind of external system beyond
//! reaching it. Today that is root rotation (`sql.rotate-root`, `http.rotate-root`): how a
//! connection's root credential is replaced on the system it belongs to.
//!
//! - [`postgres`]: a new password for the connection's own role (`ALTER ROLE SESSION_USER`).
//! - [`aws`]: a new IAM access key for the connection's own user (`CreateAccessKey`), the
//!   old one deleted with the new one (`DeleteAccessKey`).
//!
//! The generic host (`host::rotate`) picks the provider of a connection with
//! [`Provider::for_connection`], hands it a [`SpecStore`] (the mount's sealed connection
//! record) and turns a [`RotationError`] into the guest's error and the operator's log
//! line. Each provider decides the order of its steps, because only it knows which
//! credential still works after each one; the rule they follow is that a rotation stores
//! the new credential before it retires the old one. Not yet guarded: two rotations of the
//! same connection at once (or an operator's edit meanwhile) each write back the whole
//! record they read, so the later write wins even if it names a retired key; and a step
//! that times out after the remote system applied it is reported as a plain failure.
//!
//! Neither credential is handed to the plugin, the API or the log (a plugin holding
//! `host:sql` on the root connection can still set a password of its own).

pub mod aws;
pub mod postgres;

use std::future::Future;

use crate::connections::{ConnectionSpec, Connections, HttpAuth};

/// Stores a connection's new spec (with the new root credential), replacing the old one.
/// The host's implementation seals it into the mount record, so every node picks it up.
pub trait SpecStore: Sync {
    /// Stores `spec` as the rotated connection's spec; `Err` says why it was not stored.
    fn store_spec(&self, spec: ConnectionSpec) -> impl Future<Output = Result<(), String>> + Send;
}

/// A connection whose root credential the host can replace.
///
/// Dispatched through the [`Provider`] enum rather than `dyn`: the kinds of connection are
/// the closed set of [`ConnectionSpec`] variants an operator can configure (adding a
/// provider means adding a spec variant anyway), so an enum keeps the futures unboxed and
/// their `Send` bound checked at compile time, without an `async-trait` shim. The trait
/// still states the one contract every provider implements.
pub trait RootRotation {
    /// Replaces the root credential: makes a new one on the external system, stores the
    /// connection's new spec through `store`, and retires the old credential if it still
    /// works, in the order that never leaves the stored spec naming a dead credential.
    fn rotate<S: SpecStore>(
        &self,
        store: &S,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;
}

/// How a rotation failed, by what it left behind.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// No new credential was made (as far as the provider can tell: a timed-out request may
    /// still have been applied): the stored credential stays in use.
    #[error("{0}")]
    Failed(String),
    /// A new credential is live on the external system, but storing it failed.
    #[error("the new root {credential} could not be stored")]
    NotStored {
        /// What the provider calls its credential (`key`, `credential`).
        credential: &'static str,
        /// For the operator's log: which credential works now and what to do.
        aftermath: &'static str,
        /// Why storing failed.
        cause: String,
    },
    /// The new credential is stored and in use, but the old one could not be retired.
    #[error("the new root {credential} is in use, but deleting the old one failed: {cause}")]
    OldNotRetired {
        /// What the provider calls its credential.
        credential: &'static str,
        /// For the operator's log: what is left to clean up.
        aftermath: &'static str,
        /// Why retiring failed.
        cause: String,
    },
}

impl RotationError {
    /// The operator's log line for a rotation that changed something but did not finish,
    /// with its cause; `None` when it failed before making a new credential.
    pub fn aftermath(&self) -> Option<(&'static str, &str)> {
        match self {
            RotationError::Failed(_) => None,
            RotationError::NotStored {
                aftermath, cause, ..
            }
            | RotationError::OldNotRetired {
                aftermath, cause, ..
            } => Some((aftermath, cause)),
        }
    }
}

/// The provider of one connection's root rotation.
#[derive(Debug)]
pub enum Provider {
    /// A PostgreSQL connection.
    Postgres(postgres::PostgresRoot),
    /// An HTTP connection signed with AWS root keys (boxed: it holds the whole spec).
    Aws(Box<aws::AwsRoot>),
}

impl Provider {
    /// The provider of connection `name` of a mount, or why it has no rotatable root
    /// credential.
    pub fn for_connection(connections: &Connections, name: &str) -> Result<Self, String> {
        match connections.specs().get(name) {
            Some(ConnectionSpec::Postgres { .. }) => {
                postgres::PostgresRoot::new(connections, name).map(Provider::Postgres)
            }
            Some(spec @ ConnectionSpec::Http { .. }) => {
                let (client, base, auth) = connections.http(name)?;
                match auth {
                    HttpAuth::AwsSigv4(keys) => Ok(Provider::Aws(Box::new(aws::AwsRoot::new(
                        name, spec, client, base, keys,
                    )))),
                    _ => Err(format!(
                        "connection `{name}` has no rotatable root credential (only aws_sigv4 connections rotate)"
                    )),
                }
            }
            None => Err(format!("connection `{name}` is not bound to this mount")),
        }
    }
}

impl RootRotation for Provider {
    async fn rotate<S: SpecStore>(&self, store: &S) -> Result<(), RotationError> {
        match self {
            Provider::Postgres(p) => p.rotate(store).await,
            Provider::Aws(p) => p.rotate(store).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn connections(specs: serde_json::Value) -> Connections {
        let specs = crate::connections::parse_specs(specs).expect("valid specs");
        Connections::new(specs, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn each_kind_finds_its_provider_or_none() {
        let c = connections(serde_json::json!({
            "db": {"type": "postgres", "url": "postgres://root:pw@127.0.0.1:5432/test"},
            "aws": {"type": "http", "base_url": "http://127.0.0.1:5000", "auth": {
                "type": "aws_sigv4", "access_key_id": "AKIA1", "secret_access_key": "s",
                "region": "us-east-1"}},
            "api": {"type": "http", "base_url": "https://api.example.com",
                "auth": {"type": "bearer", "token": "t"}},
        }));
        assert!(matches!(
            Provider::for_connection(&c, "db"),
            Ok(Provider::Postgres(_))
        ));
        assert!(matches!(
            Provider::for_connection(&c, "aws"),
            Ok(Provider::Aws(_))
        ));
        let err = Provider::for_connection(&c, "api").expect_err("bearer does not rotate");
        assert_eq!(
            err,
            "connection `api` has no rotatable root credential (only aws_sigv4 connections rotate)"
        );
        let err = Provider::for_connection(&c, "nope").expect_err("unknown");
        assert!(err.contains("not bound to this mount"), "{err}");
        // What a provider shows of itself carries no credential.
        let shown = format!(
            "{:?} {:?}",
            Provider::for_connection(&c, "db"),
            Provider::for_connection(&c, "aws")
        );
        assert!(!shown.contains("pw") && !shown.contains("AKIA1"), "{shown}");
    }

    #[test]
    fn only_partial_rotations_have_an_aftermath() {
        assert!(
            RotationError::Failed("IAM refused".into())
                .aftermath()
                .is_none()
        );
        let e = RotationError::OldNotRetired {
            credential: "key",
            aftermath: "delete it by hand",
            cause: "IAM refused".into(),
        };
        assert_eq!(e.aftermath(), Some(("delete it by hand", "IAM refused")));
        assert_eq!(
            e.to_string(),
            "the new root key is in use, but deleting the old one failed: IAM refused"
        );
    }
}
