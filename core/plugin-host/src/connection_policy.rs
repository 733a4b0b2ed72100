//! Where an engine connection may point: the operator's allowlist
//! (`plugins.connections.allow`) and the addresses nobody reaches without it.
//!
//! Connections belong to operators. A realm admin may mount an engine whose every endpoint
//! matches the allowlist; a caller holding the global capability `connections:manage` may
//! also name other endpoints. Independently of that capability, unix sockets, link-local and
//! cloud metadata addresses and the unspecified addresses are refused unless a pattern names
//! them explicitly (an exact address or name, or `unix:/dir`; `*` and `*.suffix` do not).
//!
//! Patterns (see [`Pattern`]): `host:port`, where host is an exact name or IP (IPv6 written
//! `[addr]`), `*.suffix` (any name ending in `.suffix`) or `*`, and port a number or `*`;
//! `unix:/abs/dir` names a unix socket directory.
//!
//! Not here: DNS. Hostnames are matched as written (normalised: lower case, IDNA, no trailing
//! dot; IPv4 in any numeric form becomes dotted); an allowlisted name is trusted to resolve
//! where the operator intends.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use arcan_rbac::Capability;

/// A host as connections name it, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address (IPv4-mapped IPv6 addresses become IPv4).
    Ip(IpAddr),
    /// A DNS name: ASCII lower case, without a trailing dot.
    Name(String),
}

impl Host {
    /// Parses a host as a URL would (`[v6]`, IPv4 in any numeric form, IDNA names).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parsed = url::Host::parse(s).map_err(|e| format!("`{s}` is not a host: {e}"))?;
        Ok(Self::from_url(parsed))
    }

    /// The normalised form of a host parsed by the `url` crate.
    pub fn from_url<S: AsRef<str>>(h: url::Host<S>) -> Self {
        match h {
            url::Host::Ipv4(a) => Host::Ip(IpAddr::V4(a)),
            url::Host::Ipv6(a) => Host::Ip(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)),
            url::Host::Domain(d) => {
                Host::Name(d.as_ref().trim_end_matches('.').to_ascii_lowercase())
            }
        }
    }

    /// Whether the host is this machine (loopback address or `localhost`).
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(n) => n == "localhost",
        }
    }

    /// The host as a resolver takes it (IPv6 without brackets).
    pub fn to_connect_string(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP host and port.
    Tcp {
        /// The host.
        host: Host,
        /// The port.
        port: u16,
    },
    /// A unix socket directory (PostgreSQL's `host=/dir`).
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp {
                host: Host::Ip(IpAddr::V6(a)),
                port,
            } => write!(f, "[{a}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{}:{port}", host.to_connect_string()),
            Endpoint::Unix(dir) => write!(f, "unix:{}", dir.display()),
        }
    }
}

/// Why an endpoint needs an explicit allowlist entry whoever the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restricted {
    /// A unix socket: reaches services of the server's own machine as its user.
    UnixSocket,
    /// Link-local or cloud metadata: instance credentials live there.
    Metadata,
    /// `0.0.0.0` / `::` (this host on most systems).
    Unspecified,
    /// This machine (loopback, `localhost`): the server's own neighbours (its store, say).
    /// Operators may name it; others need an explicit allowlist entry.
    Loopback,
}

impl fmt::Display for Restricted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restricted::UnixSocket => "a unix socket",
            Restricted::Metadata => "a link-local/metadata address",
            Restricted::Unspecified => "an unspecified address",
            Restricted::Loopback => "this machine (loopback)",
        })
    }
}

/// Metadata service names.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata"];

/// What a resolved address is, if it is restricted.
pub fn restricted_ip(ip: IpAddr) -> Option<Restricted> {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return Some(Restricted::Loopback);
    }
    Endpoint::Tcp {
        host: Host::Ip(ip),
        port: 0,
    }
    .restricted()
}

impl Endpoint {
    /// Whether the endpoint is one only an explicit allowlist entry admits (loopback: or
    /// an operator).
    pub fn restricted(&self) -> Option<Restricted> {
        match self {
            Endpoint::Unix(_) => Some(Restricted::UnixSocket),
            Endpoint::Tcp { host, .. } if host.is_loopback() => Some(Restricted::Loopback),
            Endpoint::Tcp { host, .. } => match host {
                Host::Ip(ip) => arcan_util::net::restricted(*ip).map(|r| match r {
                    arcan_util::net::Restricted::Unspecified => Restricted::Unspecified,
                    _ => Restricted::Metadata,
                }),
                Host::Name(n) if METADATA_NAMES.contains(&n.as_str()) => Some(Restricted::Metadata),
                _ => None,
            },
        }
    }
}

