//! Operator-owned connections end to end: a realm admin who is no operator (any registered
//! user may create a realm) cannot point an engine at a unix socket, a metadata address or a
//! host outside `plugins.connections.allow`; operators (the allowlist, or the global
//! capability `connections:manage`) can. PostgreSQL URLs take nothing from the server's
//! environment, and a failed verification says why in a fixed phrase, never the system's
//! own error text.
//!
//! The policy does not depend on the store, so these run on SQLite.

use std::process::{Command, Stdio};

use arcan_tests::*;

const PG_GRANTS: &[&str] = &["host:sql", "host:audit"];

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `host:port` of the test PostgreSQL (`127.0.0.1:5432` unless `ARCAN_TEST_PG_URL` says).
fn pg_endpoint() -> String {
    let u = reqwest::Url::parse(&pg_url()).expect("ARCAN_TEST_PG_URL is a URL");
    format!(
        "{}:{}",
        u.host_str().expect("host"),
        u.port().unwrap_or(5432)
    )
}

/// Server config with the test plugins and `plugins.connections.allow: patterns`.
fn allowing(patterns: &[&str]) -> String {
    let list = patterns
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // `plugin_config` ends inside the `plugins:` section, so this continues it.
    plugin_config(&format!("  connections:\n    allow: [{list}]\n"))
}

/// A registered user (dev mode: open registration, `realms:manage`, no operator
/// capability) and the realm `team` it created, of which it is the admin.
async fn realm_admin(s: &Server) -> String {
    let (_, token) = s.user("alice@example.com").await;
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms",
            Some(&token),
            Some(json!({"slug": "team"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    token
}

/// Mounts `plugin` at `name` in `team` with `connections`, as `token`.
async fn mount_as(
    s: &Server,
    token: &str,
    name: &str,
    plugin: &str,
    connections: Value,
) -> (StatusCode, Value) {
    let grants: &[&str] = if plugin == "aws" {
        &["host:http"]
    } else {
        PG_GRANTS
    };
    s.call(
        Method::POST,
        "/api/v1/realms/team/engines",
        Some(token),
        Some(json!({
            "name": name, "plugin": plugin, "grants": grants,
            "config": {"connection": "db"}, "connections": connections,
        })),
    )
    .await
}

fn pg(url: &str) -> Value {
    json!({"db": {"type": "postgres", "url": url}})
}

async fn mounts(s: &Server, token: &str) -> usize {
    let (st, list) = s.get("/api/v1/realms/team/engines", token).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list["items"].as_array().map_or(0, Vec::len)
}

/// Every refusal is a 403 naming the connection and the endpoint, decided before anything
/// connects, and nothing is mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realm_admin_cannot_reach_sockets_metadata_or_unlisted_hosts() {
    // Even an allowlist that admits any host on port 80 does not admit metadata.
    let s = Server::start_with(Backend::Sqlite, &allowing(&["*:80", "127.0.0.1:5432"])).await;
    let alice = realm_admin(&s).await;
    let metadata = "is a link-local/metadata address; an operator must allowlist it in plugins.connections.allow";
    let cases = [
        (
            "postgres",
            pg("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test"),
            "connection `db`: unix:/var/run/postgresql is a unix socket; an operator must allowlist it in plugins.connections.allow".to_owned(),
        ),
        (
            "postgres",
            pg("postgres://postgres@169.254.169.254:80/test"),
            format!("connection `db`: 169.254.169.254:80 {metadata}"),
        ),
        (
            "aws",
            json!({"db": {"type": "http", "base_url": "http://169.254.169.254/latest/meta-data"}}),
            format!("connection `db`: 169.254.169.254:80 {metadata}"),
        ),
        (
            "aws",
            json!({"db": {"type": "http", "base_url": "http://iam.example:80",
                "auth": {"type": "aws_sigv4", "access_key_id": "AKIDEXAMPLE",
                    "secret_access_key": "secret", "region": "us-east-1",
                    "endpoints": {"sts": "http://metadata.google.internal/"}}}}),
            format!("connection `db`: metadata.google.internal:80 {metadata}"),
        ),
        (
            "postgres",
            pg("postgres://postgres@db.example:5432/test"),
            "connection `db`: db.example:5432 is not in plugins.connections.allow and the caller lacks the global capability `connections:manage`".to_owned(),
        ),
    ];
    for (plugin, connections, want) in cases {
        let (st, b) = mount_as(&s, &alice, "eng", plugin, connections.clone()).await;
        assert_eq!(
            (st, b["error"]["code"].clone()),
            (StatusCode::FORBIDDEN, json!("connection_refused")),
            "{connections}: {b}"
        );
        assert_eq!(message(&b), want, "{connections}");
    }
    // Not verifying connections does not skip the policy.
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/team/engines",
            Some(&alice),
            Some(json!({
                "name": "eng", "plugin": "postgres", "grants": PG_GRANTS,
                "connections": pg("postgres://postgres@db.example:5432/test"),
                "verify_connections": false,
            })),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("db.example:5432 is not in"), "{b}");
    // Holding `connections:manage` (root) does not open metadata or sockets either.
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/team/engines",
            Some(&s.root),
            Some(json!({
                "name": "eng", "plugin": "postgres", "grants": PG_GRANTS,
                "connections": pg("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test"),
            })),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("is a unix socket"), "{b}");
    assert_eq!(mounts(&s, &alice).await, 1, "only the built-in kv");
}

