//! `arcan auth method|role …` (machine-identity auth methods and their login roles, global
//! `auth:manage`) and the machine form of `arcan login` (`--method`).
//!
//! JSON arguments are either inline JSON or `@FILE`; both are parsed before any request, so
//! a typo never reaches the server.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ArgGroup;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{self, Client, q};
use super::kv::print;

/// Auth subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCmd {
    /// Auth methods: trusted JWT/OIDC issuers and Kubernetes clusters (global `auth:manage`).
    #[command(subcommand)]
    Method(MethodCmd),
    /// Login roles of an auth method: what a machine must prove, which realms it gets.
    #[command(subcommand)]
    Role(LoginRoleCmd),
}

/// The kind of an auth method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodType {
    /// JWTs of an OIDC issuer, a JWKS URL or static public keys (GitHub Actions, GitLab CI).
    Jwt,
    /// Kubernetes service-account tokens, checked with a TokenReview.
    Kubernetes,
}

impl MethodType {
    fn as_str(self) -> &'static str {
        match self {
            MethodType::Jwt => "jwt",
            MethodType::Kubernetes => "kubernetes",
        }
    }
}

/// Auth method subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MethodCmd {
    /// Enables an auth method (a jwt method with a discovery or JWKS URL fetches its keys now).
    Enable {
        /// Name: 1-32 of `a-z 0-9 _ -`.
        name: String,
        /// Kind of method.
        #[arg(long = "type", value_enum)]
        kind: MethodType,
        /// Method configuration: inline JSON or `@FILE`.
        #[arg(long, value_name = "JSON|@FILE")]
        config: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Lists auth methods.
    List,
    /// Shows an auth method (`token_reviewer_jwt` is never shown, only whether it is set).
    Read {
        /// Name.
        name: String,
    },
    /// Replaces an auth method's configuration (its type cannot change).
    Update {
        /// Name.
        name: String,
        /// The whole new configuration: inline JSON or `@FILE`.
        #[arg(long, value_name = "JSON|@FILE")]
        config: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Disables an auth method: deletes its login roles and revokes every token they minted.
    Disable {
        /// Name.
        name: String,
    },
}

/// Login role subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LoginRoleCmd {
    /// Creates or replaces a login role (grants it does not list are removed).
    Set {
        /// Auth method.
        method: String,
        /// Role name: 1-32 of `a-z 0-9 _ -`.
        role: String,
        /// Role definition (bounds, claim mappings, grants, TTLs): inline JSON or `@FILE`.
        #[arg(long, value_name = "JSON|@FILE")]
        definition: String,
        /// Adds `{"realm": REALM, "role": ROLE}` to the definition's grants (repeatable).
        #[arg(long = "grant", value_name = "REALM:ROLE", value_parser = parse_grant)]
        grants: Vec<Grant>,
        /// Default lifetime of a login token, e.g. `15m` (sets `token_ttl`).
        #[arg(long)]
        ttl: Option<String>,
        /// Longest lifetime a login may ask for, e.g. `1h` (sets `token_max_ttl`).
        #[arg(long)]
        max_ttl: Option<String>,
        /// Revoke every login token of the role (and re-arm a role whose anchor was revoked).
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// Lists the login roles of an auth method.
    List {
        /// Auth method.
        method: String,
    },
    /// Shows a login role, with its principal, anchor token and grants.
    Read {
        /// Auth method.
        method: String,
        /// Role name.
        role: String,
    },
    /// Deletes a login role and revokes every token it minted.
    Delete {
        /// Auth method.
        method: String,
        /// Role name.
        role: String,
    },
}

/// A `--grant REALM:ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Realm slug.
    pub realm: String,
    /// Built-in or custom role of that realm.
    pub role: String,
}