/// A malformed allowlist pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugins.connections.allow: `{pattern}`: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The host part of a TCP pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.suffix`: names ending in `.suffix` (not `suffix` itself).
    Suffix(String),
    /// One name or address.
    Exact(Host),
}

/// One allowlist entry: `host:port` (host exact, `*.suffix` or `*`; port a number or `*`;
/// IPv6 as `[addr]:port`) or `unix:/abs/dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// TCP endpoints.
    Tcp {
        /// Which hosts.
        host: HostPattern,
        /// Which port (`None`: any).
        port: Option<u16>,
    },
    /// One unix socket directory.
    Unix(PathBuf),
}

/// How a pattern matches an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    /// Through `*` or `*.suffix`.
    Wildcard,
    /// The pattern names the host (or the socket directory) itself.
    Explicit,
}

/// Normalises an absolute directory: no `.`/`..` components, no trailing slash.
pub fn socket_dir(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() || s.contains('\0') {
        return Err("a unix socket directory must be an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return Err("a unix socket directory must not contain `.` or `..`".into()),
        }
    }
    Ok(out)
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(dir) = s.strip_prefix("unix:") {
            return socket_dir(dir).map(Pattern::Unix).map_err(|e| err(&e));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (addr, port) = rest
                .split_once("]:")
                .ok_or_else(|| err("an IPv6 pattern is written [addr]:port"))?;
            let ip: Ipv6Addr = addr
                .parse()
                .map_err(|_| err("not an IPv6 address between [ and ]"))?;
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            (HostPattern::Exact(Host::Ip(ip)), port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| err("a pattern is host:port (port may be *) or unix:/dir"))?;
            let host = if host == "*" {
                HostPattern::Any
            } else if let Some(suffix) = host.strip_prefix("*.") {
                match Host::parse(suffix) {
                    Ok(Host::Name(n)) if !n.is_empty() && !n.contains('*') => {
                        HostPattern::Suffix(n)
                    }
                    _ => return Err(err("`*.` must be followed by a DNS name")),
                }
            } else if host.contains('*') {
                return Err(err(
                    "`*` is allowed only as the whole host or as `*.suffix`",
                ));
            } else if host.contains(':') {
                return Err(err("an IPv6 pattern is written [addr]:port"));
            } else {
                match Host::parse(host) {
                    Ok(Host::Name(n)) if n.is_empty() => return Err(err("the host is empty")),
                    Ok(h) => HostPattern::Exact(h),
                    Err(e) => return Err(err(&e)),
                }
            };
            (host, port)
        };
        let port = match port {
            "*" => None,
            p => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(err("the port must be 1-65535 or *")),
            },
        };
        Ok(Pattern::Tcp { host, port })
    }
}

impl Pattern {
    fn matches(&self, ep: &Endpoint) -> Option<Match> {
        match (self, ep) {
            (Pattern::Unix(dir), Endpoint::Unix(d)) => (dir == d).then_some(Match::Explicit),
            (Pattern::Tcp { host, port }, Endpoint::Tcp { host: h, port: p }) => {
                if port.is_some_and(|want| want != *p) {
                    return None;
                }
                match (host, h) {
                    (HostPattern::Any, _) => Some(Match::Wildcard),
                    (HostPattern::Suffix(s), Host::Name(n)) => n
                        .strip_suffix(s.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
                        .then_some(Match::Wildcard),
                    (HostPattern::Exact(want), h) => (want == h).then_some(Match::Explicit),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// A refused connection (403, except [`PolicyError::Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Unix socket, metadata or unspecified address without an explicit allowlist entry.
    #[error(
        "connection `{connection}`: {endpoint} is {kind}; an operator must allowlist it in plugins.connections.allow"
    )]
    Restricted {
        /// The connection's name.
        connection: String,
        /// The endpoint.
        endpoint: String,
        /// Why it is restricted.
        kind: Restricted,
    },
    /// Not allowlisted, and the caller is not an operator of connections.
    #[error(
        "connection `{connection}`: {endpoint} is not in plugins.connections.allow and the caller lacks the global capability `{cap}`",
        cap = Capability::ConnectionsManage
    )]
    NotAllowed {
        /// The connection's name.
        connection: String,
        /// The endpoint.
        endpoint: String,
    },
    /// The connection's endpoints cannot be read (400).
    #[error("connection `{connection}`: {message}")]
    Invalid {
        /// The connection's name.
        connection: String,
        /// Why.
        message: String,
    },
}

/// The endpoints of one connection, or why they cannot be read.
fn endpoints_of(
    name: &str,
    spec: &super::connections::ConnectionSpec,
) -> Result<Vec<Endpoint>, PolicyError> {
    spec.endpoints().map_err(|message| PolicyError::Invalid {
        connection: name.to_owned(),
        message,
    })
}

/// The parsed `plugins.connections.allow`.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    patterns: Vec<Pattern>,
}

