//! The `postgres` sample engine end to end, against the real PostgreSQL server: issued
//! credentials log in with exactly the granted rights, revoke drops the user and ends its
//! sessions, the reaper drops expired users, renew moves `VALID UNTIL` within the max ttl,
//! revoking a user dropped by hand succeeds, root rotation, injection attempts and bad input.
//!
//! pg_hba is `trust` on the test machines, so a login alone proves little: the tests also
//! check `pg_roles` and verify the returned password against the server's SCRAM verifier.
//! Every database object a test creates has a unique name and is dropped by a guard, even
//! when the test fails.

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use arcan_tests::*;
use hmac::{Hmac, Mac};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

const GRANTS: &[&str] = &["host:sql", "host:audit"];
const REAPER: &str = "reaper:\n  interval: 1s\n  grace: 20s\n  revoke_timeout: 5s\n";

/// Unique names for one test, and the guard that drops what they name.
struct Db {
    /// Prefix of every user the engine creates for this test (`t<8 hex>_`); the guard
    /// drops every role that starts with it.
    prefix: String,
    /// A schema of this test, with tables `granted` and `secret`.
    schema: String,
    /// A group role (`NOLOGIN`) that may read `granted`.
    group: String,
}

fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn admin() -> PgConnection {
    let url = pg_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {url}: {e} (start it, or set ARCAN_TEST_PG_URL)")
    })
}

async fn exec(c: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql).execute(c).await.expect(sql);
}

impl Db {
    /// A fresh schema with a `granted` and a `secret` table, one row each.
    async fn new() -> Self {
        let id = uid();
        let db = Db {
            prefix: format!("t{}_", &id[..8]),
            schema: format!("s_{id}"),
            group: format!("s_{id}_readers"),
        };
        let (s, g) = (&db.schema, &db.group);
        exec(
            &mut admin().await,
            &format!(
                "CREATE SCHEMA {s}; CREATE TABLE {s}.granted (x int); CREATE TABLE {s}.secret (x int);
                 INSERT INTO {s}.granted VALUES (1); INSERT INTO {s}.secret VALUES (2);
                 CREATE ROLE {g} NOLOGIN; GRANT USAGE ON SCHEMA {s} TO {g};
                 GRANT SELECT ON {s}.granted TO {g};"
            ),
        )
        .await;
        db
    }

    /// Grants that let a user read `granted` and nothing else.
    fn read_grants(&self) -> Value {
        json!([
            format!("USAGE ON SCHEMA {}", self.schema),
            format!("SELECT ON {}.granted", self.schema),
        ])
    }

    /// The engine configuration: the connection `db` and this test's user prefix.
    fn config(&self) -> Value {
        json!({"connection": "db", "username_prefix": self.prefix})
    }

    /// Users the engine created for this test that still exist.
    async fn users(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)")
            .bind(&self.prefix)
            .fetch_all(&mut admin().await)
            .await
            .expect("pg_roles")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP ROLE IF EXISTS {};
             DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{}') LOOP
                 EXECUTE format('DROP OWNED BY %I', r.rolname);
                 EXECUTE format('DROP ROLE %I', r.rolname);
               END LOOP;
             END $$;",
            self.schema, self.group, self.prefix
        );
        let _ = Command::new("psql")
            .arg(pg_url())
            .args(["-q", "-c", &sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A server with the test plugins and a realm `acme`.
async fn server(extra: &str) -> Server {
    let s = Server::start_with(Backend::Sqlite, &plugin_config(extra)).await;
    s.realm("acme").await;
    s
}

/// Mounts the engine at `mount` on `url` with `config`.
async fn mount_pg(s: &Server, mount: &str, url: &str, config: Value) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/realms/acme/engines",
        Some(&s.root),
        Some(json!({
            "name": mount, "plugin": "postgres", "grants": GRANTS, "config": config,
            "connections": {"db": {"type": "postgres", "url": url}},
        })),
    )
    .await
}

