//! PostgreSQL connection URLs of engine connections, parsed by the host into explicit
//! [`PgConnectOptions`], and connection failures as fixed phrases.
//!
//! Nothing comes from the server's environment or home: the options start from
//! `PgConnectOptions::new_without_pgpass()` (never `~/.pgpass`) and set host, port, user,
//! database, `sslmode` and `application_name` explicitly. sqlx also reads `PGPASSWORD`,
//! `PGSSLCERT`, `PGSSLKEY`, `PGSSLROOTCERT` and `PGOPTIONS` there and cannot be told not to,
//! so a URL that would inherit one of them is refused. The only query parameter is
//! `sslmode`; the default is `verify-full`, or `prefer` on loopback and unix sockets.
//!
//! Not here: who may connect where (`connection_policy`).

use std::io::ErrorKind;

use percent_encoding::percent_decode_str;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::connection_policy::{Endpoint, Host, socket_dir};

/// Why a PostgreSQL URL is refused (400 at mount).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgUrlError {
    /// Not `postgres://` or `postgresql://`.
    #[error("postgres url must start with postgres:// or postgresql://")]
    Scheme,
    /// Not a URL, or not UTF-8 once decoded.
    #[error("postgres url is invalid")]
    Syntax,
    /// No user name.
    #[error("postgres url must name a user (postgres://user:password@host:port/db)")]
    NoUser,
    /// No database.
    #[error("postgres url must name a database (postgres://user:password@host:port/db)")]
    NoDatabase,
    /// No host.
    #[error(
        "postgres url must name a host (postgres://user@host/db, or postgres://user@%2Fdir/db for a unix socket)"
    )]
    NoHost,
    /// The host or the socket directory is malformed.
    #[error("postgres url: {0}")]
    Host(String),
    /// Port 0.
    #[error("postgres url: the port must be 1-65535")]
    Port,
    /// A query parameter other than `sslmode`.
    #[error(
        "postgres url: query parameter `{0}` is not allowed (only sslmode; the host alone decides everything else)"
    )]
    Param(String),
    /// An unknown `sslmode`.
    #[error("postgres url: sslmode must be disable, prefer, require, verify-ca or verify-full")]
    SslMode,
    /// A `#fragment`.
    #[error("postgres url must not have a fragment")]
    Fragment,
    /// The server's environment sets a variable sqlx would use.
    #[error("the server's environment sets {var}; engine connections never inherit it: {fix}")]
    Environment {
        /// The variable.
        var: &'static str,
        /// What to do.
        fix: &'static str,
    },
}

/// Environment variables sqlx's `new_without_pgpass` reads and no setter clears.
const INHERITED: &[&str] = &["PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT", "PGOPTIONS"];

/// A parsed connection URL: what to connect with and where it goes.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// The options (credentials included; never logged).
    pub options: PgConnectOptions,
    /// Where it connects.
    pub endpoint: Endpoint,
}

fn decode(s: &str) -> Result<String, PgUrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| PgUrlError::Syntax)
}

fn ssl_mode(v: &str) -> Result<PgSslMode, PgUrlError> {
    Ok(match v {
        "disable" => PgSslMode::Disable,
        "prefer" => PgSslMode::Prefer,
        "require" => PgSslMode::Require,
        "verify-ca" => PgSslMode::VerifyCa,
        "verify-full" => PgSslMode::VerifyFull,
        _ => return Err(PgUrlError::SslMode),
    })
}

/// Parses `url` against the server's own environment.
pub fn parse(url: &str) -> Result<PgTarget, PgUrlError> {
    parse_with_env(url, |var| std::env::var_os(var).is_some())
}

