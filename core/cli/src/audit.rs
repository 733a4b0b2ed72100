//! `arcan audit …`: query, export, verify, status, hash, and sink administration.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, q};
use super::kv::print;

/// Audit subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Lists a realm's events (newest page last).
    List {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM")]
        realm: String,
        #[command(flatten)]
        filter: Filter,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Writes every matching event of a realm as JSON lines.
    Export {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM")]
        realm: String,
        #[command(flatten)]
        filter: Filter,
    },
    /// Verifies a realm's hash chain.
    Verify {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM")]
        realm: String,
    },
    /// Shows pipeline and sink counters (needs `audit:manage`).
    Status,
    /// Prints the audit HMAC of a value, to find events about it (needs `audit:manage`).
    Hash {
        /// The value.
        value: String,
    },
    /// Delivery sinks (need `audit:manage`).
    #[command(subcommand)]
    Sink(SinkCmd),
}

/// Event filters.
#[derive(Debug, clap::Args)]
pub struct Filter {
    /// From this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Until this RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
    /// Only this actor (user id).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action, e.g. `secrets.read`.
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome: success, denied, failure, error.
    #[arg(long)]
    outcome: Option<String>,
}

impl Filter {
    fn query(&self) -> String {
        let mut out = String::new();
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("&{k}={}", q(v)));
            }
        }
        out
    }
}

/// Sink subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SinkCmd {
    /// Adds a webhook or syslog sink.
    Add {
        /// Name.
        name: String,
        /// `webhook` or `syslog`.
        #[arg(long)]
        kind: String,
        /// Webhook: https URL.
        #[arg(long)]
        url: Option<String>,
        /// Webhook: HMAC secret (or ARCAN_WEBHOOK_SECRET).
        #[arg(long, env = "ARCAN_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Webhook: CA certificate file to trust.
        #[arg(long)]
        ca_cert: Option<String>,
        /// Syslog: host:port.
        #[arg(long)]
        address: Option<String>,
        /// Syslog: tcp or udp.
        #[arg(long)]
        protocol: Option<String>,
        /// Syslog: facility number.
        #[arg(long)]
        facility: Option<u8>,
        /// Syslog: APP-NAME.
        #[arg(long)]
        app_name: Option<String>,
    },
    /// Lists sinks.
    List,
    /// Removes a sink.
    Remove {
        /// Name.
        name: String,
    },
}

pub(super) async fn run(c: &Client, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::List {
            realm,
            filter,
            limit,
        } => print(
            &c.get(&format!(
                "/api/v1/realms/{}/audit?limit={limit}{}",
                q(&realm),
                filter.query()
            ))
            .await?,
        ),
        AuditCmd::Export { realm, filter } => {
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!(
                    "/api/v1/realms/{}/audit?limit=1000{}",
                    q(&realm),
                    filter.query()
                );
                if let Some(cur) = &cursor {
                    path.push_str(&format!("&cursor={}", q(cur)));
                }
                let page = c.get(&path).await?;
                for e in page["items"].as_array().into_iter().flatten() {
                    println!("{}", serde_json::to_string(e)?);
                }
                cursor = page["next_cursor"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    return Ok(());
                }
            }
        }
        AuditCmd::Verify { realm } => {
            let v = c
                .get(&format!("/api/v1/realms/{}/audit/verify", q(&realm)))
                .await?;
            print(&v)?;
            if v["ok"] != Value::Bool(true) {
                anyhow::bail!("audit chain verification failed");
            }
            Ok(())
        }
        AuditCmd::Status => print(&c.get("/api/v1/audit/status").await?),
        AuditCmd::Hash { value } => {
            let v = c
                .call(
                    Method::POST,
                    "/api/v1/audit/hash",
                    Some(&json!({ "value": value })),
                )
                .await?;
            println!("{}", v["hmac"].as_str().unwrap_or_default());
            Ok(())
        }
        AuditCmd::Sink(SinkCmd::Add {
            name,
            kind,
            url,
            secret,
            ca_cert,
            address,
            protocol,
            facility,
            app_name,
        }) => {
            let mut body = json!({ "name": name, "kind": kind });
            for (k, v) in [
                ("url", url),
                ("secret", secret),
                ("ca_cert", ca_cert),
                ("address", address),
                ("protocol", protocol),
                ("app_name", app_name),
            ] {
                if let Some(v) = v {
                    body[k] = v.into();
                }
            }
            if let Some(f) = facility {
                body["facility"] = f.into();
            }
            print(
                &c.call(Method::POST, "/api/v1/audit/sinks", Some(&body))
                    .await?,
            )
        }
        AuditCmd::Sink(SinkCmd::List) => print(&c.get("/api/v1/audit/sinks").await?),
        AuditCmd::Sink(SinkCmd::Remove { name }) => {
            c.call(
                Method::DELETE,
                &format!("/api/v1/audit/sinks/{}", q(&name)),
                None,
            )
            .await?;
            println!("removed sink {name}");
            Ok(())
        }
    }
}
