//! `arcan plugin …` (packages: keys, pack, sign, verify, publish, search, install, list,
//! update, remove) and `arcan registry serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use arcan_registry_client::client::InstallRequest;
use arcan_registry_client::manifest::valid_name;
use arcan_registry_client::protocol::DEFAULT_REGISTRY;
use arcan_registry_client::{Client, ClientOptions, Manifest, PublicKey, keys, package};
use clap::Subcommand;
use semver::{Version, VersionReq};

/// Where plugins are installed and which registry to use.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginOpts {
    /// Plugins directory (default `~/.arcan/data/plugins`).
    #[arg(long, env = "ARCAN_PLUGINS_DIR", global = true)]
    plugins_dir: Option<PathBuf>,
    /// Registry base URL.
    #[arg(long, env = "ARCAN_REGISTRY", default_value = DEFAULT_REGISTRY, global = true)]
    registry: String,
    /// Extra CA certificate (PEM) to trust for the registry.
    #[arg(long, env = "ARCAN_REGISTRY_CA", global = true)]
    registry_ca: Option<PathBuf>,
}

/// Trusted publisher keys: `--trusted-key` (repeatable) or `ARCAN_TRUSTED_KEYS` (comma-separated).
#[derive(Debug, Clone, clap::Args)]
pub struct TrustOpts {
    /// A trusted publisher key, `ed25519:<base64>`.
    #[arg(
        long = "trusted-key",
        env = "ARCAN_TRUSTED_KEYS",
        value_delimiter = ','
    )]
    trusted: Vec<String>,
}

impl TrustOpts {
    fn keys(&self) -> anyhow::Result<Vec<PublicKey>> {
        if self.trusted.is_empty() {
            bail!("no trusted publisher keys: pass --trusted-key KEY or set ARCAN_TRUSTED_KEYS");
        }
        Ok(keys::parse_keys(&self.trusted)?)
    }
}