/// Parses `url`; `env_has` says whether the server's environment sets a variable.
pub fn parse_with_env(url: &str, env_has: impl Fn(&str) -> bool) -> Result<PgTarget, PgUrlError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PgUrlError::Scheme);
    }
    let u = url::Url::parse(url).map_err(|_| PgUrlError::Syntax)?;
    if u.fragment().is_some() {
        return Err(PgUrlError::Fragment);
    }
    let user = decode(u.username())?;
    if user.is_empty() {
        return Err(PgUrlError::NoUser);
    }
    let password = u
        .password()
        .map(decode)
        .transpose()?
        .filter(|p| !p.is_empty());
    let path = u.path().strip_prefix('/').unwrap_or(u.path());
    if path.contains('/') {
        return Err(PgUrlError::Syntax);
    }
    let database = decode(path)?;
    if database.is_empty() {
        return Err(PgUrlError::NoDatabase);
    }
    let port = u.port().unwrap_or(5432);
    if port == 0 {
        return Err(PgUrlError::Port);
    }
    let mut sslmode = None;
    for (k, v) in u.query_pairs() {
        if k != "sslmode" || sslmode.is_some() {
            return Err(PgUrlError::Param(k.into_owned()));
        }
        sslmode = Some(ssl_mode(&v)?);
    }
    let endpoint = match u.host() {
        None => return Err(PgUrlError::NoHost),
        Some(url::Host::Domain(d)) => {
            let d = decode(d)?;
            if d.is_empty() {
                return Err(PgUrlError::NoHost);
            } else if d.starts_with('/') {
                Endpoint::Unix(socket_dir(&d).map_err(PgUrlError::Host)?)
            } else {
                let host = Host::parse(&d).map_err(PgUrlError::Host)?;
                Endpoint::Tcp { host, port }
            }
        }
        Some(h) => Endpoint::Tcp {
            host: Host::from_url(h),
            port,
        },
    };
    let (host, local) = match &endpoint {
        Endpoint::Unix(dir) => (dir.display().to_string(), true),
        Endpoint::Tcp { host, .. } => (host.to_connect_string(), host.is_loopback()),
    };
    if password.is_none() && env_has("PGPASSWORD") {
        return Err(PgUrlError::Environment {
            var: "PGPASSWORD",
            fix: "unset it or put the password in the connection URL",
        });
    }
    if let Some(var) = INHERITED.iter().copied().find(|v| env_has(v)) {
        return Err(PgUrlError::Environment {
            var,
            fix: "unset it in the server's environment",
        });
    }
    let default_mode = if local {
        PgSslMode::Prefer
    } else {
        PgSslMode::VerifyFull
    };
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&host)
        .port(port)
        .username(&user)
        .database(&database)
        .ssl_mode(sslmode.unwrap_or(default_mode))
        .application_name("arcan");
    if let Some(p) = &password {
        options = options.password(p);
    }
    Ok(PgTarget { options, endpoint })
}

/// Why connecting failed, as a fixed phrase: the system's own text (an I/O error, a
/// resolver message) never reaches a caller, so verification is no port-scan oracle.
fn connect_failure(e: &sqlx::Error) -> Option<&'static str> {
    Some(match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::NotFound => "connection refused",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => "host unreachable",
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => "connection lost",
            ErrorKind::PermissionDenied => "permission denied",
            _ if io.to_string().contains("lookup address") => "host not found",
            _ => "network error",
        },
        sqlx::Error::Tls(_) => "TLS failed",
        sqlx::Error::Configuration(_) => "invalid connection settings",
        sqlx::Error::Protocol(_) => "protocol error",
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => "authentication failed",
            Some("3D000") => "database does not exist",
            _ => return None,
        },
        _ => return None,
    })
}