/// Parses `REALM:ROLE` (realm slugs and role names hold no `:`).
pub fn parse_grant(s: &str) -> Result<Grant, String> {
    match s.split_once(':') {
        Some((realm, role)) if !realm.is_empty() && !role.is_empty() && !role.contains(':') => {
            Ok(Grant {
                realm: realm.to_owned(),
                role: role.to_owned(),
            })
        }
        _ => Err(format!("`{s}` is not REALM:ROLE (e.g. acme:viewer)")),
    }
}

/// Reads a JSON argument: `@FILE` reads the file, anything else is inline JSON. The value
/// must be a JSON object; `flag` names the argument in errors.
pub fn json_arg(flag: &str, arg: &str) -> anyhow::Result<Map<String, Value>> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {path}"))?;
            (text, format!(" in {path}"))
        }
        None => (arg.to_owned(), String::new()),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{flag}: not valid JSON{from} ({e}); give inline JSON or @FILE")
    })?;
    match v {
        Value::Object(m) => Ok(m),
        other => bail!(
            "{flag}: expected a JSON object{from}, got {}",
            kind_of(&other)
        ),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A path segment: like [`q`], and `/` encoded too, so a name cannot reach another route.
fn seg(s: &str) -> String {
    q(s).replace('/', "%2F")
}

/// The body of `POST /auth/methods`.
fn enable_body(
    name: &str,
    kind: MethodType,
    config: Map<String, Value>,
    description: Option<String>,
) -> Value {
    let mut body = json!({"name": name, "type": kind.as_str(), "config": config});
    if let Some(d) = description {
        body["description"] = d.into();
    }
    body
}

/// The body of `PUT /auth/methods/{name}`.
fn update_body(config: Map<String, Value>, description: Option<String>) -> Value {
    let mut body = json!({ "config": config });
    if let Some(d) = description {
        body["description"] = d.into();
    }
    body
}

/// The body of `PUT /auth/methods/{m}/roles/{r}`: the definition with the flags applied
/// (`--grant` appends to `grants`; `--ttl`, `--max-ttl`, `--revoke-tokens` override the keys
/// they set).
fn role_body(
    mut definition: Map<String, Value>,
    grants: &[Grant],
    ttl: Option<String>,
    max_ttl: Option<String>,
    revoke_tokens: bool,
) -> anyhow::Result<Value> {
    if !grants.is_empty() {
        let list = definition
            .entry("grants")
            .or_insert_with(|| Value::Array(Vec::new()));
        if list.is_null() {
            *list = Value::Array(Vec::new());
        }
        let Value::Array(list) = list else {
            bail!(
                "--definition: `grants` must be a list, got {}",
                kind_of(list)
            );
        };
        list.extend(
            grants
                .iter()
                .map(|g| json!({"realm": g.realm, "role": g.role})),
        );
    }
    if let Some(t) = ttl {
        definition.insert("token_ttl".into(), t.into());
    }
    if let Some(t) = max_ttl {
        definition.insert("token_max_ttl".into(), t.into());
    }
    if revoke_tokens {
        definition.insert("revoke_tokens".into(), true.into());
    }
    Ok(Value::Object(definition))
}

/// Runs an `arcan auth` subcommand.
pub(super) async fn run(c: &Client, cmd: AuthCmd) -> anyhow::Result<()> {
    let base = "/api/v1/auth/methods";
    let v = match cmd {
        AuthCmd::Method(MethodCmd::Enable {
            name,
            kind,
            config,
            description,
        }) => {
            let body = enable_body(&name, kind, json_arg("--config", &config)?, description);
            c.call(Method::POST, base, Some(&body)).await?
        }
        AuthCmd::Method(MethodCmd::List) => c.get(base).await?,
        AuthCmd::Method(MethodCmd::Read { name }) => {
            c.get(&format!("{base}/{}", seg(&name))).await?
        }
        AuthCmd::Method(MethodCmd::Update {
            name,
            config,
            description,
        }) => {
            let body = update_body(json_arg("--config", &config)?, description);
            c.call(Method::PUT, &format!("{base}/{}", seg(&name)), Some(&body))
                .await?
        }
        AuthCmd::Method(MethodCmd::Disable { name }) => {
            c.call(Method::DELETE, &format!("{base}/{}", seg(&name)), None)
                .await?;
            json!({ "disabled": name })
        }
        AuthCmd::Role(LoginRoleCmd::Set {
            method,
            role,
            definition,
            grants,
            ttl,
            max_ttl,
            revoke_tokens,
        }) => {
            let body = role_body(
                json_arg("--definition", &definition)?,
                &grants,
                ttl,
                max_ttl,
                revoke_tokens,
            )?;
            c.call(
                Method::PUT,
                &format!("{base}/{}/roles/{}", seg(&method), seg(&role)),
                Some(&body),
            )
            .await?
        }
        AuthCmd::Role(LoginRoleCmd::List { method }) => {
            c.get(&format!("{base}/{}/roles", seg(&method))).await?
        }
        AuthCmd::Role(LoginRoleCmd::Read { method, role }) => {
            c.get(&format!("{base}/{}/roles/{}", seg(&method), seg(&role)))
                .await?
        }
        AuthCmd::Role(LoginRoleCmd::Delete { method, role }) => {
            c.call(
                Method::DELETE,
                &format!("{base}/{}/roles/{}", seg(&method), seg(&role)),
                None,
            )
            .await?;
            json!({"method": method, "deleted": role})
        }
    };
    print(&v)
}

/// Flags of `arcan login`: a password login (`--email`) or a machine login (`--method`).
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("jwt_source").args(["jwt_file", "jwt"])))]
pub struct LoginArgs {
    /// Email (password login).
    #[arg(long, required_unless_present = "method", conflicts_with = "method")]
    pub email: Option<String>,
    /// Read the password from standard input instead of prompting.
    #[arg(long, conflicts_with = "method")]
    pub password_stdin: bool,
    /// Machine login with this auth method (needs --role and --jwt-file or --jwt -; never
    /// prompts).
    #[arg(long, requires_all = ["role", "jwt_source"])]
    pub method: Option<String>,
    /// Machine login: the login role of the method.
    #[arg(long, requires = "method")]
    pub role: Option<String>,
    /// Machine login: read the JWT (or service-account token) from this file.
    #[arg(long, value_name = "FILE", requires = "method")]
    pub jwt_file: Option<PathBuf>,
    /// Machine login: `-` reads the JWT from standard input.
    #[arg(long, value_name = "-", value_parser = StdinOnly, requires = "method")]
    pub jwt: Option<String>,
    /// Machine login: lifetime of the token, e.g. `15m` (default: the role's `token_ttl`).
    #[arg(long, requires = "method")]
    pub ttl: Option<String>,
    /// Machine login: print only the token on standard output and save nothing.
    #[arg(long, requires = "method")]
    pub print_token: bool,
}

