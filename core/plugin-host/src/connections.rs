//! Named connections of an engine mount: PostgreSQL (a pool held by the core) and HTTP
//! endpoints (base URL + authentication added by the host).
//!
//! Credentials are sealed at rest under the realm's data key, never returned by the API,
//! never logged, and never given to a plugin: the plugin only names a connection. Where a
//! connection may point is decided by `connection_policy` before anything connects;
//! PostgreSQL URLs are turned into options by `postgres_url` (nothing inherited from the
//! server's environment), and HTTP clients ignore the server's proxy variables.
//!
//! What is specific to one kind of external system beyond reaching it (how its root
//! credential is rotated) is not here but in [`crate::providers`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool};
use zeroize::Zeroizing;

use super::connection_policy::{Endpoint, Host};
use super::manifest::{HostCapability, valid_name};
pub use super::postgres_url::sql_error;
use super::postgres_url::{self, PgTarget};
use arcan_crypto::Keyring;
use arcan_store::RealmId;
use arcan_store::prelude::*;
use arcan_store::sealing::SealError;
use arcan_store::sealing::{Purpose, open_in_realm, seal_in_realm};

/// One connection as configured by the operator (credentials included).
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConnectionSpec {
    /// A PostgreSQL server: `postgres://user:password@host:port/db`.
    Postgres {
        /// Connection URL with the root credentials.
        url: String,
        /// Pool size (default 4).
        #[serde(default = "default_pool")]
        max_connections: u32,
    },
    /// An HTTP API.
    Http {
        /// Base URL; plugin paths are appended to it.
        base_url: String,
        /// Authentication the host adds to every request.
        #[serde(default)]
        auth: HttpAuth,
        /// PEM CA certificate to trust instead of the public roots.
        #[serde(default)]
        ca_cert: Option<String>,
    },
}

fn default_pool() -> u32 {
    4
}

/// Authentication of an HTTP connection.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// None.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// AWS Signature Version 4 with root access keys; the service signed for is taken from
    /// the request header `x-arcan-aws-service` (default `iam`), which is not sent.
    AwsSigv4(super::sigv4::AwsKeys),
}

impl HttpAuth {
    fn kind(&self) -> &'static str {
        match self {
            HttpAuth::None => "none",
            HttpAuth::Bearer { .. } => "bearer",
            HttpAuth::Basic { .. } => "basic",
            HttpAuth::AwsSigv4(_) => "aws_sigv4",
        }
    }
}

impl std::fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.public())
    }
}

impl ConnectionSpec {
    /// The capability a plugin needs to use this kind of connection.
    pub fn capability(&self) -> HostCapability {
        match self {
            ConnectionSpec::Postgres { .. } => HostCapability::Sql,
            ConnectionSpec::Http { .. } => HostCapability::Http,
        }
    }

