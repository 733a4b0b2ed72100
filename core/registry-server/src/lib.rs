//! `arcan registry serve`: a self-hostable plugin registry (for air-gapped sites and tests).
//!
//! It implements the protocol documented in `registry-client/README.md` over HTTPS only
//! (rustls, TLS 1.3 and 1.2, like the server). Publishing needs a publisher token; the
//! registry checks that a package is well-formed and validly signed by the key its
//! signature names, but it does not decide which keys are trusted: clients do.
//!
//! Layout of `--dir`:
//! - `blobs/<sha256>.arcanpkg`: packages, by content digest.
//! - `index/<name>.json`: the index of each package (the `GET /v1/packages/{name}` body).
//! - `publisher-tokens`: `token name` lines (generated, mode 0600, on first start unless
//!   `--publisher-token-file` is given).
//! - `activation-tokens`: one token per line, accepted for enterprise downloads (optional).
//! - `tls/`: self-signed CA and certificate when `--tls-cert`/`--tls-key` are not given.

mod api;
mod store;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use salvo::conn::Acceptor;
use salvo::conn::rustls::{Keycert, RustlsConfig};
use salvo::prelude::*;

use arcan_crypto::tls::{TlsPaths, ensure_self_signed};

/// TLS 1.3 and 1.2; nothing older.
static TLS_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Flags of `arcan registry serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory holding blobs, indexes and tokens (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Certificate chain (PEM); default: self-signed material in `DIR/tls`.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File of `token name` lines allowed to publish and yank (default: `DIR/publisher-tokens`,
    /// generated on first start).
    #[arg(long)]
    pub publisher_token_file: Option<PathBuf>,
}

/// Runs the registry until SIGINT/SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = store::Store::open(&args.dir, args.publisher_token_file.as_deref())?;
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let paths = TlsPaths::in_dir(&args.dir.join("tls"));
            if ensure_self_signed(&paths, &[])? {
                eprintln!(
                    "generated a self-signed certificate; clients trust {}",
                    paths.ca_cert.display()
                );
            }
            (paths.cert, paths.key)
        }
    };
    let cert = std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
    let key = std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
    let tls = RustlsConfig::new(Keycert::new().cert(cert).key(key)).tls_versions(TLS_VERSIONS);
    let addr = SocketAddr::new(args.host, args.port);
    let acceptor = TcpListener::new(addr)
        .rustls(tls)
        .try_bind()
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = acceptor
        .holdings()
        .first()
        .and_then(|h| h.local_addr.clone().into_std())
        .unwrap_or(addr);
    let router = Router::new().push(Router::with_path("{**rest}").goal(api::Api(Arc::new(store))));
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(async move {
        arcan_lifecycle::shutdown_signal().await;
        handle.stop_graceful(std::time::Duration::from_secs(10));
    });
    println!("Listening on https://{bound}");
    server.serve(Service::new(router)).await;
    Ok(())
}
