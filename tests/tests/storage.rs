//! What reaches the store: no plaintext secret value, token, password, connection password,
//! root key or plugin data in any table of either store; data survives a
//! kill -9 restart and a master-key rewrap.

use arcan_tests::moto::{self, Moto};
use arcan_tests::*;

/// The password [`Server::user`] registers with.
const PASSWORD: &str = "correct horse battery";

/// A server holding one of each kind of secret: a secret value, a token, a user's password,
/// a PostgreSQL connection password, AWS root keys and plugin data. None of them reaches any
/// table of the store in plain text, and plugin data is sealed.
async fn nothing_plain_in_store(b: Backend) {
    let (moto, account) = Moto::start().await;
    let s = Server::start_with(b, &plugin_config("")).await;
    s.realm("acme").await;
    let value = "PLAINTEXT-CANARY-7f3a9c2e";
    let (st, _) = s.put(&s.root, "acme", "prod", "app/db", value).await;
    assert_eq!(st, StatusCode::OK);
    let (st, t) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"ttl": "1h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().expect("token").to_owned();
    s.user("u@example.com").await; // registers with PASSWORD
    // A PostgreSQL connection with a password (the test cluster trusts loopback, so any
    // password verifies) on a probe mount that also keeps plugin data.
    let pg_password = format!("pg-pw-{}", uuid::Uuid::new_v4().simple());
    let mut url = reqwest::Url::parse(&pg_url()).expect("ARCAN_TEST_PG_URL");
    url.set_password(Some(&pg_password)).expect("password");
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines",
            Some(&s.root),
            Some(json!({
                "name": "p", "plugin": "probe", "config": {"connection": "db"},
                "grants": ["host:sql", "host:http", "host:store", "host:audit"],
                "connections": {"db": {"type": "postgres", "url": url.as_str()}},
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    // The role definition carries the value as JSON, where the control characters are
    // escaped (`\u0001`); only plugin data could hold these raw bytes.
    let marker = "PLUGIN\u{1}DATA\u{1}CANARY-5b1e";
    s.engine_role(
        "acme",
        "p",
        "put",
        json!({"definition": {"mode": "data-put", "key": "k", "value": marker},
               "default_ttl": "10m", "max_ttl": "1h"}),
    )
    .await;
    let (st, c) = s.creds("acme", "p", "put", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    // AWS root keys on an aws mount.
    let (st, m) = s
        .mount(
            "acme",
            "aws",
            "aws",
            &["host:http"],
            json!({"aws": {
                "type": "http", "base_url": moto.base,
                "auth": {
                    "type": "aws_sigv4", "access_key_id": account.admin.access_key_id,
                    "secret_access_key": account.admin.secret_access_key,
                    "region": moto::REGION,
                },
            }}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");

    let tables = s.store_tables().await;
    for t in [
        "plugin_data",
        "engine_mounts",
        "leases",
        "audit_events",
        "users",
    ] {
        assert!(tables.iter().any(|x| x == t), "no {t} in {tables:?}");
    }
    let dump = s.store_dump().await;
    for sanity in ["app/db", "u@example.com", "probe"] {
        assert!(
            contains(&dump, sanity),
            "the dump misses {sanity:?} (sanity)"
        );
    }
    for needle in [
        value,
        token.as_str(),
        s.root.as_str(),
        PASSWORD,
        pg_password.as_str(),
        account.admin.secret_access_key.as_str(),
        marker,
    ] {
        assert!(
            !contains(&dump, needle),
            "store holds {needle:?} in plain text"
        );
    }
    // Plugin data is sealed: one row for the key, longer than the value (nonce and tag),
    // not the value itself.
    let hex_sql = match b {
        Backend::Sqlite => "SELECT lower(hex(value)) FROM plugin_data",
        Backend::Postgres => "SELECT encode(value, 'hex') FROM plugin_data",
    };
    let rows = s.query_strings(hex_sql).await;
    let plain: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].len() > plain.len() + 32 && !rows[0].contains(&plain),
        "plugin data is not sealed: {rows:?}"
    );
    let log = s.log();
    for needle in [value, token.as_str(), s.root.as_str(), pg_password.as_str()] {
        assert!(!log.contains(needle), "server log holds {needle:?}");
    }
}

/// The dump is the whole store: a value planted in a table the tests have never heard of
/// (as text and as bytes) is found, so the checks above can fail. (Its text column is
/// called `t` on purpose: an earlier dump aliased every table `t` and then read that column
/// alone.)
async fn dump_covers_every_table(b: Backend) {
    let s = Server::start(b).await;
    let blob = match b {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    s.exec_sql(&format!(
        "CREATE TABLE zz_new_table (t TEXT NOT NULL, b {blob} NOT NULL)"
    ))
    .await;
    let before = s.store_dump().await;
    assert!(!contains(&before, "LEAKED-TEXT-91c4"));
    let bytes = match b {
        Backend::Sqlite => "X'4c45414b45442d42595445532d3361'",
        Backend::Postgres => "'\\x4c45414b45442d42595445532d3361'::bytea",
    };
    s.exec_sql(&format!(
        "INSERT INTO zz_new_table (t, b) VALUES ('LEAKED-TEXT-91c4', {bytes})"
    ))
    .await;
    assert!(s.store_tables().await.contains(&"zz_new_table".to_owned()));
    let dump = s.store_dump().await;
    assert!(
        contains(&dump, "LEAKED-TEXT-91c4"),
        "planted text not found"
    );
    assert!(
        contains(&dump, "LEAKED-BYTES-3a"),
        "planted bytes not found"
    );
}

async fn restart_keeps_data(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    let (st, _) = s.put(&s.root, "acme", "prod", "app/db", "durable").await;
    assert_eq!(st, StatusCode::OK);
    // The first start printed the root token on stdout (where the check below looks).
    assert!(
        s.stdout().contains(&format!("Root token: {}", s.root)),
        "first start: {}",
        s.stdout()
    );
    s.restart().await; // SIGKILL, then start on the same data
    let (st, v) = s
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", &s.root)
        .await;
    assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!("durable")));
    let again = s.stdout();
    assert!(again.contains("Listening on "), "{again}");
    assert!(
        !again.contains("Root token") && !again.contains(&s.root),
        "root token is printed only on first start: {again}"
    );
}

async fn rewrap_keeps_data(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    s.realm("beta").await;
    s.put(&s.root, "acme", "prod", "k", "alpha-value").await;
    s.put(&s.root, "beta", "prod", "k", "beta-value").await;
    let key_before = std::fs::read_to_string(s.dir.join("master.key")).expect("key");
    let (st, before) = s.get("/api/v1/sys/master-key", &s.root).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (before["data_keys"].clone(), before["ok"].clone()),
        (json!(2), json!(2))
    );
    let (st, after) = s
        .call(
            Method::POST,
            "/api/v1/sys/master-key/rewrap",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{after}");
    assert_ne!(after["key_id"], before["key_id"]);
    let key_after = std::fs::read_to_string(s.dir.join("master.key")).expect("key");
    assert_ne!(key_before, key_after);
    for (realm, value) in [("acme", "alpha-value"), ("beta", "beta-value")] {
        let (_, v) = s
            .get(
                &format!("/api/v1/realms/{realm}/secrets/k?env=prod"),
                &s.root,
            )
            .await;
        assert_eq!(v["value"], value);
    }
    // A second rewrap, over a stale `master.key.new` that no stored key uses (a rewrap that
    // failed before its commit): the stale file is discarded, never installed.
    let key_path = s.dir.join("master.key");
    let pending = s.dir.join("master.key.new");
    write_key(&pending, &"5a".repeat(32));
    let (st, again) = s
        .call(
            Method::POST,
            "/api/v1/sys/master-key/rewrap",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_ne!(again["key_id"], after["key_id"]);
    assert!(!pending.exists(), "no key file left behind");
    let key_third = std::fs::read_to_string(&key_path).expect("key");
    assert!(key_third != key_after && key_third != key_before);
    assert!(
        !key_third.contains(&"5a".repeat(32)),
        "the stale key was not used"
    );
    // New realms after the rotation, and a cold restart with the new key.
    s.realm("gamma").await;
    s.put(&s.root, "gamma", "prod", "k", "gamma-value").await;
    s.restart().await;
    for (realm, value) in [("acme", "alpha-value"), ("gamma", "gamma-value")] {
        let (st, v) = s
            .get(
                &format!("/api/v1/realms/{realm}/secrets/k?env=prod"),
                &s.root,
            )
            .await;
        assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!(value)));
    }
    let (_, verify) = s.get("/api/v1/sys/master-key", &s.root).await;
    assert_eq!(
        (verify["data_keys"].clone(), verify["ok"].clone()),
        (json!(3), json!(3))
    );
    // A rotation stopped after its store commit, before the rename: the old key is still
    // `master.key` and the key in use is `master.key.new`. The next start installs it.
    write_key(&pending, key_third.trim());
    write_key(&key_path, key_before.trim());
    s.restart().await;
    assert_eq!(
        std::fs::read_to_string(&key_path).expect("key").trim(),
        key_third.trim()
    );
    assert!(!pending.exists());
    // A rotation stopped before its commit: `master.key.new` is unused and is discarded.
    write_key(&pending, &"6b".repeat(32));
    s.restart().await;
    assert_eq!(
        std::fs::read_to_string(&key_path).expect("key").trim(),
        key_third.trim()
    );
    assert!(!pending.exists());
    for (realm, value) in [
        ("acme", "alpha-value"),
        ("beta", "beta-value"),
        ("gamma", "gamma-value"),
    ] {
        let (st, v) = s
            .get(
                &format!("/api/v1/realms/{realm}/secrets/k?env=prod"),
                &s.root,
            )
            .await;
        assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!(value)));
    }
    // Only superusers rotate.
    let (_, user) = s.user("u@example.com").await;
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/sys/master-key/rewrap",
            Some(&user),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

/// Writes a master-key file (hex, mode 0600) as the server would.
fn write_key(path: &std::path::Path, hex: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{hex}\n")).expect("write key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Starts a second server on the same data and returns why it refused to start.
fn start_error(s: &Server) -> String {
    let out = std::process::Command::new(arcan_bin())
        .args(["server", "--port", "0", "--data-dir"])
        .arg(&s.dir)
        .args(
            s.db_url
                .iter()
                .flat_map(|u| ["--database-url".to_owned(), u.clone()]),
        )
        .env("HOME", &s.dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let out = output_within(out, 60, "a second arcan server");
    assert!(!out.status.success(), "the server must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn wrong_master_key_refused(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    s.put(&s.root, "acme", "prod", "k", "v").await;
    let path = s.dir.join("master.key");
    std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("overwrite key");
    let err = start_error(&s);
    assert!(err.contains("cannot unwrap"), "{err}");
    std::fs::remove_file(&path).expect("rm");
    let err = start_error(&s);
    assert!(err.contains("missing"), "{err}");
}

both_backends!(
    nothing_plain_in_store,
    dump_covers_every_table,
    restart_keeps_data,
    rewrap_keeps_data,
    wrong_master_key_refused
);
