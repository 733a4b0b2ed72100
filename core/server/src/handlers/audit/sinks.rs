//! Response bodies of the sink routes: a sink's configuration as it may be shown (no secret).

use salvo::oapi::ToSchema;
use serde::Serialize;

use arcan_audit::sinks::{SinkConfig, SyslogConfig, SyslogProtocol, WebhookConfig};

/// A syslog transport.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkProtocol {
    /// TCP with octet-counting framing.
    Tcp,
    /// UDP, one message per datagram.
    Udp,
}

impl From<SyslogProtocol> for SinkProtocol {
    fn from(p: SyslogProtocol) -> Self {
        match p {
            SyslogProtocol::Tcp => Self::Tcp,
            SyslogProtocol::Udp => Self::Udp,
        }
    }
}

/// A sink's configuration without its secrets, tagged by `kind`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkSettings {
    /// HTTPS POST of signed JSON batches (the HMAC secret is never shown).
    Webhook {
        /// `https://…` endpoint.
        url: String,
        /// CA certificate (PEM file) trusted instead of the system roots.
        ca_cert: Option<String>,
    },
    /// RFC 5424 over TCP (octet counting), TLS or UDP.
    Syslog {
        /// `host:port` of the collector.
        address: String,
        /// Transport.
        protocol: SinkProtocol,
        /// Facility number (0–23).
        facility: u8,
        /// APP-NAME field.
        app_name: String,
        /// TLS over TCP (RFC 5425).
        tls: bool,
        /// CA certificate (PEM file) trusted for TLS instead of the public roots.
        ca_cert: Option<String>,
    },
}

impl From<&SinkConfig> for SinkSettings {
    fn from(config: &SinkConfig) -> Self {
        // Destructured in full: a new configuration field is a decision about what is shown.
        match config {
            SinkConfig::Webhook(WebhookConfig {
                url,
                secret: _,
                ca_cert,
            }) => Self::Webhook {
                url: url.clone(),
                ca_cert: ca_cert.clone(),
            },
            SinkConfig::Syslog(SyslogConfig {
                address,
                protocol,
                facility,
                app_name,
                tls,
                ca_cert,
            }) => Self::Syslog {
                address: address.clone(),
                protocol: (*protocol).into(),
                facility: *facility,
                app_name: app_name.clone(),
                tls: *tls,
                ca_cert: ca_cert.clone(),
            },
        }
    }
}

/// A sink as added.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedSink {
    /// Unique name.
    pub name: String,
    /// Its configuration (`kind` and the kind's fields).
    #[serde(flatten)]
    pub settings: SinkSettings,
}

/// A sink as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedSink {
    /// Unique name.
    pub name: String,
    /// Global sequence number of the last event delivered.
    pub cursor: i64,
    /// Its configuration (`kind` and the kind's fields).
    #[serde(flatten)]
    pub settings: SinkSettings,
}