async fn mounted(s: &Server, db: &Db) {
    let (st, b) = mount_pg(s, "pg", &pg_url(), db.config()).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

/// Writes a role; returns the status and body.
async fn put_role(s: &Server, mount: &str, role: &str, body: Value) -> (StatusCode, Value) {
    s.call(
        Method::PUT,
        &format!("/api/v1/realms/acme/engines/{mount}/roles/{role}"),
        Some(&s.root),
        Some(body),
    )
    .await
}

/// Issues a credential; returns (lease id, username, password).
async fn issue(s: &Server, role: &str, ttl: Option<&str>) -> (String, String, String) {
    let (st, c) = s.creds("acme", "pg", role, ttl).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let field = |k: &str| c["data"][k].as_str().expect(k).to_owned();
    (
        c["lease_id"].as_str().expect("lease_id").to_owned(),
        field("username"),
        field("password"),
    )
}

async fn lease_call(s: &Server, action: &str, body: Value) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        &format!("/api/v1/realms/acme/leases/{action}"),
        Some(&s.root),
        Some(body),
    )
    .await
}

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `(rolcanlogin, rolvaliduntil as unix seconds)` of a role, or `None` when it is gone.
async fn role_row(name: &str) -> Option<(bool, Option<f64>)> {
    sqlx::query_as(
        "SELECT rolcanlogin, extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = $1",
    )
    .bind(name)
    .fetch_optional(&mut admin().await)
    .await
    .expect("pg_roles")
}

/// Unix seconds of an RFC 3339 timestamp (parsed by PostgreSQL), or of now.
async fn epoch(at: Option<&str>) -> f64 {
    let mut c = admin().await;
    match at {
        Some(t) => sqlx::query_scalar("SELECT extract(epoch FROM $1::text::timestamptz)::float8")
            .bind(t)
            .fetch_one(&mut c)
            .await
            .expect("timestamp"),
        None => sqlx::query_scalar("SELECT extract(epoch FROM now())::float8")
            .fetch_one(&mut c)
            .await
            .expect("now"),
    }
}

/// Connects to the test database as `user` (trust auth: the password is not checked).
async fn connect_as(user: &str, password: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(&pg_url())
        .expect("pg url")
        .username(user)
        .password(password)
        .connect()
        .await
}

/// The SCRAM-SHA-256 verifier PostgreSQL stored for `role`.
struct Verifier {
    iterations: i32,
    salt: Vec<u8>,
    server_key: Vec<u8>,
}

async fn verifier(role: &str) -> Verifier {
    let (iterations, salt, server_key): (i32, String, String) = sqlx::query_as(
        "SELECT split_part(split_part(rolpassword, '$', 2), ':', 1)::int,
                encode(decode(split_part(split_part(rolpassword, '$', 2), ':', 2), 'base64'), 'hex'),
                encode(decode(split_part(split_part(rolpassword, '$', 3), ':', 2), 'base64'), 'hex')
           FROM pg_authid WHERE rolname = $1 AND rolpassword LIKE 'SCRAM-SHA-256$%'",
    )
    .bind(role)
    .fetch_one(&mut admin().await)
    .await
    .expect("a SCRAM verifier for the role");
    Verifier {
        iterations,
        salt: hex::decode(salt).expect("salt"),
        server_key: hex::decode(server_key).expect("server key"),
    }
}

impl Verifier {
    /// Whether `password` is the one it was made from:
    /// ServerKey = HMAC(PBKDF2-HMAC-SHA256(password, salt, iterations), "Server Key").
    fn matches(&self, password: &str) -> bool {
        let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let first = [self.salt.as_slice(), &1u32.to_be_bytes()].concat();
        let mut u = hmac(password.as_bytes(), &first);
        let mut salted = u.clone();
        for _ in 1..self.iterations {
            u = hmac(password.as_bytes(), &u);
            salted.iter_mut().zip(&u).for_each(|(s, x)| *s ^= x);
        }
        hmac(&salted, b"Server Key") == self.server_key
    }
}