/// `--jwt` takes only `-`: a JWT given as an argument would show in the process list. The
/// refusal does not repeat the value (clap's usual "invalid value '…'" would print the JWT
/// into a CI log).
#[derive(Debug, Clone, Copy)]
struct StdinOnly;

impl clap::builder::TypedValueParser for StdinOnly {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        if value == "-" {
            return Ok("-".to_owned());
        }
        Err(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            "--jwt: only `-` (read the JWT from standard input) is accepted; use --jwt-file FILE \
             for a file\n",
        )
        .with_cmd(cmd))
    }
}

/// The JWT of a machine login: the file's or standard input's content, whitespace trimmed.
fn read_jwt(file: Option<&Path>) -> anyhow::Result<String> {
    let (text, from) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("--jwt-file: reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("--jwt -: standard input is a terminal; pipe the JWT in");
            }
            let mut s = String::new();
            stdin
                .lock()
                .read_to_string(&mut s)
                .context("--jwt -: reading standard input")?;
            (s, "standard input".to_owned())
        }
    };
    let jwt = text.trim();
    if jwt.is_empty() {
        bail!("no JWT in {from}");
    }
    Ok(jwt.to_owned())
}

/// The body of `POST /auth/methods/{name}/login`.
fn login_body(role: &str, jwt: &str, ttl: Option<&str>) -> Value {
    let mut body = json!({"role": role, "jwt": jwt});
    if let Some(t) = ttl {
        body["ttl"] = t.into();
    }
    body
}

