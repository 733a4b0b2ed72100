//! What reaches the store: no plaintext secret value, no raw token; data survives a
//! kill -9 restart and a master-key rewrap.

use arcan_tests::*;

async fn nothing_plain_in_store(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    let value = "PLAINTEXT-CANARY-7f3a9c2e";
    let (st, _) = s.put(&s.root, "acme", "prod", "app/db", value).await;
    assert_eq!(st, StatusCode::OK);
    let (_, t) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"ttl": "1h"})),
        )
        .await;
    let token = t["token"].as_str().expect("token").to_owned();
    // Make SQLite flush the WAL into the main file too: a restart checkpoints.
    let dump = s.store_dump().await;
    assert!(!dump.is_empty());
    assert!(
        contains(&dump, "app/db"),
        "the dump must include the secrets table (sanity)"
    );
    for needle in [
        value,
        token.as_str(),
        s.root.as_str(),
        "correct horse battery",
    ] {
        assert!(
            !contains(&dump, needle),
            "store holds {needle:?} in plain text"
        );
    }
    let log = s.log();
    for needle in [value, token.as_str(), s.root.as_str()] {
        assert!(!log.contains(needle), "server log holds {needle:?}");
    }
}

async fn restart_keeps_data(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    let (st, _) = s.put(&s.root, "acme", "prod", "app/db", "durable").await;
    assert_eq!(st, StatusCode::OK);
    s.restart().await; // SIGKILL, then start on the same data
    let (st, v) = s
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", &s.root)
        .await;
    assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!("durable")));
    assert!(
        !s.log().contains("Root token"),
        "root token is printed only on first start"
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
        .output()
        .expect("run");
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
    restart_keeps_data,
    rewrap_keeps_data,
    wrong_master_key_refused
);