/// A database error as a plugin or operator may see it: connection failures as fixed
/// phrases naming the connection, database messages of a working connection as sent.
pub fn sql_error(connection: &str, e: &sqlx::Error) -> String {
    if let Some(why) = connect_failure(e) {
        return format!("could not connect to {connection} ({why})");
    }
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".into(),
        sqlx::Error::ColumnDecode { index, source } => {
            format!("column {index} cannot be decoded: {source}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> bool {
        false
    }

    fn parse(url: &str) -> Result<PgTarget, PgUrlError> {
        parse_with_env(url, no_env)
    }

    #[test]
    fn urls_become_explicit_options() {
        let t = parse("postgres://vault%40root:p%2Fw@DB.Example.com:6543/app%20db").expect("ok");
        let o = &t.options;
        assert_eq!(
            (
                o.get_host(),
                o.get_port(),
                o.get_username(),
                o.get_database()
            ),
            ("db.example.com", 6543, "vault@root", Some("app db"))
        );
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(o.get_application_name(), Some("arcan"));
        assert_eq!(t.endpoint.to_string(), "db.example.com:6543");
        let t = parse("postgresql://u@127.0.0.1/test").expect("ok");
        assert_eq!(t.options.get_port(), 5432);
        assert!(matches!(t.options.get_ssl_mode(), PgSslMode::Prefer));
        let t = parse("postgres://u@[::1]:5432/test?sslmode=require").expect("ok");
        assert_eq!(t.options.get_host(), "::1");
        assert!(matches!(t.options.get_ssl_mode(), PgSslMode::Require));
        assert_eq!(t.endpoint.to_string(), "[::1]:5432");
        let t = parse("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test").expect("ok");
        assert_eq!(t.endpoint.to_string(), "unix:/var/run/postgresql");
        assert_eq!(t.options.get_host(), "/var/run/postgresql");
        // A numeric host is normalised before the policy sees it.
        let t = parse("postgres://u@2852039166:80/x").expect("ok");
        assert_eq!(t.endpoint.to_string(), "169.254.169.254:80");
    }

    #[test]
    fn incomplete_or_overriding_urls_are_refused() {
        for (url, want) in [
            ("mysql://u@h/db", PgUrlError::Scheme),
            ("postgres://h:5432/db", PgUrlError::NoUser),
            ("postgres://u@h:5432", PgUrlError::NoDatabase),
            ("postgres://u@h:5432/", PgUrlError::NoDatabase),
            (
                "postgres://u@h/db?host=/tmp",
                PgUrlError::Param("host".into()),
            ),
            (
                "postgres://u@h/db?sslrootcert=/etc/x",
                PgUrlError::Param("sslrootcert".into()),
            ),
            (
                "postgres://u@h/db?options=-c%20x",
                PgUrlError::Param("options".into()),
            ),
            (
                "postgres://u@h/db?passfile=/x",
                PgUrlError::Param("passfile".into()),
            ),
            (
                "postgres://u@h/db?sslmode=prefer&sslmode=disable",
                PgUrlError::Param("sslmode".into()),
            ),
            ("postgres://u@h/db?sslmode=allow", PgUrlError::SslMode),
            ("postgres://u@h:0/db", PgUrlError::Port),
            ("postgres://u@h/db#x", PgUrlError::Fragment),
            ("postgres://u@h/a/b", PgUrlError::Syntax),
        ] {
            assert_eq!(parse(url).map(|_| ()), Err(want), "{url}");
        }
        assert!(matches!(
            parse("postgres://u@%2Fvar%2F..%2Fetc/db"),
            Err(PgUrlError::Host(_))
        ));
    }

    #[test]
    fn nothing_is_inherited_from_the_environment() {
        let pgpassword = |v: &str| v == "PGPASSWORD";
        let e = parse_with_env("postgres://u@127.0.0.1/db", pgpassword).expect_err("inherits");
        assert_eq!(
            e.to_string(),
            "the server's environment sets PGPASSWORD; engine connections never inherit it: unset it or put the password in the connection URL"
        );
        // A password in the URL overrides it.
        let t = parse_with_env("postgres://u:pw@127.0.0.1/db", pgpassword).expect("overridden");
        assert_eq!(t.options.get_username(), "u");
        for var in INHERITED {
            let e = parse_with_env("postgres://u:pw@127.0.0.1/db", |v| v == *var)
                .expect_err("inherits");
            assert!(e.to_string().contains(var), "{e}");
        }
    }

    #[test]
    fn connection_failures_are_fixed_phrases() {
        let io = |kind, text: &str| sqlx::Error::Io(std::io::Error::new(kind, text.to_owned()));
        for (e, want) in [
            (
                io(
                    ErrorKind::ConnectionRefused,
                    "Connection refused (os error 111)",
                ),
                "connection refused",
            ),
            (io(ErrorKind::TimedOut, "os error 110"), "timed out"),
            (
                io(ErrorKind::Other, "failed to lookup address information: x"),
                "host not found",
            ),
            (io(ErrorKind::Other, "os error 99"), "network error"),
            (
                sqlx::Error::Tls("bad certificate: os error".into()),
                "TLS failed",
            ),
        ] {
            let m = sql_error("db", &e);
            assert_eq!(m, format!("could not connect to db ({want})"));
            assert!(!m.contains("os error"), "{m}");
        }
        assert_eq!(
            sql_error("db", &sqlx::Error::PoolTimedOut),
            "timed out waiting for a database connection"
        );
    }
}
