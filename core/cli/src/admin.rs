//! `arcan realm|token|policy|master-key …`.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, q};
use super::kv::print;

/// Realm subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RealmCmd {
    /// Creates a realm (you become its admin).
    Create {
        /// Slug.
        slug: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists your realms.
    List,
    /// Shows a realm.
    Get {
        /// Slug.
        slug: String,
    },
    /// Deletes a realm and all it holds.
    Delete {
        /// Slug.
        slug: String,
    },
}

/// Token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Creates a token no wider than your own.
    Create {
        /// Lifetime, e.g. `90d`.
        #[arg(long)]
        ttl: Option<String>,
        /// Comma-separated capabilities, e.g. `secrets:read`.
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        /// Only this realm.
        #[arg(long)]
        realm: Option<String>,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only keys matching this glob.
        #[arg(long)]
        keys: Option<String>,
        /// Label.
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists your tokens (a narrowed token sees itself and its descendants).
    List {
        /// Every user's tokens (needs the global `tokens:manage`).
        #[arg(long)]
        all: bool,
    },
    /// Revokes a token by id, and every token minted from it (the whole subtree).
    Revoke {
        /// Token id.
        id: String,
    },
    /// Shows the current token.
    LookupSelf,
}

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCmd {
    /// Custom roles.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Bindings of users and tokens to roles.
    #[command(subcommand)]
    Binding(BindingCmd),
    /// Says whether a token may do something, and why.
    Explain {
        /// The token (`arc_…`).
        #[arg(long)]
        token: String,
        /// Capability, e.g. `secrets:read`.
        #[arg(long)]
        action: String,
        /// Key.
        #[arg(long)]
        key: Option<String>,
        /// Environment.
        #[arg(long)]
        env: Option<String>,
    },
}

/// Role subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RoleCmd {
    /// Creates or replaces a custom role.
    Create {
        /// Name.
        name: String,
        /// Comma-separated capabilities.
        #[arg(long, value_delimiter = ',', required = true)]
        capabilities: Vec<String>,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only keys matching this glob.
        #[arg(long)]
        keys: Option<String>,
    },
    /// Lists roles.
    List,
    /// Deletes a custom role.
    Delete {
        /// Name.
        name: String,
    },
}

/// Binding subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BindingCmd {
    /// Binds `user:<email>` or `token:<id>` to a role.
    Create {
        /// Subject.
        #[arg(long)]
        subject: String,
        /// Role.
        #[arg(long)]
        role: String,
    },
    /// Lists bindings.
    List,
    /// Removes a binding.
    Delete {
        /// Binding id.
        id: String,
    },
}

/// Master-key subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MasterKeyCmd {
    /// Writes a new random master key file (0600) for provisioning before first start.
    Generate {
        /// Output path.
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks that every data key unwraps with the server's master key.
    Verify,
    /// Rotates the master key on the running server (re-wraps every data key).
    Rewrap,
}

pub(super) async fn realm(c: &Client, cmd: RealmCmd) -> anyhow::Result<()> {
    let v = match cmd {
        RealmCmd::Create { slug, name } => {
            c.call(
                Method::POST,
                "/api/v1/realms",
                Some(&json!({"slug": slug, "name": name})),
            )
            .await?
        }
        RealmCmd::List => c.get("/api/v1/realms").await?,
        RealmCmd::Get { slug } => c.get(&format!("/api/v1/realms/{}", q(&slug))).await?,
        RealmCmd::Delete { slug } => {
            c.call(
                Method::DELETE,
                &format!("/api/v1/realms/{}", q(&slug)),
                None,
            )
            .await?;
            json!({"deleted": slug})
        }
    };
    print(&v)
}

pub(super) async fn token(c: &Client, cmd: TokenCmd) -> anyhow::Result<()> {
    let v = match cmd {
        TokenCmd::Create {
            ttl,
            capabilities,
            realm,
            env,
            keys,
            name,
        } => {
            let body = json!({"ttl": ttl, "capabilities": capabilities, "realm": realm, "env": env, "key_glob": keys, "name": name});
            c.call(Method::POST, "/api/v1/tokens", Some(&body)).await?
        }
        TokenCmd::List { all } => {
            c.get(if all {
                "/api/v1/tokens?all=true"
            } else {
                "/api/v1/tokens"
            })
            .await?
        }
        TokenCmd::Revoke { id } => {
            c.call(Method::DELETE, &format!("/api/v1/tokens/{}", q(&id)), None)
                .await?;
            json!({"revoked": id, "descendants": "revoked"})
        }
        TokenCmd::LookupSelf => c.get("/api/v1/tokens/self").await?,
    };
    print(&v)
}

pub(super) async fn policy(c: &Client, realm: &str, cmd: PolicyCmd) -> anyhow::Result<()> {
    let base = format!("/api/v1/realms/{}", q(realm));
    let v: Value = match cmd {
        PolicyCmd::Role(RoleCmd::Create {
            name,
            capabilities,
            env,
            keys,
        }) => {
            let body =
                json!({"name": name, "capabilities": capabilities, "env": env, "key_glob": keys});
            c.call(Method::POST, &format!("{base}/roles"), Some(&body))
                .await?
        }
        PolicyCmd::Role(RoleCmd::List) => c.get(&format!("{base}/roles")).await?,
        PolicyCmd::Role(RoleCmd::Delete { name }) => {
            c.call(Method::DELETE, &format!("{base}/roles/{}", q(&name)), None)
                .await?;
            json!({"deleted": name})
        }
        PolicyCmd::Binding(BindingCmd::Create { subject, role }) => {
            c.call(
                Method::POST,
                &format!("{base}/bindings"),
                Some(&json!({"subject": subject, "role": role})),
            )
            .await?
        }
        PolicyCmd::Binding(BindingCmd::List) => c.get(&format!("{base}/bindings")).await?,
        PolicyCmd::Binding(BindingCmd::Delete { id }) => {
            c.call(Method::DELETE, &format!("{base}/bindings/{}", q(&id)), None)
                .await?;
            json!({"deleted": id})
        }
        PolicyCmd::Explain {
            token,
            action,
            key,
            env,
        } => {
            let body = json!({"token": token, "action": action, "key": key, "env": env});
            c.call(Method::POST, &format!("{base}/policy/explain"), Some(&body))
                .await?
        }
    };
    print(&v)
}

pub(super) async fn master_key(c: &Client, cmd: MasterKeyCmd) -> anyhow::Result<()> {
    match cmd {
        MasterKeyCmd::Generate { out } => {
            arcan_crypto::generate_master_key_file(&out)?;
            println!("wrote a new master key to {} (mode 0600)", out.display());
            Ok(())
        }
        MasterKeyCmd::Verify => print(&c.get("/api/v1/sys/master-key").await?),
        MasterKeyCmd::Rewrap => print(
            &c.call(Method::POST, "/api/v1/sys/master-key/rewrap", None)
                .await?,
        ),
    }
}