/// Whether `password` is the one PostgreSQL stored for `role`.
async fn password_matches(role: &str, password: &str) -> bool {
    verifier(role).await.matches(password)
}

async fn select(c: &mut PgConnection, sql: &str) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(sql).fetch_one(c).await
}

fn permission_denied(r: Result<impl std::fmt::Debug, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(ref e)) if e.message().contains("permission denied"))
}

/// Issued credentials log in, carry the returned password and expire when the lease does,
/// and have exactly the granted rights: a role without grants cannot read what one with
/// grants can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_credentials_log_in_with_exactly_the_granted_rights() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    let body = |grants: Value| json!({"definition": {"grants": grants}, "default_ttl": "10m", "max_ttl": "1h"});
    let (st, r) = put_role(&s, "pg", "readonly", body(db.read_grants())).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        r["definition"]["creation_statements"],
        json!(["CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"]),
        "defaults filled in: {r}"
    );
    s.engine_role("acme", "pg", "nothing", body(json!([])))
        .await;

    let before = epoch(None).await;
    let (st, c) = s.creds("acme", "pg", "readonly", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(
        (
            c["lease_duration"].clone(),
            c["renewable"].clone(),
            c["revocable"].clone()
        ),
        (json!(600), json!(true), json!(true)),
        "{c}"
    );
    let user = c["data"]["username"].as_str().expect("username");
    let password = c["data"]["password"].as_str().expect("password");
    let want_start = format!("{}readonly_", db.prefix);
    assert!(
        user.starts_with(&want_start) && user.len() == want_start.len() + 16,
        "{user}"
    );
    assert!(password.len() == 32 && password.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let (can_login, valid_until) = role_row(user).await.expect("the role exists");
    let valid_until = valid_until.expect("VALID UNTIL is set");
    assert!(can_login, "rolcanlogin");
    assert!(
        (before + 598.0..=before + 605.0).contains(&valid_until),
        "VALID UNTIL {valid_until} is not issue time {before} + 600 s"
    );
    assert!(
        password_matches(user, password).await,
        "the returned password is the user's"
    );
    assert!(
        !password_matches(user, "not-the-password").await,
        "a wrong one is not"
    );

    let mut conn = connect_as(user, password)
        .await
        .expect("the credential logs in");
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .expect("current_user");
    assert_eq!(who, user);
    let g = format!("SELECT x FROM {}.granted", db.schema);
    assert_eq!(select(&mut conn, &g).await.expect("granted table"), 1);
    let insert = sqlx::query(&format!("INSERT INTO {}.granted VALUES (3)", db.schema))
        .execute(&mut conn)
        .await;
    assert!(permission_denied(insert), "INSERT was not granted");
    let secret = select(&mut conn, &format!("SELECT x FROM {}.secret", db.schema)).await;
    assert!(
        permission_denied(secret),
        "the secret table was not granted"
    );

    // Without grants, the same table is out of reach.
    let (_, bare, bare_pw) = issue(&s, "nothing", None).await;
    let mut bare_conn = connect_as(&bare, &bare_pw).await.expect("logs in");
    assert!(
        permission_denied(select(&mut bare_conn, &g).await),
        "no grants, no rights"
    );
    // Membership in a group role gives the group's rights, and only those.
    s.engine_role("acme", "pg", "member", body(json!([db.group])))
        .await;
    let (_, member, member_pw) = issue(&s, "member", None).await;
    let mut member_conn = connect_as(&member, &member_pw).await.expect("logs in");
    assert_eq!(
        select(&mut member_conn, &g)
            .await
            .expect("through the group"),
        1
    );
    let secret = select(
        &mut member_conn,
        &format!("SELECT x FROM {}.secret", db.schema),
    )
    .await;
    assert!(permission_denied(secret), "the group cannot read it either");

    // Audited by name, never with the password.
    let audited = Server::wait_for(10, || async {
        let (_, ev) = s
            .get(
                "/api/v1/realms/acme/audit?action=plugin.postgres.issue",
                &s.root,
            )
            .await;
        ev["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["target"] == user))
    })
    .await;
    assert!(audited, "issue audited with the user name");
    let (_, all) = s.get("/api/v1/realms/acme/audit?limit=1000", &s.root).await;
    assert!(
        !all.to_string().contains(password),
        "password in the audit log"
    );
    assert!(!s.log().contains(password), "password in the server log");
}

/// Revoke drops the user and ends a session it opened before; a new login fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_drops_the_user_and_ends_its_sessions() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    let def = json!({"definition": {"grants": db.read_grants()}});
    s.engine_role("acme", "pg", "ro", def).await;
    let (lease, user, password) = issue(&s, "ro", None).await;
    let (_, other_user, other_pw) = issue(&s, "ro", None).await;
    let mut session = connect_as(&user, &password).await.expect("logs in");
    let mut other = connect_as(&other_user, &other_pw).await.expect("logs in");
    assert_eq!(
        select(&mut session, "SELECT 1")
            .await
            .expect("live session"),
        1
    );

    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    assert_eq!(role_row(&user).await, None, "the user is dropped");
    assert!(
        select(&mut session, "SELECT 1").await.is_err(),
        "the open session was ended"
    );
    let again = connect_as(&user, &password).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("does not exist")),
        "a revoked user cannot log in: {:?}",
        again.map(|_| ())
    );
    // The other credential is untouched.
    assert_eq!(
        select(&mut other, "SELECT 1").await.expect("other session"),
        1
    );
    assert!(role_row(&other_user).await.is_some());
    let audited = Server::wait_for(10, || async {
        let (_, ev) = s
            .get(
                "/api/v1/realms/acme/audit?action=plugin.postgres.revoke",
                &s.root,
            )
            .await;
        ev["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["target"] == user.as_str()))
    })
    .await;
    assert!(audited, "revoke audited");
}