impl Allowlist {
    /// Parses the configured patterns; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let patterns = patterns
            .iter()
            .map(|p| p.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    fn best(&self, ep: &Endpoint) -> Option<Match> {
        self.patterns.iter().filter_map(|p| p.matches(ep)).max()
    }

    /// Decides one endpoint of `connection`; `may_manage` is whether the caller holds
    /// `connections:manage`.
    pub fn check(
        &self,
        connection: &str,
        ep: &Endpoint,
        may_manage: bool,
    ) -> Result<(), PolicyError> {
        let best = self.best(ep);
        match ep.restricted() {
            Some(_) if best == Some(Match::Explicit) => Ok(()),
            Some(Restricted::Loopback) if may_manage => Ok(()),
            Some(kind) => Err(PolicyError::Restricted {
                connection: connection.to_owned(),
                endpoint: ep.to_string(),
                kind,
            }),
            None if best.is_some() || may_manage => Ok(()),
            None => Err(PolicyError::NotAllowed {
                connection: connection.to_owned(),
                endpoint: ep.to_string(),
            }),
        }
    }

    /// Resolves the host names that only a wildcard admits (for a caller without
    /// `connections:manage`) and refuses them when any address they resolve to is
    /// restricted: `*.example` must not become a way to reach metadata or loopback through
    /// a name such as `169.254.169.254.nip.io`. (A name that changes its answer between
    /// this check and the connection is not covered; operators who fear that allowlist
    /// exact names.)
    pub async fn check_resolution<'a>(
        &self,
        specs: impl IntoIterator<Item = (&'a String, &'a super::connections::ConnectionSpec)>,
        may_manage: bool,
    ) -> Result<(), PolicyError> {
        if may_manage {
            return Ok(());
        }
        for (name, spec) in specs {
            for ep in &endpoints_of(name, spec)? {
                let Endpoint::Tcp {
                    host: Host::Name(host),
                    port,
                } = ep
                else {
                    continue;
                };
                if self.best(ep) != Some(Match::Wildcard) {
                    continue;
                }
                let lookup = tokio::net::lookup_host((host.as_str(), *port));
                let addrs =
                    match tokio::time::timeout(std::time::Duration::from_secs(3), lookup).await {
                        Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
                        _ => {
                            return Err(PolicyError::Invalid {
                                connection: name.clone(),
                                message: format!("{ep}: the host name does not resolve"),
                            });
                        }
                    };
                if let Some(kind) = addrs.iter().find_map(|a| restricted_ip(a.ip())) {
                    return Err(PolicyError::Restricted {
                        connection: name.clone(),
                        endpoint: ep.to_string(),
                        kind,
                    });
                }
            }
        }
        Ok(())
    }

