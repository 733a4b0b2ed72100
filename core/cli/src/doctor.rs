//! `arcan doctor`: checks what a client needs to work with a server, one line per check.

use super::client::{Client, ClientOpts, load_credentials};

/// One check's outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Runs the checks; returns the process exit code (0 when all passed).
pub(super) async fn run(opts: &ClientOpts) -> i32 {
    let mut checks = Vec::new();
    let client = match Client::new(opts) {
        Ok(c) => {
            checks.push(Check {
                name: "client",
                ok: true,
                detail: format!("server address {}", c.addr()),
            });
            Some(c)
        }
        Err(e) => {
            checks.push(Check {
                name: "client",
                ok: false,
                detail: format!("{e:#}"),
            });
            None
        }
    };
    if let Some(c) = &client {
        match c.get("/health").await {
            Ok(h) => checks.push(Check {
                name: "server",
                ok: h["status"] == "ok",
                detail: format!(
                    "reachable over TLS; status {}, store {}, version {}",
                    h["status"].as_str().unwrap_or("?"),
                    h["store"].as_str().unwrap_or("?"),
                    h["version"].as_str().unwrap_or("?")
                ),
            }),
            Err(e) => checks.push(Check {
                name: "server",
                ok: false,
                detail: format!("{e:#} (check ARCAN_ADDR, and ARCAN_CACERT for a private CA)"),
            }),
        }
        let has_token = opts.token.is_some() || load_credentials().is_some();
        if has_token {
            match c.get("/api/v1/tokens/self").await {
                Ok(me) => checks.push(Check {
                    name: "token",
                    ok: true,
                    detail: format!(
                        "valid for {} until {}",
                        me["email"].as_str().unwrap_or("?"),
                        me["token"]["expires_at"].as_str().unwrap_or("?")
                    ),
                }),
                Err(e) => checks.push(Check {
                    name: "token",
                    ok: false,
                    detail: format!("{e:#} (run `arcan login`)"),
                }),
            }
        } else {
            checks.push(Check {
                name: "token",
                ok: false,
                detail: "no token: run `arcan login` or set ARCAN_TOKEN".into(),
            });
        }
    }
    let mut failed = 0;
    for c in &checks {
        println!(
            "{} {:<7} {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
        failed += usize::from(!c.ok);
    }
    i32::from(failed > 0)
}