/// Drops the roles a test's engine created (their names start with the prefix).
struct Users(String);

impl Drop for Users {
    fn drop(&mut self) {
        let sql = format!(
            "DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{}') LOOP
                 EXECUTE format('DROP ROLE %I', r.rolname);
               END LOOP;
             END $$;",
            self.0
        );
        let _ = Command::new("psql")
            .arg(pg_url())
            .args(["-q", "-c", &sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Operators admit connections: root (a superuser holds `connections:manage`) mounts the
/// test PostgreSQL and the engine works; the realm admin succeeds once the server
/// allowlists the endpoint, and an allowlisted socket directory lets a unix socket through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_admit_connections() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    let alice = realm_admin(&s).await;
    let users = Users(format!(
        "c{}_",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let (st, b) = mount_as(&s, &alice, "pg", "postgres", pg(&pg_url())).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "no allowlist, no capability: {b}"
    );
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/realms/team/engines",
            Some(&s.root),
            Some(json!({
                "name": "pg", "plugin": "postgres", "grants": PG_GRANTS,
                "config": {"connection": "db", "username_prefix": users.0},
                "connections": pg(&pg_url()),
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    s.engine_role("team", "pg", "ro", json!({"definition": {}}))
        .await;
    let (st, c) = s.creds("team", "pg", "ro", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let (st, l) = s
        .call(
            Method::POST,
            "/api/v1/realms/team/leases/revoke",
            Some(&s.root),
            Some(json!({"lease_id": c["lease_id"]})),
        )
        .await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    drop(s);

    let s = Server::start_with(Backend::Sqlite, &allowing(&[&pg_endpoint()])).await;
    let alice = realm_admin(&s).await;
    let (st, m) = mount_as(&s, &alice, "pg", "postgres", pg(&pg_url())).await;
    assert_eq!(st, StatusCode::CREATED, "allowlisted: {m}");
    drop(s);

    let s = Server::start_with(Backend::Sqlite, &allowing(&["unix:/var/run/postgresql"])).await;
    let alice = realm_admin(&s).await;
    let socket = "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test";
    let (st, m) = mount_as(&s, &alice, "pg", "postgres", pg(socket)).await;
    assert_eq!(st, StatusCode::CREATED, "allowlisted socket directory: {m}");
    assert_eq!(m["connections"]["db"]["type"], "postgres", "{m}");
}

/// The URL names a user and a database; the only query parameter is `sslmode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_or_overriding_urls_are_refused() {
    let s = Server::start_with(Backend::Sqlite, &allowing(&["127.0.0.1:5432"])).await;
    let alice = realm_admin(&s).await;
    for (url, want) in [
        (
            "postgres://127.0.0.1:5432/test",
            "postgres url must name a user",
        ),
        (
            "postgres://postgres@127.0.0.1:5432",
            "postgres url must name a database",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/test?host=/var/run/postgresql",
            "query parameter `host` is not allowed",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/test?sslrootcert=/etc/ssl/evil.pem",
            "query parameter `sslrootcert` is not allowed",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/test?sslmode=bogus",
            "sslmode must be disable, prefer, require, verify-ca or verify-full",
        ),
    ] {
        for token in [alice.as_str(), s.root.as_str()] {
            let (st, b) = mount_as(&s, token, "pg", "postgres", pg(url)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{url}: {b}");
            assert!(message(&b).contains(want), "{url}: {b}");
        }
    }
    assert_eq!(mounts(&s, &alice).await, 1);
}

/// A verification that fails says why in a fixed phrase, never the system's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_verification_is_a_fixed_phrase() {
    let s = Server::start_with(Backend::Sqlite, &allowing(&["127.0.0.1:1"])).await;
    let alice = realm_admin(&s).await;
    let (st, b) = mount_as(
        &s,
        &alice,
        "pg",
        "postgres",
        pg("postgres://postgres:secret-pw@127.0.0.1:1/test"),
    )
    .await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("connection_failed")),
        "{b}"
    );
    assert_eq!(message(&b), "could not connect to db (connection refused)");
    let text = b.to_string();
    for raw in ["os error", "Connection refused (os error", "secret-pw"] {
        assert!(!text.contains(raw), "{raw}: {b}");
    }
    // A host that does not resolve (root may name it): a fixed phrase too.
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/team/engines",
            Some(&s.root),
            Some(json!({
                "name": "pg", "plugin": "postgres", "grants": PG_GRANTS,
                "connections": pg("postgres://postgres@no-such-host.invalid:5432/test?sslmode=disable"),
            })),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    let m = message(&b);
    assert!(
        ["(host not found)", "(timed out)"]
            .iter()
            .any(|p| m == format!("could not connect to db {p}")),
        "{m}"
    );
}

/// A server whose environment sets PGPASSWORD never lends it to engine connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_environment_is_never_inherited() {
    let s =
        Server::start_with_env(Backend::Sqlite, &plugin_config(""), &[("PGPASSWORD", "x")]).await;
    s.realm("team").await;
    let (st, b) = mount_as(&s, &s.root, "pg", "postgres", pg(&pg_url())).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        message(&b),
        "connection `db`: the server's environment sets PGPASSWORD; engine connections never inherit it: unset it or put the password in the connection URL"
    );
    // A password in the URL is the connection's own (the test server trusts any).
    let mut with_password = reqwest::Url::parse(&pg_url()).expect("url");
    with_password
        .set_password(Some("own-password"))
        .expect("password");
    let (st, m) = mount_as(&s, &s.root, "pg", "postgres", pg(with_password.as_str())).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
}

/// A wildcard entry never admits this machine or metadata for a non-operator: not by
/// address, and not through a host name that resolves there (the test command maps
/// `arcan-loopback-test` to 127.0.0.1 in /etc/hosts). An operator still may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_do_not_admit_loopback_or_names_resolving_to_it() {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["127.0.0.1", "arcan-loopback-test"]),
        "/etc/hosts lacks `127.0.0.1 arcan-loopback-test` (the test command `scripts/test` adds it)"
    );
    let s = Server::start_with(Backend::Sqlite, &allowing(&["*:5432", "*:80"])).await;
    let alice = realm_admin(&s).await;
    let loopback =
        "is this machine (loopback); an operator must allowlist it in plugins.connections.allow";
    for (url, endpoint) in [
        ("postgres://postgres@127.0.0.1:5432/test", "127.0.0.1:5432"),
        ("postgres://postgres@localhost:5432/test", "localhost:5432"),
        (
            "postgres://postgres@[::ffff:127.0.0.1]:5432/test",
            "127.0.0.1:5432",
        ),
        (
            "postgres://postgres@arcan-loopback-test:5432/test",
            "arcan-loopback-test:5432",
        ),
    ] {
        let (st, b) = mount_as(&s, &alice, "eng", "postgres", pg(url)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{url}: {b}");
        assert_eq!(
            b["error"]["message"],
            format!("connection `db`: {endpoint} {loopback}"),
            "{url}"
        );
    }
    let (st, b) = mount_as(
        &s,
        &alice,
        "eng",
        "postgres",
        pg("postgres://postgres@no-such-host.invalid:5432/test"),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not resolve"),
        "{b}"
    );
    // Credentials never ride in a URL that every reader of the mount is shown.
    let (st, b) = mount_as(
        &s,
        &s.root,
        "eng",
        "aws",
        json!({"db": {"type": "http", "base_url": "http://user:pw@iam.example:80"}}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must not carry credentials"),
        "{b}"
    );
    // The operator (root holds connections:manage) may use this machine.
    let (st, b) = mount_as(
        &s,
        &s.root,
        "eng",
        "postgres",
        pg("postgres://postgres@arcan-loopback-test:5432/test?sslmode=disable"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}
