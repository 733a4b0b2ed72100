//! Runs the real `arcan` CLI against a test server, with its own `HOME` (so its credentials
//! file is the test's) and the server's address and CA in the environment.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Server, arcan_bin, output_within};

/// The CLI of one test: `arcan` with `HOME` = `home`, `ARCAN_ADDR` and `ARCAN_CACERT` of `s`,
/// and no inherited `ARCAN_TOKEN`.
pub struct Cli<'a> {
    /// The server it talks to.
    pub s: &'a Server,
    /// Its `HOME` (the credentials file is `home/.arcan/credentials.json`).
    pub home: PathBuf,
}

impl<'a> Cli<'a> {
    /// A CLI whose `HOME` is a fresh `cli-home` in the server's directory.
    pub fn new(s: &'a Server) -> Self {
        let home = s.dir.join("cli-home");
        std::fs::create_dir_all(&home).expect("home");
        Self { s, home }
    }

    /// Where `arcan login` saves the token.
    pub fn credentials(&self) -> PathBuf {
        self.home.join(".arcan/credentials.json")
    }

    /// Runs the CLI; returns whether it exited 0, its stdout and stderr.
    pub fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        token: Option<&str>,
    ) -> (bool, String, String) {
        let (code, out, err) = self.run_code(args, stdin, token);
        (code == Some(0), out, err)
    }

    /// Runs the CLI (at most 60 s); returns its exit code, stdout and stderr. `token` is
    /// given as `ARCAN_TOKEN`; without it the CLI uses its saved credentials, if any.
    pub fn run_code(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        token: Option<&str>,
    ) -> (Option<i32>, String, String) {
        let mut cmd = Command::new(arcan_bin());
        cmd.args(args)
            .env("HOME", &self.home)
            .env("ARCAN_ADDR", &self.s.base)
            .env("ARCAN_CACERT", self.s.dir.join("tls/ca.pem"))
            .env_remove("ARCAN_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("ARCAN_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("spawn cli");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(child.stdin.take());
        let out = output_within(child, 60, &format!("arcan {args:?}"));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the CLI, failing the test unless it exits 0; returns its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str], stdin: Option<&str>, token: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin, token);
        assert!(ok, "arcan {args:?} failed: {err}");
        out
    }
}
