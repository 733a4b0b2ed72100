//! Failure paths, each held and violated: a ciphertext copied to another row does not open;
//! an engine that fails to renew leaves the lease as it was; a revocation that never ends is
//! cut off by `reaper.revoke_timeout` and the lease given up as irrevocable; audit events
//! buffered at SIGTERM are flushed before exit; a revocation in flight at SIGTERM finishes
//! before exit or is left whole for the next start.

use std::time::Duration;

use arcan_tests::*;

const ALL_GRANTS: &[&str] = &["host:sql", "host:http", "host:store", "host:audit"];

async fn read(s: &Server, realm: &str, key: &str) -> (StatusCode, Value) {
    s.get(
        &format!("/api/v1/realms/{realm}/secrets/{key}?env=prod"),
        &s.root,
    )
    .await
}

/// Ciphertexts are bound to their row (realm, env, key, version): moved to another row, by
/// someone with write access to the store, they are refused, never opened as the other value.
async fn copied_ciphertext_does_not_open(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    s.realm("beta").await;
    for (realm, key, value) in [
        ("acme", "a", "alpha-7c1e"),
        ("acme", "b", "bravo-7c1e"),
        ("beta", "a", "gamma-7c1e"),
    ] {
        let (st, body) = s.put(&s.root, realm, "prod", key, value).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    // Held: every row opens as itself.
    for (realm, key, value) in [("acme", "b", "bravo-7c1e"), ("beta", "a", "gamma-7c1e")] {
        let (st, v) = read(&s, realm, key).await;
        assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!(value)));
    }
    // Violated: acme/a's ciphertext copied onto acme/b (another key) and onto beta/a
    // (another realm, same key name).
    let acme = "(SELECT id FROM realms WHERE slug = 'acme')";
    let beta = "(SELECT id FROM realms WHERE slug = 'beta')";
    let source =
        format!("(SELECT ciphertext FROM secret_versions WHERE realm_id = {acme} AND key = 'a')");
    for (realm_id, key) in [(acme, "b"), (beta, "a")] {
        let n = s
            .exec_sql(&format!(
                "UPDATE secret_versions SET ciphertext = {source} \
                 WHERE realm_id = {realm_id} AND key = '{key}'"
            ))
            .await;
        assert_eq!(n, 1, "the tampering touched one row");
    }
    // A cold start: nothing the server cached from before the tampering answers for it.
    s.restart().await;
    for (realm, key) in [("acme", "b"), ("beta", "a")] {
        let (st, v) = read(&s, realm, key).await;
        assert!(
            st.is_server_error() && !v.to_string().contains("alpha-7c1e"),
            "{realm}/{key} after the copy: {st} {v}"
        );
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    // The original still opens.
    let (st, v) = read(&s, "acme", "a").await;
    assert_eq!(
        (st, v["value"].clone()),
        (StatusCode::OK, json!("alpha-7c1e"))
    );
}

async fn probe_role(s: &Server, role: &str, mode: &str) {
    s.engine_role(
        "acme",
        "p",
        role,
        json!({"definition": {"mode": mode}, "default_ttl": "10m", "max_ttl": "1h"}),
    )
    .await;
}

async fn renew(s: &Server, lease: &str, ttl: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/realms/acme/leases/renew",
        Some(&s.root),
        Some(json!({"lease_id": lease, "ttl": ttl})),
    )
    .await
}