    /// What may be shown: no password, token or key.
    pub fn public(&self) -> Value {
        match self {
            ConnectionSpec::Postgres {
                url,
                max_connections,
            } => {
                let shown = reqwest::Url::parse(url)
                    .map(|mut u| {
                        let _ = u.set_password(None);
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "(invalid url)".into());
                json!({"type": "postgres", "url": shown, "max_connections": max_connections})
            }
            ConnectionSpec::Http {
                base_url,
                auth,
                ca_cert,
            } => {
                let mut v = json!({
                    "type": "http", "base_url": base_url, "auth": auth.kind(),
                    "custom_ca": ca_cert.is_some(),
                });
                if let HttpAuth::AwsSigv4(k) = auth {
                    v["region"] = json!(k.region);
                    v["endpoints"] = json!(k.endpoints);
                }
                v
            }
        }
    }

    /// Checks the shape (URL syntax, pool size).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ConnectionSpec::Postgres {
                url,
                max_connections,
            } => {
                postgres_url::parse(url).map_err(|e| e.to_string())?;
                if !(1..=64).contains(max_connections) {
                    return Err("max_connections must be 1-64".into());
                }
            }
            ConnectionSpec::Http {
                base_url,
                ca_cert,
                auth,
            } => {
                let u = reqwest::Url::parse(base_url).map_err(|e| format!("base_url: {e}"))?;
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err("base_url must be an http(s) URL with a host".into());
                }
                if u.query().is_some() || u.fragment().is_some() {
                    return Err("base_url must not have a query or fragment".into());
                }
                // Shown to every reader of the mount: credentials belong in `auth`.
                if !u.username().is_empty() || u.password().is_some() {
                    return Err("base_url must not carry credentials; put them in `auth`".into());
                }
                if let Some(pem) = ca_cert {
                    reqwest::Certificate::from_pem(pem.as_bytes())
                        .map_err(|_| "ca_cert is not a PEM certificate".to_owned())?;
                }
                if let HttpAuth::AwsSigv4(k) = auth {
                    let ok = |s: &str| {
                        !s.is_empty() && s.len() <= 256 && !s.contains(char::is_whitespace)
                    };
                    if !(ok(&k.access_key_id) && ok(&k.secret_access_key) && ok(&k.region)) {
                        return Err(
                            "aws_sigv4 needs access_key_id, secret_access_key and region".into(),
                        );
                    }
                    for (service, url) in &k.endpoints {
                        let u = reqwest::Url::parse(url)
                            .map_err(|e| format!("endpoints.{service}: {e}"))?;
                        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                            return Err(format!("endpoints.{service} must be an http(s) URL"));
                        }
                        if !u.username().is_empty() || u.password().is_some() {
                            return Err(format!("endpoints.{service} must not carry credentials"));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl ConnectionSpec {
    /// Every endpoint the connection reaches: the PostgreSQL host (or socket directory); an
    /// HTTP base URL and every per-service `aws_sigv4` endpoint.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, String> {
        match self {
            ConnectionSpec::Postgres { url, .. } => postgres_url::parse(url)
                .map(|t| vec![t.endpoint])
                .map_err(|e| e.to_string()),
            ConnectionSpec::Http { base_url, auth, .. } => {
                let mut out = vec![http_endpoint("base_url", base_url)?];
                if let HttpAuth::AwsSigv4(k) = auth {
                    for (service, url) in &k.endpoints {
                        out.push(http_endpoint(&format!("endpoints.{service}"), url)?);
                    }
                }
                Ok(out)
            }
        }
    }
}

fn http_endpoint(field: &str, url: &str) -> Result<Endpoint, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{field}: {e}"))?;
    match (u.host(), u.port_or_known_default()) {
        (Some(h), Some(port)) => Ok(Endpoint::Tcp {
            host: Host::from_url(h),
            port,
        }),
        _ => Err(format!("{field} must be an http(s) URL with a host")),
    }
}

/// The live connections of one mount.
pub struct Connections {
    specs: BTreeMap<String, ConnectionSpec>,
    pools: Mutex<HashMap<String, PgPool>>,
    clients: Mutex<HashMap<String, reqwest::Client>>,
    timeout: Duration,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("names", &self.specs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connections {
    /// Connections from their specs; pools and clients are created on first use.
    pub fn new(specs: BTreeMap<String, ConnectionSpec>, timeout: Duration) -> Self {
        Self {
            specs,
            pools: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// The specs, by name.
    pub fn specs(&self) -> &BTreeMap<String, ConnectionSpec> {
        &self.specs
    }

    /// The deadline of one operation on a connection (a host call's timeout).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The pool of a PostgreSQL connection; `Err` names why it is not available.
    pub fn postgres(&self, name: &str) -> Result<PgPool, String> {
        let Some(ConnectionSpec::Postgres {
            url,
            max_connections,
        }) = self.specs.get(name)
        else {
            return Err(format!(
                "connection `{name}` is not a postgres connection bound to this mount"
            ));
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pools.get(name) {
            return Ok(p.clone());
        }
        let PgTarget { options, .. } = target(name, url)?;
        let pool = PgPoolOptions::new()
            .max_connections(*max_connections)
            .acquire_timeout(self.timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        pools.insert(name.to_owned(), pool.clone());
        Ok(pool)
    }

    /// The client and spec of an HTTP connection.
    pub fn http(&self, name: &str) -> Result<(reqwest::Client, String, HttpAuth), String> {
        let Some(ConnectionSpec::Http {
            base_url,
            auth,
            ca_cert,
        }) = self.specs.get(name)
        else {
            return Err(format!(
                "connection `{name}` is not an http connection bound to this mount"
            ));
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = match clients.get(name) {
            Some(c) => c.clone(),
            None => {
                let mut b = reqwest::Client::builder()
                    .timeout(self.timeout)
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .use_rustls_tls();
                if let Some(pem) = ca_cert {
                    let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                        .map_err(|_| format!("connection `{name}` has an invalid ca_cert"))?;
                    b = b.tls_built_in_root_certs(false).add_root_certificate(cert);
                }
                let c = b.build().map_err(|e| format!("connection `{name}`: {e}"))?;
                clients.insert(name.to_owned(), c.clone());
                c
            }
        };
        Ok((client, base_url.clone(), auth.clone()))
    }

    /// Checks that every PostgreSQL connection answers (`SELECT 1` on a connection of its
    /// own, so the reason of a failure is not hidden behind the pool's retries). Failures
    /// are fixed phrases such as `could not connect to db (connection refused)`.
    pub async fn verify(&self) -> Result<(), String> {
        for (name, spec) in &self.specs {
            if let ConnectionSpec::Postgres { url, .. } = spec {
                let PgTarget { options, .. } = target(name, url)?;
                let ping = async {
                    let mut conn = PgConnection::connect_with(&options).await?;
                    sqlx::query("SELECT 1").execute(&mut conn).await?;
                    conn.close().await
                };
                match tokio::time::timeout(self.timeout, ping).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(sql_error(name, &e)),
                    Err(_) => return Err(format!("could not connect to {name} (timed out)")),
                }
            }
        }
        Ok(())
    }
}

/// The options of a PostgreSQL connection, built by the one URL parser.
fn target(name: &str, url: &str) -> Result<PgTarget, String> {
    postgres_url::parse(url).map_err(|e| format!("connection `{name}`: {e}"))
}

/// The public view (no credentials) of a mount's connections, by name.
pub fn public_view(specs: &BTreeMap<String, ConnectionSpec>) -> Value {
    Value::Object(specs.iter().map(|(k, v)| (k.clone(), v.public())).collect())
}

/// Parses connection specs from the API, checking names and shapes.
pub fn parse_specs(v: Value) -> Result<BTreeMap<String, ConnectionSpec>, String> {
    let specs: BTreeMap<String, ConnectionSpec> =
        serde_json::from_value(v).map_err(|e| format!("connections: {e}"))?;
    for (name, spec) in &specs {
        if !valid_name(name) {
            return Err(format!(
                "connection name `{name}` must be 1-64 characters of a-z 0-9 -"
            ));
        }
        spec.validate()
            .map_err(|e| format!("connection `{name}`: {e}"))?;
    }
    Ok(specs)
}

/// Seals connection specs for a mount.
pub async fn seal_specs(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    mount_id: &str,
    specs: &BTreeMap<String, ConnectionSpec>,
) -> Result<Vec<u8>, SealError> {
    let plain = Zeroizing::new(serde_json::to_vec(specs).unwrap_or_default());
    seal_in_realm(
        store,
        keyring,
        realm_id,
        Purpose::Connections,
        &[mount_id],
        &plain,
    )
    .await
}

/// Opens a mount's sealed connection specs.
pub async fn open_specs(
    store: &dyn Store,
    keyring: &Keyring,
    realm_id: &RealmId,
    mount_id: &str,
    sealed: &[u8],
) -> Result<BTreeMap<String, ConnectionSpec>, SealError> {
    let plain = open_in_realm(
        store,
        keyring,
        realm_id,
        Purpose::Connections,
        &[mount_id],
        sealed,
    )
    .await?;
    serde_json::from_slice(&plain)
        .map_err(|_| SealError::Crypto(arcan_crypto::CryptoError::Decrypt))
}
