//! End-to-end test harness: starts the real `arcan` binary on an ephemeral port with TLS
//! and talks HTTPS to it, trusting only the CA the server generated.
//!
//! Backends: SQLite (a file in a temporary data dir) and PostgreSQL (a fresh database per
//! server on `ARCAN_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`). A
//! missing PostgreSQL is a failure with instructions, never a skip.

pub mod cli;
pub mod faults;
pub mod k8s;
pub mod machine;
pub mod moto;
pub mod oidc;
pub mod receivers;
pub mod registry;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};

/// Which store the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The `arcan` binary under test.
pub fn arcan_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ARCAN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("arcan");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p arcan` (or set ARCAN_BIN)",
        bin.display()
    );
    bin
}

/// The Python of the reference clients' virtualenv (`kubernetes`, `PyJWT`), which
/// `scripts/test` creates; a missing one is a failure that says how to make it.
pub fn reference_python() -> String {
    let py = std::env::var("ARCAN_TEST_K8S_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/arcan-py-k8s/bin/python".to_owned());
    let ok = Command::new(&py)
        .args(["-c", "import kubernetes, jwt"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the reference Python clients are missing at {py}: run scripts/test, or \
         `python3 -m venv /var/tmp/arcan-py-k8s && /var/tmp/arcan-py-k8s/bin/pip install \
         kubernetes==37.0.2 'PyJWT[crypto]==2.10.1'` (or set ARCAN_TEST_K8S_PYTHON)"
    );
    py
}

/// The admin URL of the test PostgreSQL.
pub fn pg_url() -> String {
    std::env::var("ARCAN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{db}")
}

async fn pg_admin(sql: &str) {
    use sqlx::Connection;
    let url = pg_url();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}. Start it (the test command `./scripts/test` \
             starts a local cluster when none answers) or set ARCAN_TEST_PG_URL."
        )
    });
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// Data directory.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// Root token.
    pub root: String,
    /// HTTPS client trusting the server's CA.
    pub http: reqwest::Client,
    /// Store backend.
    pub backend: Backend,
    /// PostgreSQL database URL (Postgres backend).
    pub db_url: Option<String>,
    pg_db: Option<String>,
    config: String,
    /// Started with `--dev` (open registration, root token written to the data dir).
    dev: bool,
    env: Vec<(String, String)>,
}

/// Rate limits high enough not to disturb functional tests.
pub const RELAXED: &str = "rate_limit:\n  per_ip: 100000\n  per_token: 100000\n";

impl Server {
    /// Starts a server with relaxed rate limits.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, RELAXED).await
    }

    /// Starts a server with the given YAML config.
    pub async fn start_with(backend: Backend, config: &str) -> Self {
        Self::start_in(backend, config, Self::fresh_dir()).await
    }

    /// Starts a server with the given YAML config and extra environment variables.
    pub async fn start_with_env(backend: Backend, config: &str, env: &[(&str, &str)]) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_mode(backend, config, Self::fresh_dir(), env, true).await
    }

    /// A new empty data directory.
    pub fn fresh_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("arcan-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// Starts a server on a prepared data directory. The client trusts `<dir>/tls/ca.pem`.
    pub async fn start_in(backend: Backend, config: &str, dir: PathBuf) -> Self {
        Self::start_mode(backend, config, dir, Vec::new(), true).await
    }

    /// Starts a server WITHOUT `--dev`, as in production: registration is closed by
    /// default and the root token is only printed once on stdout (read from there).
    pub async fn start_production(backend: Backend, config: &str) -> Self {
        Self::start_mode(backend, config, Self::fresh_dir(), Vec::new(), false).await
    }

    async fn start_mode(
        backend: Backend,
        config: &str,
        dir: PathBuf,
        env: Vec<(String, String)>,
        dev: bool,
    ) -> Self {
        let (db_url, pg_db) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let name = format!("arcan_e2e_{}", uuid::Uuid::new_v4().simple());
                pg_admin(&format!("CREATE DATABASE {name}")).await;
                (Some(with_db(&pg_url(), &name)), Some(name))
            }
        };
        let mut s = Self {
            child: None,
            dir,
            base: String::new(),
            root: String::new(),
            http: reqwest::Client::new(),
            backend,
            db_url,
            pg_db,
            config: config.to_owned(),
            env,
            dev,
        };
        s.launch().await;
        s.root = if dev {
            std::fs::read_to_string(s.dir.join("root-token")).expect("root token file")
        } else {
            s.stdout()
                .lines()
                .find_map(|l| l.strip_prefix("Root token: ").map(str::to_owned))
                .expect("the first start prints the root token on stdout")
        };
        s
    }

    /// Starts a second node on the same PostgreSQL database and master key (its own data
    /// directory and TLS material).
    pub async fn join(&self) -> Server {
        assert!(
            self.db_url.is_some(),
            "only PostgreSQL deployments have several nodes"
        );
        let dir = Self::fresh_dir();
        std::fs::copy(self.dir.join("master.key"), dir.join("master.key"))
            .expect("copy master key");
        let mut s = Self {
            child: None,
            dir,
            base: String::new(),
            root: self.root.clone(),
            http: reqwest::Client::new(),
            backend: self.backend,
            db_url: self.db_url.clone(),
            pg_db: None,
            config: self.config.clone(),
            env: self.env.clone(),
            dev: self.dev,
        };
        s.launch().await;
        s
    }

    async fn launch(&mut self) {
        let cfg = self.dir.join("config.yaml");
        std::fs::write(&cfg, &self.config).expect("config");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let mut cmd = Command::new(arcan_bin());
        cmd.arg("server")
            .args(self.dev.then_some("--dev"))
            .args(["--port", "0", "--log-format", "json"])
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&self.dir)
            .env("HOME", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(url) = &self.db_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd.spawn().expect("spawn arcan");
        let stdout = child.stdout.take().expect("stdout");
        // What this launch printed on stdout (the root token goes there, not to the log).
        let mut out = std::fs::File::create(self.dir.join("stdout.log")).expect("stdout file");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("arcan did not start; its log:\n{log}")
            });
        self.child = Some(child);
        self.base = addr;
        let ca = std::fs::read(self.dir.join("tls/ca.pem")).expect("ca.pem");
        self.http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
            .build()
            .expect("client");
    }

    /// Kills the server (SIGKILL) and starts it again on the same data.
    pub async fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.launch().await;
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Waits (at most 30 s, then fails with the log) for the server to exit; returns
    /// whether it exited cleanly.
    pub fn wait_exit(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match c.try_wait().expect("wait for arcan") {
                Some(status) => return status.success(),
                None if std::time::Instant::now() >= deadline => {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "arcan did not exit within 30 s of being asked to; its log:\n{}",
                        self.log()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Sends SIGTERM and waits for exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        self.signal_term();
        self.wait_exit()
    }

    /// Server log so far (stderr, across launches).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// What the latest launch printed on stdout (the root token on first start).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// Sends a request; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Creates a realm as root.
    pub async fn realm(&self, slug: &str) {
        let (s, b) = self
            .call(
                Method::POST,
                "/api/v1/realms",
                Some(&self.root),
                Some(json!({"slug": slug})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Writes a secret as root.
    pub async fn put(
        &self,
        token: &str,
        realm: &str,
        env: &str,
        key: &str,
        value: &str,
    ) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/api/v1/realms/{realm}/secrets/{key}?env={env}"),
            Some(token),
            Some(json!({"value": value})),
        )
        .await
    }

    /// Registers a user and logs in; returns (user id, token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let creds = json!({"email": email, "password": "correct horse battery"});
        let (s, u) = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(creds.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        let (s, t) = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(creds))
            .await;
        assert_eq!(s, StatusCode::OK, "{t}");
        (
            u["id"].as_str().expect("id").to_owned(),
            t["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Binds a subject to a role as root.
    pub async fn bind(&self, realm: &str, subject: &str, role: &str) {
        let (s, b) = self
            .call(
                Method::POST,
                &format!("/api/v1/realms/{realm}/bindings"),
                Some(&self.root),
                Some(json!({"subject": subject, "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Runs a statement directly against the store (to simulate tampering).
    pub async fn exec_sql(&self, sql: &str) -> u64 {
        use sqlx::Connection;
        match &self.db_url {
            None => {
                let url = format!("sqlite://{}", self.dir.join("arcan.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .expect(sql)
                    .rows_affected()
            }
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
                sqlx::query(sql)
                    .execute(&mut c)
                    .await
                    .expect(sql)
                    .rows_affected()
            }
        }
    }

    /// Polls `f` every 100 ms until it returns true or `secs` pass.
    pub async fn wait_for<F, Fut>(secs: u64, mut f: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..secs * 10 {
            if f().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Every table of the store, from its catalogue (`sqlite_master` or `pg_tables`), so a
    /// table added by a migration is covered without changing the tests.
    pub async fn store_tables(&self) -> Vec<String> {
        match &self.db_url {
            None => {
                self.query_strings(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                )
                .await
            }
            Some(_) => {
                self.query_strings(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                     ORDER BY tablename",
                )
                .await
            }
        }
    }

    /// Every byte the store holds: on SQLite the database files plus every row of every
    /// table; on PostgreSQL every row of every table as text (bytea as lower-case hex).
    pub async fn store_dump(&self) -> Vec<u8> {
        let tables = self.store_tables().await;
        assert!(
            tables.iter().any(|t| t == "secrets"),
            "the catalogue lists no `secrets` table: {tables:?}"
        );
        let mut all = Vec::new();
        match &self.db_url {
            None => {
                for f in ["arcan.db", "arcan.db-wal"] {
                    if let Ok(b) = std::fs::read(self.dir.join(f)) {
                        all.extend(b);
                    }
                }
                for t in &tables {
                    let cols = self
                        .query_strings(&format!(
                            "SELECT name FROM pragma_table_info('{t}') ORDER BY cid"
                        ))
                        .await;
                    let row = cols
                        .iter()
                        .map(|c| {
                            format!(
                                "COALESCE(CASE typeof(\"{c}\") WHEN 'blob' THEN lower(hex(\"{c}\")) \
                                 ELSE CAST(\"{c}\" AS TEXT) END, '')"
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    for line in self
                        .query_strings(&format!("SELECT {row} FROM \"{t}\""))
                        .await
                    {
                        all.push(b'\n');
                        all.extend(line.into_bytes());
                    }
                }
            }
            Some(_) => {
                // `(r.*)` is the whole row even when a column is called `r`.
                for t in &tables {
                    for line in self
                        .query_strings(&format!(
                            "SELECT COALESCE(string_agg((r.*)::text, E'\\n'), '') FROM \"{t}\" r"
                        ))
                        .await
                    {
                        all.push(b'\n');
                        all.extend(line.into_bytes());
                    }
                }
            }
        }
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(db) = &self.pg_db {
            let _ = Command::new("psql")
                .arg(pg_url())
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Collects a child's output, failing the test (and killing the child) when it has not
/// exited within `secs`: no test waits forever on a process.
pub fn output_within(child: Child, secs: u64, what: &str) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} did not exit within {secs} s (killed)")
        }
    }
}

/// Asserts that a response is the error `want` whose message contains `phrase`, so a refusal
/// for an unrelated reason (a 400 for a typo in the test, a 403 for a missing capability)
/// fails the test.
#[track_caller]
pub fn assert_refused(st: StatusCode, body: &Value, want: StatusCode, phrase: &str) {
    assert_eq!(st, want, "{body}");
    assert_eq!(body["error"]["status"], want.as_u16(), "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(phrase),
        "expected a message containing {phrase:?}, got {body}"
    );
}

/// True when `haystack` contains `needle`, as bytes or as lower-case hex (PostgreSQL bytea).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let find = |n: &[u8]| haystack.windows(n.len()).any(|w| w == n);
    find(needle.as_bytes()) || find(hex.as_bytes())
}

/// Runs an async test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Where `scripts/build-plugins` put the test plugins (`ARCAN_TEST_PLUGINS`).
pub fn plugins_dir() -> PathBuf {
    let dir = std::env::var("ARCAN_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .unwrap_or_else(|_| "/var/tmp/arcan-target".into());
            PathBuf::from(target).join("plugins-out")
        });
    assert!(
        dir.join("probe/engine.wasm").is_file(),
        "test plugins not found in {}: build them with `scripts/build-plugins` (the test command \
         `./scripts/test` does) or set ARCAN_TEST_PLUGINS",
        dir.display()
    );
    dir
}

/// Server config with the test plugins installed (unsigned: the development override is
/// on; signed packages are tested in `tests/registry.rs`), a shared compiled-code cache and
/// a 2 s call deadline (1 s per host call); `extra` is appended (other top-level sections).
pub fn plugin_config(extra: &str) -> String {
    let cache = std::env::temp_dir().join("arcan-test-plugin-cache");
    format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  call_timeout: 2s\n  host_call_timeout: 1s\n  allow_unsigned: true\n{extra}",
        plugins_dir().display(),
        cache.display()
    )
}

impl Server {
    /// Mounts `plugin` at `name` in `realm` as root.
    pub async fn mount(
        &self,
        realm: &str,
        name: &str,
        plugin: &str,
        grants: &[&str],
        connections: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/realms/{realm}/engines"),
            Some(&self.root),
            Some(json!({"name": name, "plugin": plugin, "grants": grants, "connections": connections})),
        )
        .await
    }

    /// Creates a role on a mount as root; panics unless it succeeds.
    pub async fn engine_role(&self, realm: &str, mount: &str, role: &str, body: Value) {
        let (s, b) = self
            .call(
                Method::PUT,
                &format!("/api/v1/realms/{realm}/engines/{mount}/roles/{role}"),
                Some(&self.root),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    /// Requests a credential as root.
    pub async fn creds(
        &self,
        realm: &str,
        mount: &str,
        role: &str,
        ttl: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/realms/{realm}/engines/{mount}/creds/{role}"),
            Some(&self.root),
            Some(json!({ "ttl": ttl })),
        )
        .await
    }

    /// A lease as root.
    pub async fn lease(&self, realm: &str, id: &str) -> Value {
        let (s, b) = self
            .get(&format!("/api/v1/realms/{realm}/leases/{id}"), &self.root)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }
}

impl Server {
    /// Runs a query directly against the store and returns the first column of every row
    /// as text (e.g. `SELECT body FROM audit_events WHERE …`).
    pub async fn query_strings(&self, sql: &str) -> Vec<String> {
        use sqlx::{Connection, Row};
        match &self.db_url {
            None => {
                let url = format!("sqlite://{}", self.dir.join("arcan.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query(sql)
                    .fetch_all(&mut c)
                    .await
                    .expect(sql)
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
                sqlx::query(sql)
                    .fetch_all(&mut c)
                    .await
                    .expect(sql)
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
        }
    }
}

/// A response with the headers the abuse tests look at.
#[derive(Debug)]
pub struct Raw {
    /// Status.
    pub status: StatusCode,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// JSON body (or the text as a JSON string).
    pub body: Value,
}

/// Sends a request with an optional bearer and an optional `X-Forwarded-For`.
pub async fn raw(
    s: &Server,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    xff: Option<&str>,
    body: Option<Value>,
) -> Raw {
    let mut req = s.http.request(method, format!("{}{path}", s.base));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Raw {
        status,
        retry_after,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::contains;

    /// The no-plaintext checks rest on this helper: it must find a leaked value whether the
    /// store kept it as text or as PostgreSQL's hex rendering of bytea, and nothing else.
    #[test]
    fn contains_finds_a_leaked_value_as_text_and_as_hex() {
        let leaked = "LEAKED-7f3a";
        let text = format!("row 1,{leaked},x").into_bytes();
        let hex: String = leaked.bytes().map(|b| format!("{b:02x}")).collect();
        let bytea = format!("(1,\\x00{hex}00)").into_bytes();
        assert!(contains(&text, leaked));
        assert!(contains(&bytea, leaked));
        assert!(!contains(&text, "LEAKED-7f3b"));
        assert!(!contains(&bytea, "LEAKED-7f3b"));
        assert!(!contains(b"", leaked));
    }
}
