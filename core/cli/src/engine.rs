//! `arcan engine …` and `arcan lease …`: mounts, roles, credentials and leases.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, q};
use super::kv::print;

/// Engine subcommands (need `engines:manage` to change, `engines:read` to look).
#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {
    /// Mounts an installed plugin in the realm.
    Enable {
        /// Mount name.
        name: String,
        /// Installed plugin.
        #[arg(long)]
        plugin: String,
        /// Engine configuration: JSON, or @file.
        #[arg(long)]
        config: Option<String>,
        /// Named connections: JSON object, or @file (credentials are write-only).
        #[arg(long)]
        connections: Option<String>,
        /// Host capability to grant (repeat), e.g. --grant host:sql.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Mount without checking that connections answer.
        #[arg(long)]
        no_verify: bool,
    },
    /// Lists the realm's engines.
    List,
    /// Shows a mount and what its engine describes.
    Read {
        /// Mount name.
        name: String,
    },
    /// Revokes a mount's leases, then unmounts it.
    Disable {
        /// Mount name.
        name: String,
        /// Unmount even if some leases cannot be revoked (they are reported irrevocable).
        #[arg(long)]
        force: bool,
    },
    /// Roles of a mount.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Issues a credential (a lease) for a role.
    Creds {
        /// Mount name.
        mount: String,
        /// Role.
        role: String,
        /// Lifetime, e.g. 15m (default: the role's).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Rotates the mount's root credential (nobody sees the new one).
    RotateRoot {
        /// Mount name.
        mount: String,
    },
    /// Lists installed plugins.
    Plugins,
}

/// Role subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RoleCmd {
    /// Creates or replaces a role.
    Set {
        /// Mount name.
        mount: String,
        /// Role name.
        name: String,
        /// The engine's role definition: JSON, or @file.
        #[arg(long)]
        definition: String,
        /// Default lifetime, e.g. 1h.
        #[arg(long)]
        default_ttl: Option<String>,
        /// Longest lifetime, renewals included, e.g. 24h.
        #[arg(long)]
        max_ttl: Option<String>,
    },
    /// Shows a role.
    Get {
        /// Mount name.
        mount: String,
        /// Role name.
        name: String,
    },
    /// Lists a mount's roles.
    List {
        /// Mount name.
        mount: String,
    },
    /// Deletes a role.
    Delete {
        /// Mount name.
        mount: String,
        /// Role name.
        name: String,
    },
}

/// Lease subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LeaseCmd {
    /// Lists leases.
    List {
        /// Only ids starting with this, e.g. `pg/` or `pg/readonly/`.
        #[arg(long)]
        prefix: Option<String>,
        /// Only this state: active, revoked, expired, irrevocable.
        #[arg(long)]
        state: Option<String>,
    },
    /// Renews a lease.
    Renew {
        /// Lease id.
        lease_id: String,
        /// Extension, e.g. 1h (default: its original duration).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Revokes a lease, or every lease under a prefix with --prefix.
    Revoke {
        /// Lease id (or prefix with --prefix).
        lease_id: String,
        /// Treat the argument as a prefix.
        #[arg(long)]
        prefix: bool,
    },
}

/// JSON given inline or as `@file`.
fn json_arg(s: &str) -> anyhow::Result<Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?
        }
        None => s.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("invalid JSON: {e}"))
}

pub(super) async fn run(c: &Client, realm: &str, cmd: EngineCmd) -> anyhow::Result<()> {
    let base = format!("/api/v1/realms/{}/engines", q(realm));
    let v = match cmd {
        EngineCmd::Enable {
            name,
            plugin,
            config,
            connections,
            grants,
            no_verify,
        } => {
            let body = json!({
                "name": name, "plugin": plugin, "grants": grants,
                "config": config.as_deref().map(json_arg).transpose()?,
                "connections": connections.as_deref().map(json_arg).transpose()?,
                "verify_connections": !no_verify,
            });
            c.call(Method::POST, &base, Some(&body)).await?
        }
        EngineCmd::List => c.get(&base).await?,
        EngineCmd::Read { name } => c.get(&format!("{base}/{}", q(&name))).await?,
        EngineCmd::Disable { name, force } => {
            c.call(
                Method::DELETE,
                &format!("{base}/{}?force={force}", q(&name)),
                None,
            )
            .await?
        }
        EngineCmd::Role(r) => role(c, &base, r).await?,
        EngineCmd::Creds { mount, role, ttl } => {
            let body = json!({ "ttl": ttl });
            c.call(
                Method::POST,
                &format!("{base}/{}/creds/{}", q(&mount), q(&role)),
                Some(&body),
            )
            .await?
        }
        EngineCmd::RotateRoot { mount } => {
            c.call(
                Method::POST,
                &format!("{base}/{}/rotate-root", q(&mount)),
                None,
            )
            .await?
        }
        EngineCmd::Plugins => c.get("/api/v1/plugins").await?,
    };
    print(&v)
}

async fn role(c: &Client, base: &str, cmd: RoleCmd) -> anyhow::Result<Value> {
    match cmd {
        RoleCmd::Set {
            mount,
            name,
            definition,
            default_ttl,
            max_ttl,
        } => {
            let body = json!({
                "definition": json_arg(&definition)?,
                "default_ttl": default_ttl, "max_ttl": max_ttl,
            });
            c.call(
                Method::PUT,
                &format!("{base}/{}/roles/{}", q(&mount), q(&name)),
                Some(&body),
            )
            .await
        }
        RoleCmd::Get { mount, name } => {
            c.get(&format!("{base}/{}/roles/{}", q(&mount), q(&name)))
                .await
        }
        RoleCmd::List { mount } => c.get(&format!("{base}/{}/roles", q(&mount))).await,
        RoleCmd::Delete { mount, name } => {
            c.call(
                Method::DELETE,
                &format!("{base}/{}/roles/{}", q(&mount), q(&name)),
                None,
            )
            .await
        }
    }
}

pub(super) async fn lease(c: &Client, realm: &str, cmd: LeaseCmd) -> anyhow::Result<()> {
    let base = format!("/api/v1/realms/{}/leases", q(realm));
    let v = match cmd {
        LeaseCmd::List { prefix, state } => {
            let mut url = format!("{base}?limit=1000");
            if let Some(p) = prefix {
                url.push_str(&format!("&prefix={}", q(&p)));
            }
            if let Some(s) = state {
                url.push_str(&format!("&state={}", q(&s)));
            }
            c.get(&url).await?
        }
        LeaseCmd::Renew { lease_id, ttl } => {
            let body = json!({ "lease_id": lease_id, "ttl": ttl });
            c.call(Method::POST, &format!("{base}/renew"), Some(&body))
                .await?
        }
        LeaseCmd::Revoke { lease_id, prefix } => {
            if prefix {
                let body = json!({ "prefix": lease_id });
                c.call(Method::POST, &format!("{base}/revoke-prefix"), Some(&body))
                    .await?
            } else {
                let body = json!({ "lease_id": lease_id });
                c.call(Method::POST, &format!("{base}/revoke"), Some(&body))
                    .await?
            }
        }
    };
    print(&v)
}