/// Concurrent issues and revocations on one role whose grants touch the same objects all
/// succeed: the engine serialises privilege changes (PostgreSQL fails concurrent updates of
/// one ACL with "tuple concurrently updated").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_issues_and_revocations_all_succeed() {
    let db = Db::new().await;
    let s = server("").await;
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines",
            Some(&s.root),
            Some(json!({
                "name": "pg", "plugin": "postgres", "grants": GRANTS, "config": db.config(),
                "connections": {"db": {"type": "postgres", "url": pg_url(), "max_connections": 8}},
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    // Privileges on the schema and table to each user, and membership in a group role.
    let def = json!({"definition": {"grants": db.read_grants()}});
    s.engine_role("acme", "pg", "ro", def).await;
    let def = json!({"definition": {"grants": [db.group]}});
    s.engine_role("acme", "pg", "member", def).await;
    let roles = ["ro", "member"];
    let issued =
        futures_util::future::join_all((0..32).map(|i| s.creds("acme", "pg", roles[i % 2], None)))
            .await;
    let mut leases = Vec::new();
    for (st, c) in issued {
        assert_eq!(st, StatusCode::OK, "{c}");
        leases.push(c["lease_id"].as_str().expect("lease").to_owned());
    }
    assert_eq!(db.users().await.len(), 32);
    let revoked = futures_util::future::join_all(
        leases
            .iter()
            .map(|id| lease_call(&s, "revoke", json!({"lease_id": id}))),
    )
    .await;
    for (st, l) in revoked {
        assert_eq!(
            (st, l["state"].clone()),
            (StatusCode::OK, json!("revoked")),
            "{l}"
        );
    }
    assert_eq!(db.users().await, Vec::<String>::new());
}

/// An expired lease is reaped: its user is dropped; a lease that has not expired keeps its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_drops_expired_users() {
    let db = Db::new().await;
    let s = server(REAPER).await;
    mounted(&s, &db).await;
    s.engine_role("acme", "pg", "ro", json!({"definition": {}}))
        .await;
    let (short, short_user, _) = issue(&s, "ro", Some("2s")).await;
    let (long, long_user, _) = issue(&s, "ro", Some("10m")).await;
    assert!(role_row(&short_user).await.is_some());
    let reaped = Server::wait_for(30, || async {
        s.lease("acme", &short).await["state"] == "revoked" && role_row(&short_user).await.is_none()
    })
    .await;
    assert!(
        reaped,
        "lease {} / server log:\n{}",
        s.lease("acme", &short).await,
        s.log()
    );
    assert_eq!(s.lease("acme", &long).await["state"], "active");
    assert!(
        role_row(&long_user).await.is_some(),
        "an unexpired user stays"
    );
}

/// Renew moves VALID UNTIL to now + ttl, and never past the lease's max ttl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_moves_valid_until_within_the_max_ttl() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    s.engine_role(
        "acme",
        "pg",
        "ro",
        json!({"definition": {}, "default_ttl": "1m", "max_ttl": "5m"}),
    )
    .await;
    let (lease, user, _) = issue(&s, "ro", None).await;
    let first = role_row(&user)
        .await
        .and_then(|r| r.1)
        .expect("valid until");
    let now = epoch(None).await;
    let (st, l) = lease_call(&s, "renew", json!({"lease_id": lease, "ttl": "3m"})).await;
    assert_eq!(st, StatusCode::OK, "{l}");
    let moved = role_row(&user)
        .await
        .and_then(|r| r.1)
        .expect("valid until");
    assert!(
        (now + 178.0..=now + 185.0).contains(&moved) && moved > first + 100.0,
        "VALID UNTIL {first} -> {moved}, renewed at {now} by 180 s"
    );
    let expires = epoch(l["expires_at"].as_str()).await;
    assert!(
        (moved - expires).abs() <= 2.0,
        "database {moved} and lease {expires} agree"
    );
    // Asking for more than the max ttl allows: both the lease and the user stop at max.
    let (st, l) = lease_call(&s, "renew", json!({"lease_id": lease, "ttl": "1h"})).await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_eq!(l["expires_at"], l["max_expires_at"], "{l}");
    let max = epoch(l["max_expires_at"].as_str()).await;
    let capped = role_row(&user)
        .await
        .and_then(|r| r.1)
        .expect("valid until");
    assert!(
        capped <= max + 2.0 && capped >= max - 5.0,
        "VALID UNTIL {capped} is bounded by the max ttl {max}"
    );
}

