//! PostgreSQL root rotation: a new random password for the connection's own role, set on
//! the server with `ALTER ROLE SESSION_USER` and then stored. The password never leaves the
//! host.
//!
//! The role is changed in place, so there is no old credential to retire, and no order
//! keeps both working: once the server has the new password, the stored spec is stale
//! until it is replaced. A failure to store is therefore logged for the operator, who must
//! re-enter the connection.

use std::time::Duration;

use rand::Rng;
use rand::distributions::Alphanumeric;
use sqlx::PgPool;
use zeroize::Zeroizing;

use super::{RootRotation, RotationError, SpecStore};
use crate::connections::{ConnectionSpec, Connections, sql_error};

/// Length of a generated root password (alphanumeric).
const PASSWORD_LEN: usize = 40;

/// The root rotation of one PostgreSQL connection.
pub struct PostgresRoot {
    name: String,
    pool: PgPool,
    url: Zeroizing<String>,
    max_connections: u32,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRoot")
            .field("connection", &self.name)
            .finish_non_exhaustive()
    }
}

impl PostgresRoot {
    /// The rotation of connection `name`, which must be a PostgreSQL connection of
    /// `connections` (its pool is used to apply the new password).
    pub fn new(connections: &Connections, name: &str) -> Result<Self, String> {
        let pool = connections.postgres(name)?;
        let Some(ConnectionSpec::Postgres {
            url,
            max_connections,
        }) = connections.specs().get(name)
        else {
            return Err(format!("connection `{name}` is not a postgres connection"));
        };
        Ok(Self {
            name: name.to_owned(),
            pool,
            url: Zeroizing::new(url.clone()),
            max_connections: *max_connections,
            timeout: connections.timeout(),
        })
    }
}

impl RootRotation for PostgresRoot {
    async fn rotate<S: SpecStore>(&self, store: &S) -> Result<(), RotationError> {
        let name = &self.name;
        let password = Zeroizing::new(
            rand::rngs::OsRng
                .sample_iter(&Alphanumeric)
                .take(PASSWORD_LEN)
                .map(char::from)
                .collect::<String>(),
        );
        let failed = |m: &str| RotationError::Failed(m.to_owned());
        let mut new_url = reqwest::Url::parse(&self.url).map_err(|_| failed("invalid url"))?;
        new_url
            .set_password(Some(&password))
            .map_err(|_| failed("the url cannot carry a password"))?;
        // Alphanumeric only: safe inside a literal. SESSION_USER, not CURRENT_USER: the
        // role the connection logged in as, even if a plugin left a pooled connection
        // under `SET ROLE`.
        let stmt = Zeroizing::new(format!(
            "ALTER ROLE SESSION_USER WITH PASSWORD '{}'",
            *password
        ));
        let apply = sqlx::raw_sql(&stmt).execute(&self.pool);
        match tokio::time::timeout(self.timeout, apply).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(RotationError::Failed(format!(
                    "rotating `{name}`: {}",
                    sql_error(name, &e)
                )));
            }
            Err(_) => {
                return Err(RotationError::Failed(format!(
                    "rotating `{name}`: timed out"
                )));
            }
        }
        let spec = ConnectionSpec::Postgres {
            url: new_url.to_string(),
            max_connections: self.max_connections,
        };
        store
            .store_spec(spec)
            .await
            .map_err(|cause| RotationError::NotStored {
                credential: "credential",
                aftermath: "root password changed on the server but not stored; the connection must be re-entered",
                cause,
            })
    }
}
