//! The command line: `arcan server` and the client commands.
//!
//! The top of the workspace: `arcan server` starts `arcan-server`, `arcan registry serve`
//! starts `arcan-registry-server`, every other command is an HTTPS client of a running
//! server ([`client`]). The `arcan` binary crate is only `main` (and the allocator) calling
//! [`main`].

mod admin;
mod audit;
mod auth;
pub mod client;
mod doctor;
mod engine;
pub mod kv;
mod plugin;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use arcan_config::{Config, LogFormat};
use client::{Client, ClientOpts};

/// Arcan: secrets, dynamic credentials, identity and audit in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "arcan",
    version,
    about = "Arcan secrets platform: the server and its CLI in one binary."
)]
pub struct Cli {
    #[command(flatten)]
    client: ClientOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags of `arcan server` (each overrides the config file and `ARCAN_*`).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// YAML config file (default `~/.arcan/config.yaml` when present).
    #[arg(long, env = "ARCAN_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: open registration, root token written to the data dir.
    #[arg(long)]
    dev: bool,
    /// Address to bind.
    #[arg(long, env = "ARCAN_HOST")]
    host: Option<std::net::IpAddr>,
    /// Port (0: any free port).
    #[arg(long, env = "ARCAN_PORT")]
    port: Option<u16>,
    /// Data directory.
    #[arg(long, env = "ARCAN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (default: embedded SQLite).
    #[arg(long, env = "ARCAN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "ARCAN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `arcan=debug`.
    #[arg(long, env = "ARCAN_LOG_LEVEL")]
    log_level: Option<String>,
}

impl ServerArgs {
    /// Merges file < environment/flags into one validated config.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let mut c = Config::from_file(self.config.as_deref())?;
        c.dev |= self.dev;
        if let Some(v) = self.host {
            c.server.host = v;
        }
        if let Some(v) = self.port {
            c.server.port = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.database_url {
            c.database_url = Some(v);
        }
        if let Some(v) = self.log_format {
            c.log.format = v;
        }
        if let Some(v) = self.log_level {
            c.log.level = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs the server.
    Server(ServerArgs),
    /// Creates a user (open in dev mode; otherwise needs a superuser token).
    Register {
        /// Email.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Logs in (with a password, or as a machine with `--method`) and saves the token to
    /// `~/.arcan/credentials.json` (0600).
    Login(auth::LoginArgs),
    /// Machine-identity auth methods (JWT/OIDC, Kubernetes) and their login roles.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Realms.
    #[command(subcommand)]
    Realm(admin::RealmCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Roles, bindings and explanations.
    Policy {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM", global = true)]
        realm: Option<String>,
        #[command(subcommand)]
        cmd: admin::PolicyCmd,
    },
    /// Static secrets.
    Kv {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM", global = true)]
        realm: Option<String>,
        /// Environment.
        #[arg(long, env = "ARCAN_ENV", default_value = "default", global = true)]
        env: String,
        #[command(subcommand)]
        cmd: kv::KvCmd,
    },
    /// Engine mounts, roles and credentials.
    Engine {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM", global = true)]
        realm: Option<String>,
        #[command(subcommand)]
        cmd: engine::EngineCmd,
    },
    /// Leases of issued credentials.
    Lease {
        /// Realm slug.
        #[arg(long, env = "ARCAN_REALM", global = true)]
        realm: Option<String>,
        #[command(subcommand)]
        cmd: engine::LeaseCmd,
    },
    /// The master key.
    #[command(subcommand, name = "master-key")]
    MasterKey(admin::MasterKeyCmd),
    /// The audit log and its sinks.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Checks the server address, TLS trust and token.
    Doctor,
    /// Plugin packages: keys, pack, sign, verify, publish, search, install, list, update, remove.
    Plugin {
        #[command(flatten)]
        opts: plugin::PluginOpts,
        #[command(subcommand)]
        cmd: plugin::PluginCmd,
    },
    /// The self-hostable plugin registry.
    #[command(subcommand)]
    Registry(plugin::RegistryCmd),
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_password(stdin: bool) -> anyhow::Result<String> {
    if stdin {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        Ok(s.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        Ok(rpassword::prompt_password("Password: ")?)
    }
}

fn need_realm(realm: Option<String>) -> anyhow::Result<String> {
    realm.ok_or_else(|| anyhow::anyhow!("--realm (or ARCAN_REALM) is required"))
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if let Cmd::Server(args) = cli.cmd {
        let config = args.into_config()?;
        init_logging(config.log.format, &config.log.level);
        if config.dev {
            tracing::warn!("DEV MODE: open registration; root token written to the data dir");
        }
        arcan_server::run(config).await?;
        return Ok(0);
    }
    if let Cmd::Registry(plugin::RegistryCmd::Serve(args)) = cli.cmd {
        init_logging(LogFormat::Text, "info");
        arcan_registry_server::serve(args).await?;
        return Ok(0);
    }
    if let Cmd::Plugin { opts, cmd } = cli.cmd {
        plugin::run(&opts, cmd).await?;
        return Ok(0);
    }
    if let Cmd::Doctor = cli.cmd {
        return Ok(doctor::run(&cli.client).await);
    }
    let client = Client::new(&cli.client)?;
    match cli.cmd {
        Cmd::Server(_) | Cmd::Doctor | Cmd::Plugin { .. } | Cmd::Registry(_) => {
            unreachable!("handled above")
        }
        Cmd::Register {
            email,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let r = client
                .call(
                    reqwest::Method::POST,
                    "/api/v1/auth/register",
                    Some(&serde_json::json!({"email": email, "password": password})),
                )
                .await?;
            println!(
                "registered {} ({})",
                r["email"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
        }
        Cmd::Login(args) if args.method.is_some() => auth::machine_login(&client, args).await?,
        Cmd::Login(auth::LoginArgs {
            email: Some(email),
            password_stdin,
            ..
        }) => {
            let password = read_password(password_stdin)?;
            let r = client
                .call(
                    reqwest::Method::POST,
                    "/api/v1/auth/login",
                    Some(&serde_json::json!({"email": email, "password": password})),
                )
                .await?;
            let token = r["token"].as_str().unwrap_or_default().to_owned();
            let path = client::save_credentials(&client::Credentials {
                addr: client.addr().to_owned(),
                token,
            })?;
            println!(
                "logged in; token saved to {} (expires {})",
                path.display(),
                r["expires_at"].as_str().unwrap_or_default()
            );
        }
        Cmd::Login(_) => anyhow::bail!("--email or --method is required"),
        Cmd::Auth(cmd) => auth::run(&client, cmd).await?,
        Cmd::Realm(cmd) => admin::realm(&client, cmd).await?,
        Cmd::Token(cmd) => admin::token(&client, cmd).await?,
        Cmd::Policy { realm, cmd } => admin::policy(&client, &need_realm(realm)?, cmd).await?,
        Cmd::Kv { realm, env, cmd } => {
            return kv::run(&client, &need_realm(realm)?, &env, cmd).await;
        }
        Cmd::MasterKey(cmd) => admin::master_key(&client, cmd).await?,
        Cmd::Audit(cmd) => audit::run(&client, cmd).await?,
        Cmd::Engine { realm, cmd } => {
            // Listing installed plugins is not about a realm.
            let realm = match cmd {
                engine::EngineCmd::Plugins => realm.unwrap_or_default(),
                _ => need_realm(realm)?,
            };
            engine::run(&client, &realm, cmd).await?
        }
        Cmd::Lease { realm, cmd } => engine::lease(&client, &need_realm(realm)?, cmd).await?,
    }
    Ok(0)
}