/// `arcan plugin …`.
#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Generates a publisher key pair; the private key is written 0600 (PKCS#8 PEM).
    Keygen {
        /// Private key file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Packs a plugin directory (manifest.json, engine.wasm, optional flat files).
    Pack {
        /// The plugin directory.
        dir: PathBuf,
        /// The package to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a package (in place unless --out).
    Sign {
        /// The package.
        pkg: PathBuf,
        /// Private key file (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// Write the signed package here instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verifies a package against trusted keys.
    Verify {
        /// The package.
        pkg: PathBuf,
        #[command(flatten)]
        trust: TrustOpts,
    },
    /// Publishes a signed package to the registry.
    Publish {
        /// The package.
        pkg: PathBuf,
        /// Downloads need an activation token.
        #[arg(long)]
        enterprise: bool,
        /// Publisher token.
        #[arg(long, env = "ARCAN_PUBLISHER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Withdraws a published version (NAME@VERSION).
    Yank {
        /// NAME@VERSION.
        spec: String,
        /// Publisher token.
        #[arg(long, env = "ARCAN_PUBLISHER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Searches the registry.
    Search {
        /// Text in the name or description (empty: everything).
        query: Option<String>,
    },
    /// Installs NAME or NAME@REQ (a semver requirement, e.g. `pg@^1.2` or `pg@=1.0.0`).
    Install {
        /// NAME[@REQ].
        spec: String,
        /// Allow installing an older version than the one installed.
        #[arg(long)]
        allow_downgrade: bool,
        /// Activation token for enterprise packages.
        #[arg(long, env = "ARCAN_ACTIVATION_TOKEN", hide_env_values = true)]
        activation: Option<String>,
        #[command(flatten)]
        trust: TrustOpts,
    },
    /// Lists installed plugins.
    List,
    /// Updates NAME (or every installed plugin) to the newest non-yanked version.
    Update {
        /// Plugin name (default: all).
        name: Option<String>,
        /// Activation token for enterprise packages.
        #[arg(long, env = "ARCAN_ACTIVATION_TOKEN", hide_env_values = true)]
        activation: Option<String>,
        #[command(flatten)]
        trust: TrustOpts,
    },
    /// Removes an installed plugin.
    Remove {
        /// Plugin name.
        name: String,
    },
}

/// `arcan registry …`.
#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Serves a plugin registry over HTTPS from a directory.
    Serve(arcan_registry_server::ServeArgs),
}

impl PluginOpts {
    fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| arcan_config::default_home().join("data/plugins"))
    }

    fn client(&self) -> anyhow::Result<Client> {
        let ca_pem = match &self.registry_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        let dir = self.plugins_dir();
        let cache_dir = dir.parent().map(|p| p.join("registry-cache"));
        Ok(Client::new(ClientOptions {
            base: self.registry.clone(),
            ca_pem,
            cache_dir,
            ..ClientOptions::default()
        })?)
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_new(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn split_spec(spec: &str) -> anyhow::Result<(&str, VersionReq)> {
    let (name, req) = match spec.split_once('@') {
        Some((n, r)) => (
            n,
            VersionReq::parse(r).with_context(|| format!("`{r}` is not a version requirement"))?,
        ),
        None => (spec, VersionReq::STAR),
    };
    if !valid_name(name) {
        bail!("`{name}` is not a valid plugin name (1-64 of a-z 0-9 -)");
    }
    Ok((name, req))
}

/// The manifest of an installed plugin, if it has a readable one.
fn installed(dir: &Path, name: &str) -> Option<Manifest> {
    Manifest::parse(&std::fs::read(dir.join(name).join("manifest.json")).ok()?).ok()
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn install_one(
    opts: &PluginOpts,
    name: &str,
    req: &VersionReq,
    trusted: &[PublicKey],
    allow_downgrade: bool,
    activation: Option<&str>,
) -> anyhow::Result<()> {
    let client = opts.client()?;
    let dir = opts.plugins_dir();
    let current = installed(&dir, name).and_then(|m| m.semver().ok());
    let bar = progress_bar();
    bar.set_message(format!("downloading {name}"));
    let result = client
        .install(
            &InstallRequest {
                name,
                req,
                trusted,
                plugins_dir: &dir,
                installed: current,
                allow_downgrade,
                activation,
            },
            |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        )
        .await;
    bar.finish_and_clear();
    let v = result.with_context(|| format!("{name} was not installed"))?;
    let m = &v.manifest;
    println!(
        "installed {} {} into {} (publisher {}, signed by {})",
        m.name,
        m.version,
        dir.join(name).display(),
        m.publisher,
        v.key.fingerprint()
    );
    println!("declared capabilities (grant them when mounting):");
    for c in &m.capabilities {
        println!("  {c}");
    }
    Ok(())
}

/// Runs `arcan plugin …`.
pub async fn run(opts: &PluginOpts, cmd: PluginCmd) -> anyhow::Result<()> {
    match cmd {
        PluginCmd::Keygen { out } => {
            let key = keys::generate();
            keys::write_private(&key, &out)?;
            let pk = keys::public_key(&key);
            println!("private key: {} (mode 0600)", out.display());
            println!("public key: {pk}");
            println!("fingerprint: {}", pk.fingerprint());
        }
        PluginCmd::Pack { dir, out } => {
            let pkg = package::pack(&dir)?;
            write_new(&out, &pkg)?;
            println!("packed {} ({} bytes, unsigned)", out.display(), pkg.len());
        }
        PluginCmd::Sign { pkg, key, out } => {
            let signing = keys::read_private(&key)?;
            let signed = package::sign(&read(&pkg)?, &signing)?;
            let out = out.unwrap_or(pkg);
            write_new(&out, &signed)?;
            let pk = keys::public_key(&signing);
            println!("signed {} with {pk} ({})", out.display(), pk.fingerprint());
        }
        PluginCmd::Verify { pkg, trust } => {
            let v = package::verify(&read(&pkg)?, &trust.keys()?)?;
            let m = &v.manifest;
            println!(
                "ok: {} {} by {} (key {})",
                m.name,
                m.version,
                m.publisher,
                v.key.fingerprint()
            );
            println!("capabilities: {}", m.capabilities.join(", "));
        }
        PluginCmd::Publish {
            pkg,
            enterprise,
            token,
        } => {
            let token =
                token.context("a publisher token is required: --token or ARCAN_PUBLISHER_TOKEN")?;
            let e = opts
                .client()?
                .publish(&read(&pkg)?, &token, enterprise)
                .await?;
            println!(
                "published {} {} to {} (sha256 {}, {} bytes{})",
                pkg.display(),
                e.version,
                opts.registry,
                e.sha256,
                e.size,
                if e.enterprise { ", enterprise" } else { "" }
            );
        }
        PluginCmd::Yank { spec, token } => {
            let token =
                token.context("a publisher token is required: --token or ARCAN_PUBLISHER_TOKEN")?;
            let (name, version) = spec.split_once('@').context("give NAME@VERSION")?;
            opts.client()?.yank(name, version, &token).await?;
            println!("yanked {name}@{version}");
        }
        PluginCmd::Search { query } => {
            let r = opts
                .client()?
                .search(query.as_deref().unwrap_or(""))
                .await?;
            if r.results.is_empty() {
                println!("no plugins found");
            }
            for h in r.results {
                println!(
                    "{:<24} {:<10} {:<16} {}{}",
                    h.name,
                    h.version,
                    h.publisher,
                    h.description,
                    if h.enterprise { " [enterprise]" } else { "" }
                );
            }
        }
        PluginCmd::Install {
            spec,
            allow_downgrade,
            activation,
            trust,
        } => {
            let (name, req) = split_spec(&spec)?;
            install_one(
                opts,
                name,
                &req,
                &trust.keys()?,
                allow_downgrade,
                activation.as_deref(),
            )
            .await?;
        }
        PluginCmd::List => list(&opts.plugins_dir())?,
        PluginCmd::Update {
            name,
            activation,
            trust,
        } => {
            let trusted = trust.keys()?;
            let dir = opts.plugins_dir();
            let names = match name {
                Some(n) => vec![n],
                None => installed_names(&dir)?,
            };
            let client = opts.client()?;
            for name in names {
                let Some(current) = installed(&dir, &name).and_then(|m| m.semver().ok()) else {
                    bail!(
                        "{name} is not installed from a package in {}",
                        dir.display()
                    );
                };
                let newest = client.resolve(&name, &VersionReq::STAR).await?;
                if Version::parse(&newest.version).is_ok_and(|v| v <= current) {
                    println!("{name} {current} is up to date");
                    continue;
                }
                install_one(
                    opts,
                    &name,
                    &VersionReq::STAR,
                    &trusted,
                    false,
                    activation.as_deref(),
                )
                .await?;
            }
        }
        PluginCmd::Remove { name } => {
            if !valid_name(&name) {
                bail!("`{name}` is not a valid plugin name");
            }
            let dir = opts.plugins_dir();
            let path = dir.join(&name);
            if !path.is_dir() {
                bail!("{name} is not installed in {}", dir.display());
            }
            let aside = dir.join(format!(".{name}.removed-{:016x}", rand::random::<u64>()));
            std::fs::rename(&path, &aside)
                .with_context(|| format!("removing {}", path.display()))?;
            std::fs::remove_dir_all(&aside)
                .with_context(|| format!("removing {}", aside.display()))?;
            println!("removed {name} (restart the server to unload it)");
        }
    }
    Ok(())
}

fn installed_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    names.sort();
    Ok(names)
}

fn list(dir: &Path) -> anyhow::Result<()> {
    let names = installed_names(dir)?;
    if names.is_empty() {
        println!("no plugins installed in {}", dir.display());
    }
    for name in names {
        let signer = std::fs::read(dir.join(&name).join("signature"))
            .ok()
            .and_then(|b| serde_json::from_slice::<package::SignatureFile>(&b).ok())
            .and_then(|s| s.key.parse::<PublicKey>().ok())
            .map_or_else(
                || "unsigned".to_owned(),
                |k| format!("signed by {}", k.fingerprint()),
            );
        match installed(dir, &name) {
            Some(m) => println!(
                "{:<24} {:<10} {:<16} {signer}  [{}]",
                m.name,
                m.version,
                m.publisher,
                m.capabilities.join(", ")
            ),
            None => println!("{name:<24} (no valid package manifest) {signer}"),
        }
    }
    Ok(())
}