/// `arcan login --method …`: exchanges a JWT for an Arcan token; prints it (`--print-token`)
/// or saves it like a password login.
pub(super) async fn machine_login(c: &Client, args: LoginArgs) -> anyhow::Result<()> {
    let (Some(method), Some(role)) = (args.method, args.role) else {
        bail!("--method and --role are required for a machine login");
    };
    let jwt = match (&args.jwt_file, &args.jwt) {
        (Some(file), _) => read_jwt(Some(file))?,
        (None, Some(_)) => read_jwt(None)?,
        (None, None) => bail!("--jwt-file FILE or --jwt - is required with --method"),
    };
    let r = c
        .call(
            Method::POST,
            &format!("/api/v1/auth/methods/{}/login", seg(&method)),
            Some(&login_body(&role, &jwt, args.ttl.as_deref())),
        )
        .await?;
    let Some(token) = r["token"].as_str().filter(|t| !t.is_empty()) else {
        bail!("the server answered without a token");
    };
    if args.print_token {
        println!("{token}");
        return Ok(());
    }
    let path = client::save_credentials(&client::Credentials {
        addr: c.addr().to_owned(),
        token: token.to_owned(),
    })?;
    let realms: Vec<&str> = r["realms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "logged in as auth:{method}/{role} (realms: {}); token saved to {} (expires {})",
        realms.join(", "),
        path.display(),
        r["expires_at"].as_str().unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::{Cli, Cmd};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("arcan").chain(args.iter().copied()))
    }

    fn login(args: &[&str]) -> Result<LoginArgs, clap::Error> {
        let mut all = vec!["login"];
        all.extend_from_slice(args);
        match parse(&all)?.cmd {
            Cmd::Login(a) => Ok(a),
            other => panic!("not a login: {other:?}"),
        }
    }

    fn kind(r: Result<impl std::fmt::Debug, clap::Error>) -> ErrorKind {
        r.expect_err("must be refused").kind()
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let login = cmd.find_subcommand("login").expect("login");
        let about = login.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(about.starts_with("Logs in (with a password"), "{about}");
    }

    #[test]
    fn grants_are_realm_colon_role() {
        assert_eq!(
            parse_grant("acme:viewer"),
            Ok(Grant {
                realm: "acme".into(),
                role: "viewer".into()
            })
        );
        for bad in ["acme", "acme:", ":viewer", "", "a:b:c", ":"] {
            assert!(parse_grant(bad).is_err(), "{bad}");
        }
        // Through clap, before any request.
        let e = parse(&[
            "auth",
            "role",
            "set",
            "github",
            "deploy",
            "--definition",
            "{}",
            "--grant",
            "acme",
        ])
        .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("REALM:ROLE"), "{e}");
    }

    #[test]
    fn json_arguments_are_inline_or_at_file() {
        let m = json_arg("--config", r#"{"jwks_url":"https://x"}"#).expect("inline");
        assert_eq!(m["jwks_url"], "https://x");

        let dir = std::env::temp_dir().join(format!("arcan-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.json");
        std::fs::write(&file, "{\"audience\": \"arcan\"}\n").expect("write");
        let m = json_arg("--config", &format!("@{}", file.display())).expect("file");
        assert_eq!(m["audience"], "arcan");

        std::fs::write(&file, "{not json").expect("write");
        let e = json_arg("--config", &format!("@{}", file.display()))
            .expect_err("invalid")
            .to_string();
        assert!(e.starts_with("--config: not valid JSON in "), "{e}");

        let e = json_arg("--config", "@/nonexistent/arcan.json")
            .expect_err("missing")
            .to_string();
        assert!(
            e.contains("--config: reading /nonexistent/arcan.json"),
            "{e}"
        );

        let e = json_arg("--definition", "{\"a\":").expect_err("invalid");
        assert!(
            e.to_string().starts_with("--definition: not valid JSON ("),
            "{e}"
        );
        let e = json_arg("--definition", "[1]").expect_err("array");
        assert_eq!(
            e.to_string(),
            "--definition: expected a JSON object, got an array"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn role_flags_extend_the_definition() {
        let def = json_arg(
            "--definition",
            r#"{"bound_claims":{"repository":"acme/api"},"grants":[{"realm":"acme","capabilities":["secrets:read"]}],"token_ttl":"1h"}"#,
        )
        .expect("def");
        let grants = [parse_grant("beta:viewer").expect("grant")];
        let body =
            role_body(def, &grants, Some("15m".into()), Some("2h".into()), true).expect("body");
        assert_eq!(
            body,
            json!({
                "bound_claims": {"repository": "acme/api"},
                "grants": [
                    {"realm": "acme", "capabilities": ["secrets:read"]},
                    {"realm": "beta", "role": "viewer"},
                ],
                "token_ttl": "15m",
                "token_max_ttl": "2h",
                "revoke_tokens": true,
            })
        );

        // Without flags the definition is sent as written.
        let def = json_arg("--definition", r#"{"bound_subject":"x"}"#).expect("def");
        assert_eq!(
            role_body(def, &[], None, None, false).expect("body"),
            json!({"bound_subject": "x"})
        );
        // A missing or null `grants` becomes the list of --grant.
        let def = json_arg("--definition", r#"{"grants":null}"#).expect("def");
        assert_eq!(
            role_body(def, &grants, None, None, false).expect("body"),
            json!({"grants": [{"realm": "beta", "role": "viewer"}]})
        );
        let def = json_arg("--definition", r#"{"grants":{"realm":"acme"}}"#).expect("def");
        let e = role_body(def, &grants, None, None, false).expect_err("not a list");
        assert_eq!(
            e.to_string(),
            "--definition: `grants` must be a list, got an object"
        );
    }

    #[test]
    fn method_bodies() {
        let config = json_arg("--config", r#"{"kubernetes_host":"https://k"}"#).expect("c");
        assert_eq!(
            enable_body("k8s", MethodType::Kubernetes, config.clone(), None),
            json!({"name": "k8s", "type": "kubernetes", "config": {"kubernetes_host": "https://k"}})
        );
        assert_eq!(
            update_body(config, Some("prod".into())),
            json!({"config": {"kubernetes_host": "https://k"}, "description": "prod"})
        );
        assert_eq!(
            login_body("deploy", "a.b.c", Some("15m")),
            json!({"role": "deploy", "jwt": "a.b.c", "ttl": "15m"})
        );
        assert_eq!(
            login_body("deploy", "a.b.c", None),
            json!({"role": "deploy", "jwt": "a.b.c"})
        );
        assert_eq!(seg("a/roles"), "a%2Froles");
        assert_eq!(seg("github"), "github");
    }

    #[test]
    fn method_commands_parse() {
        let cli = parse(&[
            "auth", "method", "enable", "github", "--type", "jwt", "--config", "{}",
        ])
        .expect("enable");
        assert!(matches!(
            cli.cmd,
            Cmd::Auth(AuthCmd::Method(MethodCmd::Enable {
                kind: MethodType::Jwt,
                ..
            }))
        ));
        assert_eq!(
            kind(parse(&[
                "auth", "method", "enable", "x", "--type", "oidc", "--config", "{}"
            ])),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(parse(&["auth", "method", "enable", "x", "--config", "{}"])),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(parse(&["auth", "method", "update", "x"])),
            ErrorKind::MissingRequiredArgument
        );
        let cli = parse(&[
            "auth",
            "role",
            "set",
            "github",
            "deploy",
            "--definition",
            "@role.json",
            "--grant",
            "acme:viewer",
            "--grant",
            "beta:member",
            "--ttl",
            "15m",
            "--max-ttl",
            "1h",
            "--revoke-tokens",
        ])
        .expect("role set");
        let Cmd::Auth(AuthCmd::Role(LoginRoleCmd::Set {
            grants,
            revoke_tokens,
            ..
        })) = cli.cmd
        else {
            panic!("not a role set");
        };
        assert_eq!(grants.len(), 2);
        assert!(revoke_tokens);
    }

    #[test]
    fn password_login_is_unchanged() {
        let a = login(&["--email", "a@example.com", "--password-stdin"]).expect("password");
        assert_eq!(a.email.as_deref(), Some("a@example.com"));
        assert!(a.password_stdin && a.method.is_none());
        assert_eq!(kind(login(&[])), ErrorKind::MissingRequiredArgument);
        // Machine-only flags need --method.
        for extra in [
            ["--role", "deploy"],
            ["--jwt-file", "t"],
            ["--jwt", "-"],
            ["--ttl", "1h"],
        ] {
            let mut args = vec!["--email", "a@example.com"];
            args.extend_from_slice(&extra);
            assert!(login(&args).is_err(), "{extra:?}");
        }
        assert!(login(&["--email", "a@example.com", "--print-token"]).is_err());
    }

    #[test]
    fn machine_login_flags() {
        let a = login(&["--method", "github", "--role", "deploy", "--jwt", "-"]).expect("stdin");
        assert_eq!(a.jwt.as_deref(), Some("-"));
        assert!(!a.print_token);
        let a = login(&[
            "--method",
            "k8s",
            "--role",
            "api",
            "--jwt-file",
            "/var/run/secrets/arcan/token",
            "--ttl",
            "15m",
            "--print-token",
        ])
        .expect("file");
        assert_eq!(
            a.jwt_file.as_deref(),
            Some(Path::new("/var/run/secrets/arcan/token"))
        );
        assert!(a.print_token);
        assert_eq!(a.ttl.as_deref(), Some("15m"));

        // One JWT source is required, and only one.
        assert_eq!(
            kind(login(&["--method", "github", "--role", "deploy"])),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(login(&[
                "--method",
                "github",
                "--role",
                "deploy",
                "--jwt",
                "-",
                "--jwt-file",
                "t"
            ])),
            ErrorKind::ArgumentConflict
        );
        // --role is required.
        assert_eq!(
            kind(login(&["--method", "github", "--jwt", "-"])),
            ErrorKind::MissingRequiredArgument
        );
        // --jwt takes only `-`, and the refusal does not repeat the JWT.
        let e = login(&["--method", "github", "--role", "deploy", "--jwt", "eyJ.x.y"])
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let text = e.to_string();
        assert!(text.contains("--jwt: only `-`"), "{text}");
        assert!(!text.contains("eyJ.x.y"), "the JWT is echoed: {text}");
        // The password flags conflict with --method.
        assert_eq!(
            kind(login(&[
                "--method",
                "github",
                "--role",
                "deploy",
                "--jwt",
                "-",
                "--email",
                "a@example.com"
            ])),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(login(&[
                "--method",
                "github",
                "--role",
                "deploy",
                "--jwt",
                "-",
                "--password-stdin"
            ])),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn jwts_are_read_from_files_trimmed() {
        let dir = std::env::temp_dir().join(format!("arcan-cli-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "  eyJ.a.b\n").expect("write");
        assert_eq!(read_jwt(Some(&file)).expect("jwt"), "eyJ.a.b");
        std::fs::write(&file, "\n").expect("write");
        let e = read_jwt(Some(&file)).expect_err("empty").to_string();
        assert!(e.starts_with("no JWT in "), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