/// Held: the engine renews and the lease moves. Violated: the engine fails to renew, the
/// caller gets the engine's reason, and the lease keeps its expiry and stays active.
async fn failed_renew_leaves_the_lease(b: Backend) {
    let s = Server::start_with(b, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, m) = s.mount("acme", "p", "probe", ALL_GRANTS, Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    probe_role(&s, "ok", "ok").await;
    probe_role(&s, "bad", "renew-fails").await;
    for (role, fails) in [("ok", false), ("bad", true)] {
        let (st, c) = s.creds("acme", "p", role, Some("5m")).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        let id = c["lease_id"].as_str().expect("lease").to_owned();
        let before = s.lease("acme", &id).await;
        let (st, r) = renew(&s, &id, "30m").await;
        let after = s.lease("acme", &id).await;
        assert_eq!(after["state"], "active", "{after}");
        if fails {
            assert_eq!(st, StatusCode::BAD_GATEWAY, "{r}");
            assert!(
                r["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("renewal failed on purpose")),
                "{r}"
            );
            assert_eq!(after["expires_at"], before["expires_at"], "{after}");
        } else {
            assert_eq!(st, StatusCode::OK, "{r}");
            assert!(
                after["expires_at"].as_str() > before["expires_at"].as_str(),
                "{before} -> {after}"
            );
        }
    }
}

/// Held: an expired lease of a well-behaved engine is revoked. Violated: the probe's
/// `revoke-loop` never returns; `revoke_timeout` (1 s, below the 2 s call deadline) cuts
/// each attempt off, and after `max_attempts` the lease is irrevocable, saying why.
async fn revoke_timeout_gives_up(b: Backend) {
    let reaper = "reaper:\n  interval: 1s\n  grace: 20s\n  revoke_timeout: 1s\n  max_attempts: 2\n  backoff: 1s\n";
    let s = Server::start_with(b, &plugin_config(reaper)).await;
    s.realm("acme").await;
    let (st, m) = s.mount("acme", "p", "probe", ALL_GRANTS, Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    probe_role(&s, "ok", "ok").await;
    probe_role(&s, "loop", "revoke-loop").await;
    let (_, ok) = s.creds("acme", "p", "ok", Some("1s")).await;
    let (_, stuck) = s.creds("acme", "p", "loop", Some("1s")).await;
    let ok = ok["lease_id"].as_str().expect("ok").to_owned();
    let stuck = stuck["lease_id"].as_str().expect("stuck").to_owned();
    // Irrevocable, then the last attempt recorded (two writes): wait for both.
    let done = Server::wait_for(40, || async {
        let stuck = s.lease("acme", &stuck).await;
        s.lease("acme", &ok).await["state"] == "revoked"
            && stuck["state"] == "irrevocable"
            && stuck["attempts"].as_i64() >= Some(2)
    })
    .await;
    let l = s.lease("acme", &stuck).await;
    assert!(done, "ok: {} stuck: {l}", s.lease("acme", &ok).await);
    assert!(
        l["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within 1s")),
        "{l}"
    );
    assert_eq!(l["attempts"], json!(2), "{l}");
    // The server kept serving meanwhile.
    let (st, _) = s.get("/api/v1/tokens/self", &s.root).await;
    assert_eq!(st, StatusCode::OK);
}

/// Audit events still buffered when SIGTERM arrives are written before the server exits:
/// after a clean shutdown every acknowledged write has its event, and the chain verifies.
async fn audit_flushed_on_shutdown(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    for i in 0..30 {
        let (st, body) = s.put(&s.root, "acme", "dev", &format!("k{i}"), "v").await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    // At once, without waiting for any flush.
    assert!(s.terminate(), "clean exit: {}", s.log());
    let rows = s
        .query_strings("SELECT id FROM audit_events WHERE action = 'secrets.write' ORDER BY seq")
        .await;
    assert_eq!(rows.len(), 30, "events written before exit: {rows:?}");
    s.restart().await;
    let (st, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!((st, v["ok"].clone()), (StatusCode::OK, json!(true)), "{v}");
}

/// Whether PostgreSQL is running a statement that contains `marker` (not this query).
async fn running(admin: &mut sqlx::PgConnection, marker: &str) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
         AND pid <> pg_backend_pid() AND query LIKE $1",
    )
    .bind(format!("%{marker}%"))
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
        > 0
}

/// The stored state of a lease, read from the store while the server is down.
async fn stored_lease(s: &Server, id: &str) -> String {
    let q = format!("SELECT state || '/' || attempts FROM leases WHERE id = '{id}'");
    s.query_strings(&q).await.concat()
}

/// SIGTERM while the reaper revokes (the probe's `revoke-sql` runs `pg_sleep` on a real
/// PostgreSQL connection, then forgets its user). Held: with a drain deadline longer than the
/// revocation, the process exits only after it finished: the lease is revoked and its event
/// stored. Violated: with a deadline shorter than the revocation, the process still exits by
/// the deadline and the lease is left whole — active, no attempt counted, never marked
/// revoked — and the next start revokes it.
async fn revocation_in_flight_at_sigterm(b: Backend) {
    let admin_url = pg_url();
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL (see ./scripts/test)")
    };
    for (grace, sleep, finishes) in [(10, 2, true), (1, 4, false)] {
        let config = format!(
            "{RELAXED}server:\n  shutdown_grace: {grace}s\nplugins:\n  dir: {}\n  cache_dir: {}\n  \
             call_timeout: 6s\n  host_call_timeout: 5s\n  allow_unsigned: true\n\
             reaper:\n  interval: 1s\n  grace: 7s\n  revoke_timeout: 6s\n",
            plugins_dir().display(),
            std::env::temp_dir()
                .join("arcan-test-plugin-cache")
                .display()
        );
        let mut s = Server::start_with(b, &config).await;
        s.realm("acme").await;
        let (st, m) = s
            .mount(
                "acme",
                "p",
                "probe",
                ALL_GRANTS,
                json!({"db": {"type": "postgres", "url": admin_url}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{m}");
        let marker = format!("slow_revoke_{}", uuid_like());
        s.engine_role(
            "acme",
            "p",
            "slow",
            json!({"definition": {"mode": "revoke-sql", "connection": "db",
                "sql": format!("SELECT pg_sleep({sleep})::text AS {marker}")},
                "default_ttl": "10m", "max_ttl": "1h"}),
        )
        .await;
        let (st, c) = s.creds("acme", "p", "slow", Some("1s")).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        let id = c["lease_id"].as_str().expect("lease").to_owned();
        let mut started = false;
        for _ in 0..200 {
            if running(&mut admin, &marker).await {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            started,
            "the reaper never started the revocation: {}",
            s.log()
        );
        let asked = std::time::Instant::now();
        s.signal_term();
        assert!(s.wait_exit(), "clean exit: {}", s.log());
        let took = asked.elapsed();
        let state = stored_lease(&s, &id).await;
        let events = s
            .query_strings(&format!(
                "SELECT outcome FROM audit_events WHERE action = 'lease.revoke' AND body LIKE '%{id}%'"
            ))
            .await;
        if finishes {
            assert_eq!(state, "revoked/0", "grace {grace}s: {}", s.log());
            assert_eq!(events, vec!["success".to_owned()], "grace {grace}s");
            assert!(took < Duration::from_secs(grace), "exit took {took:?}");
        } else {
            assert!(
                took < Duration::from_secs(sleep),
                "exit took {took:?}, past the {grace}s deadline: {}",
                s.log()
            );
            assert_eq!(state, "active/0", "left whole, not half revoked");
            assert!(events.is_empty(), "no revocation recorded: {events:?}");
            assert!(
                s.log().contains("did not stop in time"),
                "the aborted task is named: {}",
                s.log()
            );
            // The next start revokes it once the claim lapses.
            s.restart().await;
            let done = Server::wait_for(60, || async {
                s.lease("acme", &id).await["state"] == "revoked"
            })
            .await;
            assert!(done, "{}", s.lease("acme", &id).await);
        }
    }
}

/// A fresh suffix for SQL identifiers (lowercase hex).
fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

both_backends!(
    revocation_in_flight_at_sigterm,
    audit_flushed_on_shutdown,
    copied_ciphertext_does_not_open,
    failed_renew_leaves_the_lease,
    revoke_timeout_gives_up
);

/// Held: with one instance slot, calls one after another all run. Violated: while spinning
/// calls hold the only slot, a call that cannot get one within the call deadline is `503
/// unavailable` ("instance slots are busy"), never a 500, and the next call runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_slots_exhausted_is_503() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("  max_instances: 1\n")).await;
    s.realm("acme").await;
    let (st, m) = s.mount("acme", "p", "probe", ALL_GRANTS, Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    probe_role(&s, "ok", "ok").await;
    probe_role(&s, "loop", "loop").await;
    for _ in 0..3 {
        let (st, b) = s.creds("acme", "p", "ok", None).await;
        assert_eq!(st, StatusCode::OK, "one slot serves calls in turn: {b}");
    }
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (http, base, root) = (s.http.clone(), s.base.clone(), s.root.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/api/v1/realms/acme/engines/p/creds/loop"))
                    .bearer_auth(root)
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("request");
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut busy = 0;
    for c in calls {
        let (st, b) = c.await.expect("task");
        match st {
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(b["error"]["code"], "unavailable", "{b}");
                assert!(
                    b["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("instance slots are busy")),
                    "{b}"
                );
            }
            // A spinning call that got the slot ends at its deadline.
            StatusCode::BAD_GATEWAY => {}
            other => panic!("unexpected {other}: {b}"),
        }
    }
    assert!(busy >= 1, "four spinners on one slot: none was refused");
    let (st, b) = s.creds("acme", "p", "ok", None).await;
    assert_eq!(st, StatusCode::OK, "the slot is free again: {b}");
}

/// Production mode (no `--dev`): registration is closed (a user needs `users:manage` to be
/// registered), no root token is left in the data directory, and unsigned plugins do not
/// load. Held: root registers a user, who logs in.
async fn production_mode_is_closed(b: Backend) {
    let plugins = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n",
        plugins_dir().display(),
        std::env::temp_dir()
            .join("arcan-test-plugin-cache")
            .display()
    );
    let s = Server::start_production(b, &plugins).await;
    assert!(
        !s.dir.join("root-token").exists(),
        "a production server leaves no root-token file"
    );
    let creds = json!({"email": "new@example.com", "password": "correct horse battery"});
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(creds.clone()),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "anonymous registration: {body}"
    );
    // A user's own token does not open registration either.
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            Some(&s.root),
            Some(creds.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "root registers users: {body}");
    let (st, login) = s
        .call(Method::POST, "/api/v1/auth/login", None, Some(creds))
        .await;
    assert_eq!(st, StatusCode::OK, "{login}");
    let user = login["token"].as_str().expect("token").to_owned();
    // A user's own token does not open registration.
    let other = json!({"email": "other@example.com", "password": "correct horse battery"});
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            Some(&user),
            Some(other),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`users:manage`")),
        "{body}"
    );
    // Unsigned plugins (the test builds carry no signature) do not load.
    s.realm("acme").await;
    let (st, body) = s.mount("acme", "p", "probe", ALL_GRANTS, Value::Null).await;
    assert_eq!(
        st.as_u16() / 100,
        4,
        "an unsigned plugin was mounted: {st} {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sign")),
        "{body}"
    );
}

both_backends!(production_mode_is_closed);
