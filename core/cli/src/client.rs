//! The CLI's HTTPS client: address, CA and token from flags, `ARCAN_*` or the credentials
//! file; API errors turned into readable messages.

use std::path::PathBuf;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use arcan_config::default_home;

/// Where the CLI keeps the login token (mode 0600).
pub fn credentials_path() -> PathBuf {
    default_home().join("credentials.json")
}

/// The stored login.
#[derive(Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// Server address.
    pub addr: String,
    /// Token.
    pub token: String,
}

/// Reads the credentials file, if present.
pub fn load_credentials() -> Option<Credentials> {
    let text = std::fs::read_to_string(credentials_path()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the credentials file with mode 0600.
pub fn save_credentials(c: &Credentials) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = credentials_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(c)?.as_bytes())?;
    Ok(path)
}

/// Connection settings shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientOpts {
    /// Server address.
    #[arg(long, env = "ARCAN_ADDR", global = true)]
    pub addr: Option<String>,
    /// API token (default: the one saved by `arcan login`); give it before the subcommand.
    #[arg(long, env = "ARCAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate to trust (default: `~/.arcan/data/tls/ca.pem` when present).
    #[arg(long = "ca-cert", env = "ARCAN_CACERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

/// A connected client.
pub struct Client {
    http: reqwest::Client,
    addr: String,
    token: Option<String>,
}

impl Client {
    /// Builds a client from options, environment and the credentials file.
    pub fn new(opts: &ClientOpts) -> anyhow::Result<Self> {
        let saved = load_credentials();
        let addr = opts
            .addr
            .clone()
            .or_else(|| saved.as_ref().map(|c| c.addr.clone()))
            .unwrap_or_else(|| "https://127.0.0.1:8081".into());
        let token = opts.token.clone().or_else(|| saved.map(|c| c.token));
        let ca = opts.ca_cert.clone().or_else(|| {
            let p = default_home().join("data/tls/ca.pem");
            p.exists().then_some(p)
        });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = ca {
            let pem = std::fs::read(&ca).with_context(|| format!("reading CA {}", ca.display()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("parsing CA {}", ca.display()))?,
            );
        }
        Ok(Self {
            http: builder.build()?,
            addr: addr.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request; returns the JSON body (Null for 204) or a readable error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.addr);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.addr))?;
        let status = res.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = res.text().await?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(json);
        }
        let msg = json["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        let rid = json["error"]["request_id"].as_str().unwrap_or("");
        bail!("{} {msg} (request id {rid})", status.as_u16())
    }

    /// GET.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }
}

/// Percent-encodes a query value.
pub fn q(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