/// A user an admin dropped by hand: revoke succeeds and the lease ends `revoked`. A
/// revocation that fails leaves the user whole (one transaction) and the lease active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_dropped_by_hand_succeeds() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    s.engine_role("acme", "pg", "ro", json!({"definition": {}}))
        .await;
    let failing = json!({"definition": {
        "revocation_statements": ["DROP ROLE {{name}}", "SELECT 1/0"],
    }});
    s.engine_role("acme", "pg", "stuck", failing).await;

    let (lease, user, _) = issue(&s, "ro", None).await;
    exec(&mut admin().await, &format!("DROP ROLE \"{user}\"")).await;
    // Renewing it cannot work: a conflict that says why.
    let (st, b) = lease_call(&s, "renew", json!({"lease_id": lease, "ttl": "5m"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert!(message(&b).contains("no longer exists"), "{b}");
    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    assert_eq!(s.lease("acme", &lease).await["state"], "revoked");

    // Violated: the revocation fails, nothing is half-dropped, the lease stays active.
    let (lease, user, _) = issue(&s, "stuck", None).await;
    let (st, b) = lease_call(&s, "revoke", json!({"lease_id": lease})).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(
        message(&b).contains("revoking the database user failed: division by zero"),
        "{b}"
    );
    assert!(
        role_row(&user).await.is_some(),
        "the DROP ROLE was rolled back"
    );
    assert_eq!(s.lease("acme", &lease).await["state"], "active");
    // Once an admin drops it, the same lease revokes.
    exec(&mut admin().await, &format!("DROP ROLE \"{user}\"")).await;
    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
}

/// Creation is one transaction: a grant that fails leaves no user and no lease behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_creation_leaves_nothing_behind() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    let missing = format!("SELECT ON {}.does_not_exist", db.schema);
    s.engine_role(
        "acme",
        "pg",
        "broken",
        json!({"definition": {"grants": [missing]}}),
    )
    .await;
    let (st, b) = s.creds("acme", "pg", "broken", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    let m = message(&b);
    assert!(
        m.contains("creating the database user failed") && m.contains("does_not_exist"),
        "{m}"
    );
    assert_eq!(
        db.users().await,
        Vec::<String>::new(),
        "the CREATE ROLE was rolled back"
    );
    let (_, leases) = s
        .get("/api/v1/realms/acme/leases?prefix=pg/", &s.root)
        .await;
    assert_eq!(leases["items"], json!([]), "{leases}");
    // The same mount issues once the role is fixed.
    s.engine_role(
        "acme",
        "pg",
        "broken",
        json!({"definition": {"grants": db.read_grants()}}),
    )
    .await;
    issue(&s, "broken", None).await;
    assert_eq!(db.users().await.len(), 1);
}

/// Root rotation with a dedicated (non-superuser) root: the stored password changes on the
/// server, the old one no longer matches, the engine keeps issuing and revoking, and no API
/// response or log line carries a root password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_keeps_the_engine_working() {
    let db = Db::new().await;
    // Named under the test's prefix, so the guard drops it too.
    let root = format!("{}root", db.prefix);
    let old_pw = format!("pw{}", uid());
    let mut a = admin().await;
    exec(
        &mut a,
        &format!("CREATE ROLE {root} LOGIN CREATEROLE PASSWORD '{old_pw}'"),
    )
    .await;
    exec(&mut a, &format!("GRANT USAGE ON SCHEMA {0} TO {root} WITH GRANT OPTION; GRANT SELECT ON {0}.granted TO {root} WITH GRANT OPTION", db.schema)).await;
    let url = PgConnectOptions::from_str(&pg_url()).expect("url");
    let url = format!(
        "postgres://{root}:{old_pw}@{}:{}/{}",
        url.get_host(),
        url.get_port(),
        url.get_database().unwrap_or("test")
    );
    let s = server("").await;
    let mut seen = Vec::new();
    let (st, m) = mount_pg(&s, "pg", &url, db.config()).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    seen.push(m);
    let (st, r) = put_role(
        &s,
        "pg",
        "ro",
        json!({"definition": {"grants": db.read_grants()}}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    seen.push(r);
    let (st, c) = s.creds("acme", "pg", "ro", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let first_lease = c["lease_id"].as_str().expect("lease").to_owned();
    let mut issued = vec![c["data"]["password"].as_str().expect("pw").to_owned()];
    seen.push(c);
    assert!(password_matches(&root, &old_pw).await);

    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/pg/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!((st, r.clone()), (StatusCode::OK, json!({"rotated": true})));
    seen.push(r);
    assert!(
        !password_matches(&root, &old_pw).await,
        "the old root password no longer matches"
    );

    // The engine keeps working on the new password: it issues, and it revokes (as a
    // non-superuser root, through the default revocation statements).
    let (st, c) = s.creds("acme", "pg", "ro", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let user = c["data"]["username"].as_str().expect("user").to_owned();
    issued.push(c["data"]["password"].as_str().expect("pw").to_owned());
    seen.push(c);
    let mut conn = connect_as(&user, &issued[1]).await.expect("logs in");
    let g = format!("SELECT x FROM {}.granted", db.schema);
    assert_eq!(
        select(&mut conn, &g)
            .await
            .expect("granted by the rotated root"),
        1
    );
    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": first_lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    seen.push(l);
    for path in [
        "/api/v1/realms/acme/engines/pg",
        "/api/v1/realms/acme/engines",
        "/api/v1/realms/acme/leases?prefix=pg/",
        "/api/v1/realms/acme/audit?limit=1000",
    ] {
        let (st, b) = s.get(path, &s.root).await;
        assert_eq!(st, StatusCode::OK, "{path}: {b}");
        seen.push(b);
    }
    // Every word of every response that could be a password is checked against the root's
    // verifier: none is the new root password; none is the old one.
    let text = seen
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !text.contains(&old_pw) && !s.log().contains(&old_pw),
        "old root password shown"
    );
    let mut words: Vec<&str> = text
        .split(|ch: char| !ch.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 16 && !issued.iter().any(|p| p == w))
        .collect();
    words.sort_unstable();
    words.dedup();
    let rotated = verifier(&root).await;
    for w in words {
        assert!(!rotated.matches(w), "a response carries the root password");
    }
}

/// Nothing a caller or a role definition controls breaks out of its quotes: role names are
/// reduced to safe characters and names are always quoted (a name that starts with a digit
/// works); hostile or malformed definitions are refused at role write (400) naming the
/// statement; the name literal is what the user is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_attempts_are_refused_or_quoted() {
    let mut db = Db::new().await;
    db.prefix = format!("9{}", &db.prefix[1..]);
    let s = server("").await;
    mounted(&s, &db).await;
    let comment = json!({"definition": {"creation_statements": [
        "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}; COMMENT ON ROLE {{name}} IS {{name_literal}}"
    ]}});
    s.engine_role("acme", "pg", "read-only", comment).await;
    let (_, user, _) = issue(&s, "read-only", None).await;
    assert!(
        user.starts_with(&format!("{}read_only_", db.prefix)),
        "{user}"
    );
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
    )
    .bind(&user)
    .fetch_one(&mut admin().await)
    .await
    .expect("comment");
    assert_eq!(
        stored.as_deref(),
        Some(user.as_str()),
        "{{name_literal}} is the name"
    );

    let cases = [
        (
            json!({"creation_statements": ["CREATE ROLE {{name}} PASSWORD {{pasword}}"]}),
            "creation_statements[0] `CREATE ROLE {{name}} PASSWORD {{pasword}}`: unknown placeholder {{pasword}}",
        ),
        (
            json!({"creation_statements": ["CREATE ROLE {{name"]}),
            "unbalanced braces",
        ),
        (
            json!({"creation_statements": ["CREATE ROLE fixed_name LOGIN"]}),
            "must use {{name}}",
        ),
        (
            json!({"creation_statements": []}),
            "creation_statements must not be empty",
        ),
        (
            json!({"revocation_statements": ["ALTER ROLE {{name}} PASSWORD {{password}}"]}),
            "{{password}} cannot be used in revocation_statements",
        ),
        (
            json!({"grants": [format!("SELECT ON {}.granted TO PUBLIC; DROP TABLE {0}.secret", db.schema)]}),
            "no `;`",
        ),
        (json!({"grants": ["{{password}}"]}), "takes no placeholders"),
        (
            json!({"grants": ["SELECT ON x"], "sql": "DROP TABLE x"}),
            "unknown field `sql`",
        ),
        (json!("CREATE ROLE x"), "must be a JSON object"),
    ];
    for (def, want) in cases {
        let (st, b) = put_role(&s, "pg", "bad", json!({"definition": def})).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{def}: {b}");
        assert!(message(&b).contains(want), "{def}: {b}");
    }
    let (st, _) = s
        .get("/api/v1/realms/acme/engines/pg/roles/bad", &s.root)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no bad role was stored");
    let secret: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}.secret", db.schema))
        .fetch_one(&mut admin().await)
        .await
        .expect("the secret table is still there");
    assert_eq!(secret, 1);
    // Role names that are not [a-z0-9-] never reach the engine.
    let (st, _) = put_role(&s, "pg", "x%22%3B%20DROP", json!({"definition": {}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// The mount configuration is validated (unknown keys, bad prefix, password length) and
/// stored with defaults; a longer password length is honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_configuration_is_validated() {
    let db = Db::new().await;
    let s = server("").await;
    for (config, want) in [
        (
            json!({"connection": "db", "pasword_length": 40}),
            "unknown field `pasword_length`",
        ),
        (
            json!({"username_prefix": "x\"; DROP ROLE postgres; --"}),
            "username_prefix",
        ),
        (
            json!({"username_prefix": "a_very_long_prefix"}),
            "at most 16",
        ),
        (
            json!({"password_length": 8}),
            "password_length must be 16 to 128",
        ),
    ] {
        let (st, b) = mount_pg(&s, "pg", &pg_url(), config.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{config}: {b}");
        assert!(message(&b).contains(want), "{config}: {b}");
    }
    let (st, m) = mount_pg(
        &s,
        "pg",
        &pg_url(),
        json!({"username_prefix": db.prefix, "password_length": 64}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert_eq!(
        m["config"],
        json!({"connection": "db", "username_prefix": db.prefix, "password_length": 64})
    );
    s.engine_role("acme", "pg", "ro", json!({"definition": {}}))
        .await;
    let (_, user, password) = issue(&s, "ro", None).await;
    assert_eq!(password.len(), 64);
    assert!(password_matches(&user, &password).await);
}

/// Unknown role 404, ttl over the max 400: no user created, no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_roles_and_excessive_ttls_are_refused() {
    let db = Db::new().await;
    let s = server("").await;
    mounted(&s, &db).await;
    s.engine_role(
        "acme",
        "pg",
        "ro",
        json!({"definition": {}, "default_ttl": "1m", "max_ttl": "10m"}),
    )
    .await;
    let (st, b) = s.creds("acme", "pg", "nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    let (st, b) = s.creds("acme", "pg", "ro", Some("11m")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("max_ttl"), "{b}");
    assert_eq!(db.users().await, Vec::<String>::new());
    let (_, leases) = s
        .get("/api/v1/realms/acme/leases?prefix=pg/", &s.root)
        .await;
    assert_eq!(leases["items"], json!([]), "{leases}");
    // Within the max it is issued.
    let (st, c) = s.creds("acme", "pg", "ro", Some("10m")).await;
    assert_eq!(
        (st, c["lease_duration"].clone()),
        (StatusCode::OK, json!(600)),
        "{c}"
    );
}

/// A database that does not answer: refused at mount when connections are verified; when
/// not, issuing is a 502 that says so, and no lease is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_502_and_no_lease() {
    let db = Db::new().await;
    // A host-call deadline shorter than the call's, so the engine sees the host's error
    // (the harness's 2 s call deadline is shorter than the default 5 s host-call one).
    let config = plugin_config("").replace("  call_timeout: 2s\n", "  call_timeout: 5s\n");
    assert!(config.contains("host_call_timeout"), "{config}");
    let s = Server::start_with(Backend::Sqlite, &config).await;
    s.realm("acme").await;
    let url = "postgres://root:secret-pw@127.0.0.1:1/test";
    let (st, b) = mount_pg(&s, "pg", url, db.config()).await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("connection_failed")),
        "{b}"
    );
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines",
            Some(&s.root),
            Some(json!({
                "name": "pg", "plugin": "postgres", "grants": GRANTS, "config": db.config(),
                "connections": {"db": {"type": "postgres", "url": url}},
                "verify_connections": false,
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    s.engine_role("acme", "pg", "ro", json!({"definition": {}}))
        .await;
    let started = std::time::Instant::now();
    let (st, b) = s.creds("acme", "pg", "ro", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    let m = message(&b);
    assert!(
        m.contains(
            "creating the database user failed: timed out waiting for a database connection"
        ) && !m.contains("secret-pw"),
        "{m}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (_, leases) = s
        .get("/api/v1/realms/acme/leases?prefix=pg/", &s.root)
        .await;
    assert_eq!(leases["items"], json!([]), "{leases}");
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/pg/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(!b.to_string().contains("secret-pw"), "{b}");
}
