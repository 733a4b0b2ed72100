//! The syslog sink: RFC 5424 messages over TCP (octet-counting framing, RFC 6587), TCP
//! with TLS (RFC 5425 framing is the same octet counting), or UDP.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::delivered_json;
use arcan_store::{AuditRow, Outcome};

/// Transport.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    /// TCP with octet-counting framing.
    Tcp,
    /// UDP, one message per datagram.
    Udp,
}

fn default_facility() -> u8 {
    13 // log audit
}

fn default_app() -> String {
    "arcan".into()
}

/// Syslog settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector.
    pub address: String,
    /// `tcp` or `udp`.
    pub protocol: SyslogProtocol,
    /// Facility number (0–23; default 13, log audit).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// APP-NAME field.
    #[serde(default = "default_app")]
    pub app_name: String,
    /// TLS over TCP (RFC 5425).
    #[serde(default)]
    pub tls: bool,
    /// CA certificate (PEM file) to trust for TLS instead of the public roots.
    pub ca_cert: Option<String>,
}

impl SyslogConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.facility > 23 {
            return Err("facility must be 0-23".into());
        }
        let app_ok = !self.app_name.is_empty()
            && self.app_name.len() <= 48
            && self.app_name.bytes().all(|b| (33..=126).contains(&b));
        if !app_ok {
            return Err("app_name must be 1-48 printable ASCII characters".into());
        }
        if self
            .address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err("address must be host:port".into());
        }
        if self.tls && self.protocol != SyslogProtocol::Tcp {
            return Err("tls needs protocol tcp".into());
        }
        if self.ca_cert.is_some() && !self.tls {
            return Err("ca_cert goes with tls: true".into());
        }
        if self.tls {
            tls_connector(self.ca_cert.as_deref())?;
        }
        Ok(())
    }
}

/// A TCP connection to the collector, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

/// A TLS connector trusting `ca_cert` (PEM file) or the public web roots.
fn tls_connector(ca_cert: Option<&str>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| format!("ca_cert {path}: {e}"))?
            {
                let cert = cert.map_err(|e| format!("ca_cert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_cert {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_cert {path} holds no certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

pub(super) struct Syslog {
    config: SyslogConfig,
    hostname: String,
    tcp: Option<Conn>,
}

fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Success => 6,                   // informational
        Outcome::Denied | Outcome::Failure => 5, // notice
        Outcome::Error => 3,                     // error
    }
}

/// One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
pub(super) fn format(config: &SyslogConfig, hostname: &str, row: &AuditRow) -> String {
    let time = arcan_util::rfc3339(row.time);
    let pri = u16::from(config.facility) * 8 + u16::from(severity(row.outcome));
    let msg = delivered_json(row);
    format!(
        "<{pri}>1 {time} {hostname} {} {} audit [arcan@32473 id=\"{}\" seq=\"{}\"] {msg}",
        config.app_name,
        std::process::id(),
        row.id,
        row.seq
    )
}

impl Syslog {
    pub(super) fn new(config: &SyslogConfig) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b)))
            .unwrap_or_else(|| "-".into());
        Self {
            config: config.clone(),
            hostname,
            tcp: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<Conn> {
        let addr = &self.config.address;
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        if !self.config.tls {
            return Ok(Conn::Plain(tcp));
        }
        let connector =
            tls_connector(self.config.ca_cert.as_deref()).map_err(anyhow::Error::msg)?;
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(addr);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .with_context(|| format!("server name {host}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {addr}"))?;
        Ok(Conn::Tls(Box::new(tls)))
    }

    pub(super) async fn deliver(&mut self, rows: &[AuditRow]) -> anyhow::Result<()> {
        match self.config.protocol {
            SyslogProtocol::Udp => {
                let sock = UdpSocket::bind(if self.config.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                })
                .await?;
                for row in rows {
                    let line = format(&self.config, &self.hostname, row);
                    if line.len() > 65_000 {
                        bail!("event {} too large for a UDP datagram", row.id);
                    }
                    sock.send_to(line.as_bytes(), &self.config.address)
                        .await
                        .with_context(|| format!("sending to {}", self.config.address))?;
                }
                Ok(())
            }
            SyslogProtocol::Tcp => {
                let mut frames = Vec::new();
                for row in rows {
                    let line = format(&self.config, &self.hostname, row);
                    frames.extend_from_slice(format!("{} ", line.len()).as_bytes());
                    frames.extend_from_slice(line.as_bytes());
                }
                if self.tcp.is_none() {
                    self.tcp = Some(self.connect().await?);
                }
                let Some(stream) = self.tcp.as_mut() else {
                    bail!("no connection")
                };
                let sent = stream.send(&frames).await;
                if let Err(e) = sent {
                    self.tcp = None;
                    return Err(e).context("writing to the syslog collector");
                }
                Ok(())
            }
        }
    }
}
