//! A running `arcan registry serve` and the `arcan plugin …` CLI pointed at it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::arcan_bin;

/// A registry process on an ephemeral port with self-signed TLS in `<dir>/tls`.
pub struct Registry {
    child: Option<Child>,
    /// Its directory (blobs, index, tokens).
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The generated publisher token.
    pub token: String,
}

impl Registry {
    /// Starts a registry in a fresh directory.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("arcan-registry-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("registry dir");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log");
        let mut child = Command::new(arcan_bin())
            .args(["registry", "serve", "--port", "0", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn arcan registry serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                panic!("arcan registry serve did not start; its log:\n{log}")
            });
        let tokens = std::fs::read_to_string(dir.join("publisher-tokens")).expect("tokens");
        let token = tokens
            .split_whitespace()
            .next()
            .expect("a token")
            .to_owned();
        Self {
            child: Some(child),
            dir,
            base,
            token,
        }
    }

    /// The CA clients must trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// Runs `arcan <args>` with the registry, its CA and `plugins_dir` in the environment.
    /// Returns (success, stdout, stderr).
    pub fn cli(&self, plugins_dir: &Path, args: &[&str]) -> (bool, String, String) {
        let home = plugins_dir.parent().unwrap_or(plugins_dir);
        let out = Command::new(arcan_bin())
            .args(args)
            .env("HOME", home)
            .env("ARCAN_REGISTRY", &self.base)
            .env("ARCAN_REGISTRY_CA", self.ca())
            .env("ARCAN_PLUGINS_DIR", plugins_dir)
            .env_remove("ARCAN_TRUSTED_KEYS")
            .env_remove("ARCAN_PUBLISHER_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run arcan");
        let out = crate::output_within(out, 120, &format!("arcan {args:?}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Registry::cli`], asserting success; returns stdout.
    pub fn ok(&self, plugins_dir: &Path, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(plugins_dir, args);
        assert!(ok, "arcan {args:?} failed:\n{out}\n{err}");
        out
    }

    /// Like [`Registry::cli`], asserting failure; returns stderr.
    pub fn fails(&self, plugins_dir: &Path, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(plugins_dir, args);
        assert!(!ok, "arcan {args:?} should have failed:\n{out}\n{err}");
        err
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