    /// Decides every endpoint of every connection.
    pub fn check_specs<'a>(
        &self,
        specs: impl IntoIterator<Item = (&'a String, &'a super::connections::ConnectionSpec)>,
        may_manage: bool,
    ) -> Result<(), PolicyError> {
        for (name, spec) in specs {
            for ep in &endpoints_of(name, spec)? {
                self.check(name, ep, may_manage)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: Host::parse(host).expect("host"),
            port,
        }
    }

    fn allow(patterns: &[&str]) -> Allowlist {
        Allowlist::parse(patterns).expect("valid patterns")
    }

    #[test]
    fn wildcards_never_admit_loopback_for_non_operators() {
        let a = allow(&["*:5432", "*:*"]);
        for ep in [
            tcp("127.0.0.1", 5432),
            tcp("localhost", 5432),
            tcp("[::1]", 5432),
        ] {
            assert!(
                matches!(
                    a.check("db", &ep, false),
                    Err(PolicyError::Restricted {
                        kind: Restricted::Loopback,
                        ..
                    })
                ),
                "{ep}"
            );
            assert_eq!(a.check("db", &ep, true), Ok(()), "operators may: {ep}");
        }
        assert_eq!(
            allow(&["127.0.0.1:5432"]).check("db", &tcp("127.0.0.1", 5432), false),
            Ok(()),
            "an explicit entry admits it"
        );
    }

    #[test]
    fn allowlisted_endpoints_pass_and_others_need_the_capability() {
        let a = allow(&["db.example.com:5432", "*.corp.example:*", "10.0.0.7:*"]);
        assert_eq!(a.check("db", &tcp("db.example.com", 5432), false), Ok(()));
        assert_eq!(a.check("db", &tcp("DB.Example.COM.", 5432), false), Ok(()));
        assert_eq!(
            a.check("db", &tcp("pg.eu.corp.example", 6543), false),
            Ok(())
        );
        assert_eq!(a.check("db", &tcp("10.0.0.7", 1), false), Ok(()));
        for ep in [
            tcp("db.example.com", 5433),
            tcp("corp.example", 5432),
            tcp("evilcorp.example", 5432),
            tcp("10.0.0.8", 5432),
        ] {
            let e = a.check("db", &ep, false).expect_err("not allowlisted");
            assert_eq!(
                e.to_string(),
                format!(
                    "connection `db`: {ep} is not in plugins.connections.allow and the caller lacks the global capability `connections:manage`"
                )
            );
            assert_eq!(a.check("db", &ep, true), Ok(()), "operator: {ep}");
        }
        assert!(
            Allowlist::default()
                .check("db", &tcp("db.example.com", 5432), false)
                .is_err()
        );
        assert_eq!(
            allow(&["*:*"]).check("db", &tcp("anything.example", 1), false),
            Ok(())
        );
    }

    #[test]
    fn metadata_and_unspecified_addresses_need_an_explicit_entry() {
        let wildcard = allow(&["*:*", "*.internal:*"]);
        for ep in [
            tcp("169.254.169.254", 80),
            tcp("2852039166", 80), // 169.254.169.254 as one number
            tcp("[fe80::1]", 80),
            tcp("[fd00:ec2::254]", 80),
            tcp("[::ffff:169.254.169.254]", 80),
            tcp("metadata.google.internal", 80),
            tcp("metadata.google.internal.", 80),
            tcp("metadata", 80),
            tcp("100.100.100.200", 80),
            tcp("0.0.0.0", 5432),
            tcp("[::]", 5432),
        ] {
            for may_manage in [false, true] {
                let e = wildcard
                    .check("db", &ep, may_manage)
                    .expect_err("restricted");
                assert!(matches!(e, PolicyError::Restricted { .. }), "{ep}: {e}");
            }
        }
        let e = wildcard
            .check("db", &tcp("169.254.169.254", 80), true)
            .expect_err("restricted");
        assert_eq!(
            e.to_string(),
            "connection `db`: 169.254.169.254:80 is a link-local/metadata address; an operator must allowlist it in plugins.connections.allow"
        );
        let named = allow(&["169.254.169.254:80", "[fd00:ec2::254]:*", "metadata:80"]);
        assert_eq!(named.check("x", &tcp("169.254.169.254", 80), false), Ok(()));
        assert_eq!(
            named.check("x", &tcp("[fd00:ec2::254]", 443), false),
            Ok(())
        );
        assert_eq!(named.check("x", &tcp("metadata", 80), false), Ok(()));
        assert!(named.check("x", &tcp("169.254.169.254", 81), true).is_err());
    }

    #[test]
    fn unix_sockets_need_their_directory_allowlisted() {
        let ep = Endpoint::Unix(PathBuf::from("/var/run/postgresql"));
        let e = allow(&["*:*"]).check("db", &ep, true).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "connection `db`: unix:/var/run/postgresql is a unix socket; an operator must allowlist it in plugins.connections.allow"
        );
        assert!(allow(&["unix:/tmp"]).check("db", &ep, true).is_err());
        assert_eq!(
            allow(&["unix:/var/run/postgresql/"]).check("db", &ep, false),
            Ok(())
        );
    }

    #[test]
    fn ipv6_forms() {
        let a = allow(&["[2001:db8::5]:5432", "[::1]:*"]);
        assert_eq!(a.check("db", &tcp("[2001:db8:0::5]", 5432), false), Ok(()));
        assert_eq!(a.check("db", &tcp("[::1]", 9), false), Ok(()));
        assert!(a.check("db", &tcp("[2001:db8::6]", 5432), false).is_err());
        assert_eq!(tcp("[2001:db8::5]", 5432).to_string(), "[2001:db8::5]:5432");
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(
            allow(&["10.1.2.3:5432"]).check("db", &tcp("[::ffff:10.1.2.3]", 5432), false),
            Ok(())
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "db.example.com",
            "db.example.com:0",
            "db.example.com:99999",
            "2001:db8::1:5432",
            "[2001:db8::1]",
            "[nope]:5432",
            "db*.example:5432",
            "*.:5432",
            ":5432",
            "unix:relative/dir",
            "unix:/var/../etc",
        ] {
            let e = p.parse::<Pattern>().expect_err(p);
            assert!(
                e.to_string().starts_with("plugins.connections.allow: `"),
                "{e}"
            );
        }
    }
}
