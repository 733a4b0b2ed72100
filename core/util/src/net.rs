//! Addresses no outbound connection may reach unless someone allowed it explicitly:
//! link-local and cloud metadata addresses (instance credentials live there) and the
//! unspecified addresses, including IPv4 addresses embedded in IPv6 (IPv4-mapped, NAT64).
//!
//! One classification for every outbound path: the plugin host's connection policy (which
//! adds loopback and unix sockets on top) and the machine-identity fetches (JWKS, discovery,
//! TokenReview), which keep loopback and private ranges reachable.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restricted {
    /// Link-local or a cloud metadata address (instance credentials live there).
    Metadata,
    /// `0.0.0.0/8` or `::` (this host on most systems).
    Unspecified,
}

impl fmt::Display for Restricted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Restricted::Metadata => "a link-local/metadata address",
            Restricted::Unspecified => "an unspecified address",
        })
    }
}

/// GCP's IPv6 metadata address.
const GCP_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254);

/// Whether `a` is in AWS's `fd00:ec2::/32` (instance metadata `::254`, EKS Pod Identity
/// credentials `::23`, DNS `::253`, NTP `::123`).
fn aws_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    s[0] == 0xfd00 && s[1] == 0x0ec2
}
/// Alibaba Cloud's metadata address (outside the link-local range).
const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`) and the
/// NAT64 well-known prefix (`64:ff9b::a.b.c.d`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = a.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = a.octets();
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    None
}

/// Whether `ip` is refused, and why.
pub fn restricted(ip: IpAddr) -> Option<Restricted> {
    let ip = match ip {
        IpAddr::V6(a) => embedded_v4(a).map_or(IpAddr::V6(a), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) if a.octets()[0] == 0 => Some(Restricted::Unspecified),
        IpAddr::V4(a) if a.is_link_local() || a == ALIBABA_METADATA => Some(Restricted::Metadata),
        IpAddr::V6(a) if a.is_unspecified() => Some(Restricted::Unspecified),
        IpAddr::V6(a)
            if (a.segments()[0] & 0xffc0) == 0xfe80 || aws_v6(a) || a == GCP_METADATA_V6 =>
        {
            Some(Restricted::Metadata)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<Restricted> {
        restricted(s.parse().expect("ip"))
    }

    #[test]
    fn metadata_link_local_and_unspecified_are_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "fd00:ec2::253",
            "fd00:ec2:ffff::1",
            "fd20:ce::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert_eq!(r(ip), Some(Restricted::Metadata), "{ip}");
        }
        for ip in ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"] {
            assert_eq!(r(ip), Some(Restricted::Unspecified), "{ip}");
        }
    }

    #[test]
    fn loopback_private_and_public_stay_allowed() {
        for ip in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.1.10",
            "172.16.0.1",
            "fd00::1",
            "fd00:ec3::254",
            "fd20:ce::253",
            "fec0::1",
            "140.82.112.3",
            "2001:db8::1",
        ] {
            assert_eq!(r(ip), None, "{ip}");
        }
    }
}
