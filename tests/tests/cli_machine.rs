//! Machine-identity login through the real `arcan` CLI against a real server, on both
//! stores: `arcan auth method …` and `arcan auth role …` as root (a config given as `@FILE`,
//! JSON answers that show the method and never a secret), `arcan login --method` with the
//! JWT on standard input (`--print-token`: exactly one token on stdout, nothing saved) and
//! from a file (credentials saved 0600 and used by the next command), the token reading but
//! not writing the granted realm, the server's refusal shown on stderr with a failing exit,
//! usage and JSON errors caught before any request, and deleting the role and disabling the
//! method taking effect.

use std::os::unix::fs::PermissionsExt;

use arcan_tests::cli::Cli;
use arcan_tests::machine::*;
use arcan_tests::oidc::{TestKey, github_actions};
use arcan_tests::*;

/// An address nothing listens on: a command that reached for the network would fail with
/// "cannot reach" instead of the error it is expected to stop at.
const NOWHERE: &str = "https://127.0.0.1:1";

/// The kubernetes method's reviewer token: write-only, must never be printed.
const REVIEWER: &str = "reviewer-secret-5b9d2c7e";

fn json_out(what: &str, out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {out}"))
}

async fn machine_login_commands(b: Backend) {
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    let (st, put) = s
        .put(&s.root, "acme", "prod", "app/db-url", "postgres://db")
        .await;
    assert_eq!(st, StatusCode::OK, "{put}");
    let cli = Cli::new(&s);
    let root = Some(s.root.as_str());
    let key = TestKey::rs256("cli-key");
    let pem = spki_pem(&key.jwk);

    // 1. The method, from a config file.
    let config = s.dir.join("github-config.json");
    std::fs::write(&config, static_method(&key)["config"].to_string()).expect("config file");
    let config_arg = format!("@{}", config.display());
    let enabled = json_out(
        "enable",
        &cli.ok(
            &[
                "auth",
                "method",
                "enable",
                "github",
                "--type",
                "jwt",
                "--config",
                &config_arg,
                "--description",
                "GitHub Actions",
            ],
            None,
            root,
        ),
    );
    assert_eq!(enabled["name"], "github", "{enabled}");
    assert_eq!(enabled["type"], "jwt", "{enabled}");
    assert_eq!(enabled["description"], "GitHub Actions", "{enabled}");
    assert_eq!(
        enabled["config"]["bound_issuer"], STATIC_ISSUER,
        "{enabled}"
    );
    // A kubernetes method with a reviewer token, so that "never a secret" has one to hide.
    let ca = std::fs::read_to_string(s.dir.join("tls/ca.pem")).expect("ca");
    let k8s_config = json!({"kubernetes_host": "https://127.0.0.1:6443",
                            "kubernetes_ca_cert": ca, "token_reviewer_jwt": REVIEWER});
    let k8s = json_out(
        "enable k8s",
        &cli.ok(
            &[
                "auth",
                "method",
                "enable",
                "k8s",
                "--type",
                "kubernetes",
                "--config",
                &k8s_config.to_string(),
            ],
            None,
            root,
        ),
    );
    assert_eq!(k8s["token_reviewer_jwt_set"], true, "{k8s}");
    assert!(!k8s.to_string().contains(REVIEWER), "{k8s}");

    let list_out = cli.ok(&["auth", "method", "list"], None, root);
    assert!(
        !list_out.contains(REVIEWER),
        "the list shows a secret: {list_out}"
    );
    let list = json_out("list", &list_out);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(
        names.contains(&"github") && names.contains(&"k8s"),
        "{list}"
    );
    let read_out = cli.ok(&["auth", "method", "read", "github"], None, root);
    let read = json_out("read", &read_out);
    assert_eq!(read["name"], "github", "{read}");
    assert_eq!(read["type"], "jwt", "{read}");
    assert_eq!(
        read["config"]["jwt_validation_pubkeys"],
        json!([pem]),
        "{read}"
    );
    assert!(!read_out.contains("PRIVATE KEY"), "{read_out}");
    let k8s_out = cli.ok(&["auth", "method", "read", "k8s"], None, root);
    assert!(
        !k8s_out.contains(REVIEWER),
        "read shows the reviewer: {k8s_out}"
    );
    let k8s = json_out("read k8s", &k8s_out);
    assert_eq!(k8s["token_reviewer_jwt_set"], true, "{k8s}");
    assert!(k8s["config"].get("token_reviewer_jwt").is_none(), "{k8s}");

    // The role: bounds inline, grant and TTLs from flags.
    let definition = json!({"bound_audiences": [AUD], "bound_claims": {"repository": "acme/api"},
                            "claim_mappings": {"run_id": "run_id"}})
    .to_string();
    let set = json_out(
        "role set",
        &cli.ok(
            &[
                "auth",
                "role",
                "set",
                "github",
                "deploy",
                "--definition",
                &definition,
                "--grant",
                "acme:viewer",
                "--ttl",
                "15m",
                "--max-ttl",
                "1h",
            ],
            None,
            root,
        ),
    );
    assert_eq!(set["principal"], "auth:github/deploy", "{set}");
    let role_info = json_out(
        "role read",
        &cli.ok(&["auth", "role", "read", "github", "deploy"], None, root),
    );
    assert_eq!(role_info["method"], "github", "{role_info}");
    assert_eq!(role_info["name"], "deploy", "{role_info}");
    assert_eq!(
        role_info["grants"],
        json!([{"realm": "acme", "role": "viewer"}]),
        "{role_info}"
    );
    assert_eq!(role_info["token_ttl"], "15m", "{role_info}");
    assert_eq!(role_info["token_max_ttl"], "1h", "{role_info}");
    assert_eq!(
        role_info["definition"]["bound_claims"],
        json!({"repository": "acme/api"}),
        "{role_info}"
    );
    let roles = json_out(
        "role list",
        &cli.ok(&["auth", "role", "list", "github"], None, root),
    );
    assert_eq!(roles["items"][0]["name"], "deploy", "{roles}");

    // 2. --jwt - --print-token: one token on stdout, nothing saved.
    let (code, out, err) = cli.run_code(
        &[
            "login",
            "--method",
            "github",
            "--role",
            "deploy",
            "--jwt",
            "-",
            "--print-token",
        ],
        Some(&format!("{}\n", job(&key, "101"))),
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let printed = out.strip_suffix('\n').unwrap_or_else(|| panic!("{out:?}"));
    assert!(
        printed.starts_with("arc_") && !printed.contains(char::is_whitespace),
        "stdout is not exactly one token: {out:?}"
    );
    assert!(
        !cli.credentials().exists(),
        "--print-token saved credentials"
    );
    let kv_get = [
        "kv",
        "--realm",
        "acme",
        "--env",
        "prod",
        "get",
        "app/db-url",
    ];
    assert_eq!(cli.ok(&kv_get, None, Some(printed)).trim(), "postgres://db");
    let (code, _, err) = cli.run_code(
        &[
            "kv", "--realm", "acme", "--env", "prod", "set", "app/x", "y",
        ],
        None,
        Some(printed),
    );
    assert_eq!(code, Some(1), "a viewer's login token writes: {err}");
    assert!(err.contains("403"), "{err}");
    let (st, _) = s
        .get("/api/v1/realms/acme/secrets/app/x?env=prod", &s.root)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "the refused write happened");

    // 3. --jwt-file without --print-token: saved like a password login, used next.
    let jwt_file = s.dir.join("job.jwt");
    std::fs::write(&jwt_file, job(&key, "102")).expect("jwt file");
    let jwt_file_arg = jwt_file.display().to_string();
    let out = cli.ok(
        &[
            "login",
            "--method",
            "github",
            "--role",
            "deploy",
            "--jwt-file",
            &jwt_file_arg,
        ],
        None,
        None,
    );
    assert!(
        out.starts_with("logged in as auth:github/deploy (realms: acme); token saved to "),
        "{out}"
    );
    assert!(!out.contains("arc_"), "the token is printed: {out}");
    let creds = cli.credentials();
    assert_eq!(
        std::fs::metadata(&creds)
            .expect("credentials")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let saved = json_out(
        "credentials",
        &std::fs::read_to_string(&creds).expect("read credentials"),
    );
    let saved_token = saved["token"].as_str().expect("saved token").to_owned();
    assert!(
        saved_token.starts_with("arc_") && saved_token != printed,
        "{saved}"
    );
    assert_eq!(saved["addr"], s.base.trim_end_matches('/'), "{saved}");
    assert_eq!(cli.ok(&kv_get, None, None).trim(), "postgres://db");
    let me = json_out(
        "lookup-self",
        &cli.ok(&["token", "lookup-self"], None, None),
    );
    assert_eq!(identity(&me)["method"], "github", "{me}");
    assert_eq!(identity(&me)["role"], "deploy", "{me}");
    assert_eq!(identity(&me)["claims"]["run_id"], "102", "{me}");

    // 4. Refusals. The server's: another repository's JWT.
    let mut other = github_actions(STATIC_ISSUER, "acme/other", "refs/heads/main", AUD);
    other["run_id"] = json!("103");
    let (code, out, err) = cli.run_code(
        &[
            "login",
            "--method",
            "github",
            "--role",
            "deploy",
            "--jwt",
            "-",
            "--print-token",
        ],
        Some(&key.sign(&other)),
        None,
    );
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("403 claim `repository`: `acme/other`"),
        "not the server's message: {err}"
    );
    // Usage errors, caught by the argument parser: the address is one nothing listens on, so
    // a command that sent a request would say "cannot reach" instead.
    let usage = |args: &[&str], stdin: Option<&str>, phrase: &str| -> String {
        let mut all = vec!["--addr", NOWHERE];
        all.extend_from_slice(args);
        let (code, out, err) = cli.run_code(&all, stdin, None);
        assert_eq!(code, Some(2), "arcan {args:?}: {out} {err}");
        assert!(
            err.contains(phrase) && !err.contains("cannot reach"),
            "arcan {args:?}: {err}"
        );
        err
    };
    let jwt = job(&key, "104");
    let err = usage(
        &[
            "login", "--method", "github", "--role", "deploy", "--jwt", &jwt,
        ],
        None,
        "--jwt: only `-` (read the JWT from standard input) is accepted",
    );
    assert!(!err.contains(&jwt), "the refusal prints the JWT: {err}");
    usage(
        &[
            "login",
            "--method",
            "github",
            "--role",
            "deploy",
            "--jwt",
            "-",
            "--jwt-file",
            &jwt_file_arg,
        ],
        Some(&jwt),
        "cannot be used with",
    );
    // Invalid JSON: refused before any request, and the role stays as it was.
    let (code, out, err) = cli.run_code(
        &[
            "--addr",
            NOWHERE,
            "auth",
            "role",
            "set",
            "github",
            "deploy",
            "--definition",
            r#"{"bound_claims": {"repository": "acme/api"}"#,
        ],
        None,
        root,
    );
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(
        err.contains("--definition: not valid JSON (") && !err.contains("cannot reach"),
        "{err}"
    );
    let unchanged = json_out(
        "role read",
        &cli.ok(&["auth", "role", "read", "github", "deploy"], None, root),
    );
    assert_eq!(unchanged["token_ttl"], "15m", "{unchanged}");

    // 5. Deleting the role revokes its tokens; disabling the method removes it.
    let out = cli.ok(&["auth", "role", "delete", "github", "deploy"], None, root);
    assert_eq!(
        json_out("role delete", &out),
        json!({"method": "github", "deleted": "deploy"})
    );
    for (what, token) in [("printed", Some(printed)), ("saved", None)] {
        let (code, _, err) = cli.run_code(&kv_get, None, token);
        assert_eq!(code, Some(1), "the {what} token still works: {err}");
        assert!(err.contains("401"), "the {what} token: {err}");
    }
    let (code, _, err) = cli.run_code(
        &[
            "login",
            "--method",
            "github",
            "--role",
            "deploy",
            "--jwt",
            "-",
            "--print-token",
        ],
        Some(&job(&key, "105")),
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("400 role: no login role `deploy` in auth method `github`"),
        "{err}"
    );
    let out = cli.ok(&["auth", "method", "disable", "github"], None, root);
    assert_eq!(json_out("disable", &out), json!({"disabled": "github"}));
    let (code, out, err) = cli.run_code(&["auth", "method", "read", "github"], None, root);
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(err.contains("404 auth method not found"), "{err}");
    let left = json_out("list", &cli.ok(&["auth", "method", "list"], None, root));
    assert_eq!(left["items"].as_array().map(Vec::len), Some(1), "{left}");
    assert_eq!(left["items"][0]["name"], "k8s", "{left}");
}

both_backends!(machine_login_commands);
