//! The webhook sink: HTTPS POST of `{"events":[…]}` with
//! `X-Arcan-Timestamp: <unix seconds>` and
//! `X-Arcan-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! Receivers recompute the HMAC and reject stale timestamps (replay resistance).

use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::delivered_json;
use arcan_crypto::hmac_hex;
use arcan_store::AuditRow;

/// Webhook settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` endpoint.
    pub url: String,
    /// HMAC secret shared with the receiver.
    pub secret: String,
    /// CA certificate (PEM file) to trust instead of the system roots.
    pub ca_cert: Option<String>,
}

impl WebhookConfig {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.url.starts_with("https://") {
            return Err("webhook url must be https://".into());
        }
        if self.secret.len() < 16 {
            return Err("webhook secret must be at least 16 characters".into());
        }
        if let Some(ca) = &self.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| format!("ca_cert {ca}: {e}"))?;
            reqwest::Certificate::from_pem(&pem).map_err(|e| format!("ca_cert {ca}: {e}"))?;
        }
        Ok(())
    }
}

pub(super) struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: zeroize::Zeroizing<String>,
}

impl Webhook {
    pub(super) fn new(c: &WebhookConfig) -> anyhow::Result<Self> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10));
        if let Some(ca) = &c.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {ca}"))?;
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Self {
            http: b.build()?,
            url: c.url.clone(),
            secret: zeroize::Zeroizing::new(c.secret.clone()),
        })
    }

    pub(super) async fn deliver(&mut self, rows: &[AuditRow]) -> anyhow::Result<()> {
        let mut body = Vec::with_capacity(rows.len() * 700);
        body.extend_from_slice(b"{\"events\":[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(delivered_json(row).as_bytes());
        }
        body.extend_from_slice(b"]}");
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            .to_string();
        let mut signed = ts.clone().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(&body);
        let sig = hmac_hex(self.secret.as_bytes(), &signed);
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-arcan-timestamp", ts)
            .header("x-arcan-signature", format!("v1={sig}"))
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("receiver answered {}", res.status());
        }
        Ok(())
    }
}
