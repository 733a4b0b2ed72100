//! The plugin platform end to end: the load pipeline and the two-key capability rule,
//! every per-call limit held and violated while ordinary requests keep flowing, isolation
//! of plugin data between mounts and realms, connections that never reach the plugin, and
//! leases with renew, revoke and the reaper.

use std::time::Duration;

use arcan_tests::*;

const ALL_GRANTS: &[&str] = &["host:sql", "host:http", "host:store", "host:audit"];

async fn probe(s: &Server, realm: &str, mount: &str) {
    let (st, b) = s
        .mount(realm, mount, "probe", ALL_GRANTS, Value::Null)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

async fn mode_role(s: &Server, realm: &str, mount: &str, role: &str, def: Value) {
    s.engine_role(
        realm,
        mount,
        role,
        json!({"definition": def, "default_ttl": "10m", "max_ttl": "1h"}),
    )
    .await;
}

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Mount-time refusals: each with a clear status and message, nothing mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_pipeline_refusals() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    // Declared in the manifest but not granted by the operator.
    let (st, b) = s
        .mount(
            "acme",
            "p",
            "probe",
            &["host:store", "host:audit"],
            Value::Null,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        message(&b).contains("arcan:plugin/sql@0.2.0") && message(&b).contains("grant"),
        "{b}"
    );
    // Imported by the component but not declared by the manifest: refused at load.
    let (st, b) = s
        .mount(
            "acme",
            "u",
            "probe-undeclared",
            &["host:store"],
            Value::Null,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(message(&b).contains("does not declare `host:sql`"), "{b}");
    // A grant the manifest does not declare.
    let (st, b) = s
        .mount("acme", "h", "hello", &["host:sql"], Value::Null)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("does not declare"), "{b}");
    // Not installed; bad names; bad connections.
    let (st, b) = s.mount("acme", "x", "nope", &[], Value::Null).await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("plugin_not_installed"))
    );
    let (st, b) = s.mount("acme", "x", "../probe", &[], Value::Null).await;
    assert_refused(
        st,
        &b,
        StatusCode::NOT_FOUND,
        "plugin `../probe` is not installed",
    );
    let (st, b) = s.mount("acme", "Bad Name", "hello", &[], Value::Null).await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "mount name must be 1-64");
    let (st, b) = s
        .mount(
            "acme",
            "p",
            "probe",
            ALL_GRANTS,
            json!({"db": {"type": "postgres", "url": "mysql://x"}}),
        )
        .await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "url must start with postgres://",
    );
    let (st, b) = s
        .mount(
            "acme",
            "p",
            "probe",
            ALL_GRANTS,
            json!({"db": {"type": "ftp"}}),
        )
        .await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "unknown variant `ftp`");
    // A connection that does not answer.
    let (st, b) = s
        .mount(
            "acme",
            "p",
            "probe",
            ALL_GRANTS,
            json!({"db": {"type": "postgres", "url": "postgres://u:secret-pw@127.0.0.1:1/x"}}),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("connection_failed")),
        "{b}"
    );
    assert!(!b.to_string().contains("secret-pw"));
    // A connection whose kind needs a capability that is not granted.
    let (st, b) = s
        .mount(
            "acme",
            "h",
            "hello",
            &[],
            json!({"api": {"type": "http", "base_url": "https://example.invalid"}}),
        )
        .await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "needs `host:http`, which is not granted",
    );
    let (_, list) = s.get("/api/v1/realms/acme/engines", &s.root).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "only the built-in kv: {list}"
    );
    // The installed-plugin listing runs the same pipeline and reports the refused one.
    let (_, plugins) = s.get("/api/v1/plugins", &s.root).await;
    let undeclared = plugins["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == "probe-undeclared")
        .expect("listed")
        .clone();
    assert!(
        undeclared["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not declare"),
        "{undeclared}"
    );
}

/// Every limit violated by a misbehaving plugin: the right status and message naming the
/// plugin and the request, the core alive, and concurrent ordinary requests unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_are_contained() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    probe(&s, "acme", "p").await;
    let (st, _) = s.put(&s.root, "acme", "default", "steady", "v").await;
    assert_eq!(st, StatusCode::OK);
    for mode in [
        "noop",
        "loop",
        "memory",
        "recursion",
        "panic",
        "oversized",
        "wasi",
        "sql",
    ] {
        mode_role(
            &s,
            "acme",
            "p",
            mode,
            json!({"mode": mode, "connection": "unbound"}),
        )
        .await;
    }
    // A steady stream of KV reads while the plugins misbehave.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (http, base, root, stop) =
            (s.http.clone(), s.base.clone(), s.root.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut bad) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .get(format!("{base}/api/v1/realms/acme/secrets/steady"))
                    .bearer_auth(&root)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => ok += 1,
                    _ => bad += 1,
                }
            }
            (ok, bad)
        })
    };
    let cases = [
        ("loop", StatusCode::BAD_GATEWAY, "deadline of 2s exceeded"),
        (
            "memory",
            StatusCode::BAD_GATEWAY,
            "memory limit of 64 MiB exceeded",
        ),
        ("recursion", StatusCode::BAD_GATEWAY, "stack overflow"),
        (
            "panic",
            StatusCode::BAD_GATEWAY,
            "panicked: probe panicked on purpose",
        ),
        (
            "oversized",
            StatusCode::BAD_GATEWAY,
            "more than the 1048576 allowed",
        ),
        (
            "sql",
            StatusCode::NOT_IMPLEMENTED,
            "connection `unbound` is not a postgres connection bound to this mount",
        ),
    ];
    for (mode, status, text) in cases {
        let started = std::time::Instant::now();
        let (st, b) = s.creds("acme", "p", mode, None).await;
        assert_eq!(st, status, "{mode}: {b}");
        let msg = message(&b);
        assert!(msg.contains(text), "{mode}: {msg}");
        if status == StatusCode::BAD_GATEWAY {
            let rid = b["error"]["request_id"].as_str().expect("request id");
            assert!(
                msg.contains("plugin `probe`") && msg.contains(rid),
                "{mode}: {msg}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode} took {:?}",
            started.elapsed()
        );
        // A fresh instance serves the next call: nothing was poisoned.
        let (st, b) = s.creds("acme", "p", "noop", None).await;
        assert_eq!(st, StatusCode::OK, "after {mode}: {b}");
    }
    // WASI is deny-all: no files, no environment, no sockets.
    let (st, b) = s.creds("acme", "p", "wasi", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    for probe in ["read_file", "list_root", "write_file", "env", "tcp"] {
        assert_eq!(
            b["data"][probe]["ok"],
            json!(false),
            "{probe} was allowed: {b}"
        );
    }
    assert!(
        s.log().contains("panicked"),
        "plugin stderr reaches the log"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, bad) = reader.await.expect("reader");
    assert!(
        ok > 20 && bad == 0,
        "ordinary requests affected: {ok} ok, {bad} failed"
    );
    let (st, _) = s.get("/health", &s.root).await;
    assert_eq!(st, StatusCode::OK);
    // Limits held: a normal result passes the same checks.
    let (st, b) = s.creds("acme", "p", "noop", None).await;
    assert_eq!(
        (st, b["data"].clone()),
        (StatusCode::OK, json!({"ok": true}))
    );
}

/// More CPU-spinning calls than the server has runtime workers (it runs on this machine,
/// one worker per core) cannot starve it: guest code yields to the runtime every epoch
/// tick, so ordinary requests complete while every spinning call is still running. Without
/// the yields each spinner pins a worker until its deadline and the reads wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_plugins_do_not_pin_the_runtime() {
    let cache = std::env::temp_dir().join("arcan-test-plugin-cache");
    let cfg = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  call_timeout: 15s\n  allow_unsigned: true\n",
        plugins_dir().display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &cfg).await;
    s.realm("acme").await;
    probe(&s, "acme", "p").await;
    mode_role(&s, "acme", "p", "loop", json!({"mode": "loop"})).await;
    let (st, _) = s.put(&s.root, "acme", "default", "steady", "v").await;
    assert_eq!(st, StatusCode::OK);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..(cores * 2).clamp(4, 32))
        .map(|_| {
            let (http, base, root) = (s.http.clone(), s.base.clone(), s.root.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/api/v1/realms/acme/engines/p/creds/loop"))
                    .bearer_auth(root)
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Let every spinner reach the guest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..5 {
        let (st, b) = s.get("/api/v1/realms/acme/secrets/steady", &s.root).await;
        assert_eq!(
            (st, b["value"].clone()),
            (StatusCode::OK, json!("v")),
            "read {i}"
        );
    }
    let running = spinners.iter().filter(|h| !h.is_finished()).count();
    assert_eq!(
        running,
        spinners.len(),
        "the reads had to wait for spinning calls to end"
    );
    for h in spinners {
        let st = h.await.expect("task").expect("response");
        assert_eq!(
            st,
            StatusCode::BAD_GATEWAY,
            "the deadline still stops a spinner"
        );
    }
}

/// One plugin mounted twice in one realm and once in another: no mount sees another's data,
/// and the data is sealed at rest.
async fn plugin_data_isolation(b: Backend) {
    let s = Server::start_with(b, &plugin_config("")).await;
    s.realm("acme").await;
    s.realm("beta").await;
    for (realm, mount) in [("acme", "one"), ("acme", "two"), ("beta", "one")] {
        probe(&s, realm, mount).await;
        mode_role(
            &s,
            realm,
            mount,
            "put",
            json!({"mode": "data-put", "key": "k", "value": "plaintext-marker-7f3a"}),
        )
        .await;
        mode_role(
            &s,
            realm,
            mount,
            "get",
            json!({"mode": "data-get", "key": "k"}),
        )
        .await;
        mode_role(
            &s,
            realm,
            mount,
            "list",
            json!({"mode": "data-list", "prefix": ""}),
        )
        .await;
    }
    let (st, b) = s.creds("acme", "one", "put", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (_, own) = s.creds("acme", "one", "get", None).await;
    assert_eq!(
        own["data"]["value"],
        json!("plaintext-marker-7f3a"),
        "{own}"
    );
    for (realm, mount) in [("acme", "two"), ("beta", "one")] {
        let (st, other) = s.creds(realm, mount, "get", None).await;
        assert_eq!(st, StatusCode::OK, "{realm}/{mount}: {other}");
        assert_eq!(
            other["data"]["value"],
            Value::Null,
            "{realm}/{mount} saw it: {other}"
        );
        let (st, keys) = s.creds(realm, mount, "list", None).await;
        assert_eq!(st, StatusCode::OK, "{realm}/{mount}: {keys}");
        assert_eq!(keys["data"]["keys"], json!([]), "{realm}/{mount}: {keys}");
    }
}

/// The other documented build path: the SDK's hello example built with `cargo component`
/// (wasm32-wasip1, adapted to a component by cargo-component's WASI adapter) loads, passes
/// the pipeline and issues exactly like the `cargo build --target wasm32-wasip2` build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_component_build_loads_and_issues() {
    let built = plugins_dir().join("hello-component/engine.wasm");
    assert!(
        built.is_file(),
        "{} is missing: scripts/build-plugins builds it when cargo-component is installed \
         (scripts/test installs it: cargo install --locked cargo-component@0.21.1)",
        built.display()
    );
    let other = std::fs::read(plugins_dir().join("hello/engine.wasm")).expect("hello");
    assert_ne!(
        std::fs::read(&built).expect("hello-component"),
        other,
        "a build of its own, not a copy"
    );
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, m) = s
        .mount("acme", "hc", "hello-component", &[], Value::Null)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    s.engine_role(
        "acme",
        "hc",
        "dev",
        json!({"definition": {}, "default_ttl": "5m", "max_ttl": "10m"}),
    )
    .await;
    let (st, c) = s.creds("acme", "hc", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["data"]["greeting"], "hello dev", "{c}");
}

/// Issue, renew (bounded by max ttl), revoke (through the engine), revoke by prefix, with
/// the SDK's hello engine and the probe; every state change visible in the lease listing.
async fn leases_end_to_end(b: Backend) {
    let s = Server::start_with(b, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, m) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    s.engine_role(
        "acme",
        "hi",
        "dev",
        json!({"definition": {}, "default_ttl": "5m", "max_ttl": "10m"}),
    )
    .await;
    let (st, c) = s.creds("acme", "hi", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert!(
        c["data"]["greeting"]
            .as_str()
            .unwrap_or_default()
            .contains("dev"),
        "{c}"
    );
    assert_eq!(c["lease_duration"], 300);
    let id = c["lease_id"].as_str().expect("lease id").to_owned();
    assert!(id.starts_with("hi/dev/"), "{id}");
    // ttl above max is refused; renew is clipped to max ttl.
    let (st, b) = s.creds("acme", "hi", "dev", Some("11m")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("max_ttl"), "{b}");
    let renew = |ttl: &str| {
        s.call(
            Method::POST,
            "/api/v1/realms/acme/leases/renew",
            Some(&s.root),
            Some(json!({"lease_id": id, "ttl": ttl})),
        )
    };
    let (st, l) = renew("1h").await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_eq!(
        l["expires_at"], l["max_expires_at"],
        "renew is bounded by max ttl: {l}"
    );
    // Revoke, then revoke again (no-op), then renew a revoked lease (409).
    let revoke = |id: String| {
        s.call(
            Method::POST,
            "/api/v1/realms/acme/leases/revoke",
            Some(&s.root),
            Some(json!({"lease_id": id})),
        )
    };
    let (st, l) = revoke(id.clone()).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    let (st, l) = revoke(id.clone()).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    let (st, b) = renew("1m").await;
    assert_refused(st, &b, StatusCode::CONFLICT, "lease is revoked");
    let (st, b) = revoke("hi/dev/none".into()).await;
    assert_refused(st, &b, StatusCode::NOT_FOUND, "lease not found");
    // The probe keeps per-credential plugin data; revoke removes it through the engine.
    probe(&s, "acme", "p").await;
    mode_role(&s, "acme", "p", "ok", json!({"mode": "ok"})).await;
    // The host's identity context reaches the plugin with every call.
    mode_role(&s, "acme", "p", "ctx", json!({"mode": "context"})).await;
    let res = s
        .http
        .post(format!("{}/api/v1/realms/acme/engines/p/creds/ctx", s.base))
        .bearer_auth(&s.root)
        .send()
        .await
        .expect("send");
    let rid = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let ctx: Value = res.json().await.expect("json");
    let d = &ctx["data"];
    assert_eq!(
        (d["realm"].clone(), d["mount"].clone(), d["role"].clone()),
        (json!("acme"), json!("p"), json!("ctx")),
        "{ctx}"
    );
    assert_eq!(d["request_id"], json!(rid), "{ctx}");
    assert!(
        d["user_id"].is_string() && d["token_id"].is_string() && d["realm_id"].is_string(),
        "{ctx}"
    );
    mode_role(
        &s,
        "acme",
        "p",
        "users",
        json!({"mode": "data-list", "prefix": "users/"}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (st, c) = s.creds("acme", "p", "ok", None).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        ids.push(c["lease_id"].as_str().expect("id").to_owned());
    }
    let (_, users) = s.creds("acme", "p", "users", None).await;
    assert_eq!(
        users["data"]["keys"].as_array().map(Vec::len),
        Some(3),
        "{users}"
    );
    let (st, r) = revoke(ids[0].clone()).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/leases/revoke-prefix",
            Some(&s.root),
            Some(json!({"prefix": "p/ok/"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["revoked"].as_array().map(Vec::len), Some(2), "{r}");
    let (_, users) = s.creds("acme", "p", "users", None).await;
    assert_eq!(
        users["data"]["keys"],
        json!([]),
        "revoke ran in the engine: {users}"
    );
    let (_, active) = s
        .get(
            "/api/v1/realms/acme/leases?state=active&prefix=p/ok/",
            &s.root,
        )
        .await;
    assert_eq!(active["items"], json!([]), "{active}");
    let (_, all) = s.get("/api/v1/realms/acme/leases?limit=2", &s.root).await;
    assert_eq!(
        (
            all["has_more"].clone(),
            all["items"].as_array().map(Vec::len)
        ),
        (json!(true), Some(2))
    );
    // Unknown role, unknown mount.
    let (st, b) = s.creds("acme", "p", "nope", None).await;
    assert_refused(st, &b, StatusCode::NOT_FOUND, "role `nope` does not exist");
    let (st, b) = s.creds("acme", "nope", "ok", None).await;
    assert_refused(
        st,
        &b,
        StatusCode::NOT_FOUND,
        "no engine is mounted at `nope`",
    );
    // A member without engines:manage cannot mount; a viewer cannot issue.
    let (_, vtoken) = s.user("viewer@acme.test").await;
    s.bind("acme", "user:viewer@acme.test", "viewer").await;
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/p/creds/ok",
            Some(&vtoken),
            None,
        )
        .await;
    assert_refused(st, &b, StatusCode::FORBIDDEN, "`leases:create`");
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines",
            Some(&vtoken),
            Some(json!({"name": "x", "plugin": "hello"})),
        )
        .await;
    assert_refused(st, &b, StatusCode::FORBIDDEN, "`engines:manage`");
}

/// The reaper revokes expired leases through their engine, retries failures and marks a
/// lease that keeps failing irrevocable (logged and audited); unmounting keeps the leases
/// it cannot revoke visible instead of losing them.
async fn reaper_and_unmount(b: Backend) {
    let reaper = "reaper:\n  interval: 1s\n  grace: 20s\n  revoke_timeout: 5s\n  max_attempts: 2\n  backoff: 1s\n";
    let s = Server::start_with(b, &plugin_config(reaper)).await;
    s.realm("acme").await;
    probe(&s, "acme", "p").await;
    mode_role(&s, "acme", "p", "ok", json!({"mode": "ok"})).await;
    mode_role(&s, "acme", "p", "bad", json!({"mode": "revoke-fails"})).await;
    mode_role(
        &s,
        "acme",
        "p",
        "users",
        json!({"mode": "data-list", "prefix": "users/"}),
    )
    .await;
    let (_, ok) = s.creds("acme", "p", "ok", Some("1s")).await;
    let user = format!(
        "users/{}",
        ok["data"]["username"].as_str().expect("username")
    );
    let (_, bad) = s.creds("acme", "p", "bad", Some("1s")).await;
    let (ok, bad) = (
        ok["lease_id"].as_str().expect("ok").to_owned(),
        bad["lease_id"].as_str().expect("bad").to_owned(),
    );
    // The reaper marks the lease irrevocable, then records the last attempt (two writes):
    // wait for both.
    let done = Server::wait_for(30, || async {
        let bad = s.lease("acme", &bad).await;
        s.lease("acme", &ok).await["state"] == "revoked"
            && bad["state"] == "irrevocable"
            && bad["attempts"].as_i64() >= Some(2)
    })
    .await;
    assert!(
        done,
        "ok: {} bad: {}",
        s.lease("acme", &ok).await,
        s.lease("acme", &bad).await
    );
    let bad_lease = s.lease("acme", &bad).await;
    assert!(
        bad_lease["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("revocation failed on purpose"),
        "{bad_lease}"
    );
    // `max_attempts: 2`: tried exactly twice, then given up.
    assert_eq!(bad_lease["attempts"], json!(2), "{bad_lease}");
    let (_, users) = s.creds("acme", "p", "users", None).await;
    let keys = users["data"]["keys"].as_array().expect("keys");
    assert!(
        !keys.contains(&json!(user)) && keys.len() == 1,
        "the reaper revoked through the engine: {users}"
    );
    assert!(
        s.log().contains("lease is irrevocable"),
        "reported in the log"
    );
    let audited = Server::wait_for(10, || async {
        let (_, ev) = s
            .get(
                "/api/v1/realms/acme/audit?action=lease.irrevocable",
                &s.root,
            )
            .await;
        ev["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["target"] == bad.as_str()))
    })
    .await;
    assert!(audited, "irrevocable lease audited");
    // Unmount with a lease that cannot be revoked: refused, then forced.
    let (_, stuck) = s.creds("acme", "p", "bad", Some("10m")).await;
    let stuck = stuck["lease_id"].as_str().expect("stuck").to_owned();
    let (_, live) = s.creds("acme", "p", "ok", Some("10m")).await;
    let live = live["lease_id"].as_str().expect("live").to_owned();
    let (st, b) = s
        .call(Method::DELETE, "/api/v1/realms/acme", Some(&s.root), None)
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a realm with active leases stays: {b}"
    );
    let (st, b) = s
        .call(
            Method::DELETE,
            "/api/v1/realms/acme/engines/p",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{b}");
    assert!(message(&b).contains(&stuck), "{b}");
    assert_eq!(
        s.lease("acme", &live).await["state"],
        "revoked",
        "revocable leases went first"
    );
    let (st, b) = s
        .call(
            Method::DELETE,
            "/api/v1/realms/acme/engines/p?force=true",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let l = s.lease("acme", &stuck).await;
    assert_eq!(l["state"], "irrevocable", "{l}");
    assert!(
        l["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unmounted"),
        "{l}"
    );
    let (st, _) = s.get("/api/v1/realms/acme/engines/p", &s.root).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A PostgreSQL connection: the plugin names it and gets rows; the URL's password is never
/// returned by the API, stored in plain text, logged, or given to the plugin; root rotation
/// changes the password on the server without anyone seeing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_keep_root_credentials_in_the_host() {
    let role = format!("arcan_root_{}", uuid::Uuid::new_v4().simple());
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let admin_url = pg_url();
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL (see ./scripts/test)")
    };
    sqlx::query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        .execute(&mut admin)
        .await
        .expect("create role");
    let host_db = admin_url
        .rsplit_once('@')
        .map(|(_, r)| r.to_owned())
        .expect("host");
    let url = format!("postgres://{role}:{password}@{host_db}");
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    // The probe's rotate-root reads the connection name from the mount configuration.
    let (st, m) = s.call(Method::POST, "/api/v1/realms/acme/engines", Some(&s.root), Some(json!({
        "name": "p", "plugin": "probe", "grants": ALL_GRANTS, "config": {"connection": "db"},
        "connections": {"db": {"type": "postgres", "url": url}},
    }))).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert!(
        !m.to_string().contains(&password),
        "mount response shows the password: {m}"
    );
    mode_role(
        &s,
        "acme",
        "p",
        "whoami",
        json!({"mode": "sql", "connection": "db", "sql": "SELECT current_user AS who"}),
    )
    .await;
    mode_role(&s, "acme", "p", "ctx", json!({"mode": "context"})).await;
    mode_role(&s, "acme", "p", "wasi", json!({"mode": "wasi"})).await;
    let (st, who) = s.creds("acme", "p", "whoami", None).await;
    assert_eq!(st, StatusCode::OK, "{who}");
    assert_eq!(who["data"]["rows"], json!([[role]]), "{who}");
    // Everything the plugin is given per call, and what it can reach, carries no credential.
    let (_, ctx) = s.creds("acme", "p", "ctx", None).await;
    let (_, wasi) = s.creds("acme", "p", "wasi", None).await;
    let (_, read) = s.get("/api/v1/realms/acme/engines/p", &s.root).await;
    for (what, v) in [("context", &ctx), ("wasi", &wasi), ("read", &read)] {
        assert!(
            !v.to_string().contains(&password),
            "{what} leaks the password: {v}"
        );
    }
    assert_eq!(read["connections"]["db"]["type"], "postgres", "{read}");
    assert!(
        !contains(&s.store_dump().await, &password),
        "password stored in plain text"
    );
    // Root rotation through the host: the stored hash changes, the engine keeps working.
    let before = pg_password_hash(&mut admin, &role).await;
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/p/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let after = pg_password_hash(&mut admin, &role).await;
    assert_ne!(before, after, "the root password changed on the server");
    let (st, who) = s.creds("acme", "p", "whoami", None).await;
    assert_eq!(
        (st, who["data"]["rows"].clone()),
        (StatusCode::OK, json!([[role]])),
        "{who}"
    );
    let (_, read) = s.get("/api/v1/realms/acme/engines/p", &s.root).await;
    assert!(
        !read.to_string().contains("pw-") && !r.to_string().contains("pw-"),
        "{read}"
    );
    assert!(!s.log().contains(&password), "password in the log");
    drop(s);
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await
        .expect("drop role");
}

/// Host SQL results are capped while they are read: ten million rows or a hundred
/// megabytes stop at the cap (400 naming it) instead of being loaded first, the connection
/// that was abandoned mid-result is not reused, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_results_are_capped_while_streaming() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, m) = s
        .mount(
            "acme",
            "p",
            "probe",
            ALL_GRANTS,
            json!({"db": {"type": "postgres", "url": pg_url()}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let queries = [
        ("rows", "SELECT generate_series(1, 10000000) AS n"),
        (
            "bytes",
            "SELECT repeat('x', 1000000) AS blob FROM generate_series(1, 100)",
        ),
        ("under", "SELECT generate_series(1, 10000) AS n"),
        ("one", "SELECT 1 AS n"),
    ];
    for (role, sql) in queries {
        mode_role(
            &s,
            "acme",
            "p",
            role,
            json!({"mode": "sql", "connection": "db", "sql": sql}),
        )
        .await;
    }
    for (role, cap) in [
        ("rows", "more than the 10000 rows allowed"),
        ("bytes", "more than the 4194304 bytes allowed"),
    ] {
        let started = std::time::Instant::now();
        let (st, b) = s.creds("acme", "p", role, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{role}: {b}");
        assert!(message(&b).contains(cap), "{role}: {b}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{role} took {:?}",
            started.elapsed()
        );
        // The next query gets a working connection, and ordinary requests are served.
        let (st, b) = s.creds("acme", "p", "one", None).await;
        assert_eq!(
            (st, b["data"]["rows"].clone()),
            (StatusCode::OK, json!([[1]])),
            "after {role}: {b}"
        );
        let (st, _) = s.get("/health", &s.root).await;
        assert_eq!(st, StatusCode::OK);
    }
    // Exactly at the row cap: allowed.
    let (st, b) = s.creds("acme", "p", "under", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["rows"].as_array().map(Vec::len), Some(10_000));
}

/// Counts the realm's audit events with `action` (waiting up to 10 s for `want`).
async fn audited(s: &Server, action: &str, want: usize) -> usize {
    let count = || async {
        let (_, ev) = s
            .get(
                &format!("/api/v1/realms/acme/audit?action={action}&limit=1000"),
                &s.root,
            )
            .await;
        ev["items"].as_array().map(Vec::len).unwrap_or(0)
    };
    Server::wait_for(10, || async { count().await == want }).await;
    count().await
}

/// The per-call audit byte quota (`plugins.max_audit_bytes_per_call`): under it every event
/// is kept; the event that would cross it is refused with a host error, failing the call,
/// and the events before it are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_bytes_quota_holds() {
    // Each `many` event counts its action and target: "many" + "t<i>" = 6 bytes for i < 10.
    let s = Server::start_with(
        Backend::Sqlite,
        &plugin_config("  max_audit_bytes_per_call: 40\n"),
    )
    .await;
    s.realm("acme").await;
    probe(&s, "acme", "p").await;
    mode_role(
        &s,
        "acme",
        "p",
        "six",
        json!({"mode": "audit-many", "count": 6}),
    )
    .await;
    mode_role(
        &s,
        "acme",
        "p",
        "ten",
        json!({"mode": "audit-many", "count": 10}),
    )
    .await;
    let (st, b) = s.creds("acme", "p", "six", None).await;
    assert_eq!(st, StatusCode::OK, "36 bytes fit in 40: {b}");
    assert_eq!(audited(&s, "plugin.probe.many", 6).await, 6);
    let (st, b) = s.creds("acme", "p", "ten", None).await;
    assert_eq!(
        st,
        StatusCode::BAD_GATEWAY,
        "the 7th event crosses 40 bytes: {b}"
    );
    assert!(message(&b).contains("audit quota exceeded"), "{b}");
    assert_eq!(audited(&s, "plugin.probe.many", 12).await, 12, "6 + 6 kept");
    assert_eq!(audited(&s, "plugin.audit_quota_exceeded", 1).await, 1);
}

/// Host-call quotas (defaults): audit events per call (the excess refused, failing the call,
/// reported once),
/// plugin data writes per call, and keys and bytes per mount; under each, all works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_call_quotas_hold() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    for mount in ["p", "keys", "bytes"] {
        probe(&s, "acme", mount).await;
    }
    let role = |mount: &'static str, name: &'static str, def: Value| {
        let s = &s;
        async move { mode_role(s, "acme", mount, name, def).await }
    };
    role("p", "audit10", json!({"mode": "audit-many", "count": 10})).await;
    role("p", "audit40", json!({"mode": "audit-many", "count": 40})).await;
    let (st, b) = s.creds("acme", "p", "audit10", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(audited(&s, "plugin.probe.many", 10).await, 10);
    // Over the quota the event is refused with a host error, which fails the call (502);
    // the 32 events before it are kept, and the refusal is reported once.
    let (st, b) = s.creds("acme", "p", "audit40", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit quota exceeded")),
        "{b}"
    );
    assert_eq!(
        audited(&s, "plugin.probe.many", 42).await,
        42,
        "32 of 40 kept"
    );
    assert_eq!(audited(&s, "plugin.audit_quota_exceeded", 1).await, 1);
    assert_eq!(
        s.log().matches("exceeded its audit quota").count(),
        1,
        "logged once"
    );
    // Writes per call: 64 pass, the 65th is refused with the plugin-visible error.
    role(
        "p",
        "w64",
        json!({"mode": "data-many", "count": 64, "prefix": "a/"}),
    )
    .await;
    role(
        "p",
        "w65",
        json!({"mode": "data-many", "count": 65, "prefix": "b/"}),
    )
    .await;
    let (_, b) = s.creds("acme", "p", "w64", None).await;
    assert_eq!(b["data"], json!({"stored": 64, "error": null}), "{b}");
    let (_, b) = s.creds("acme", "p", "w65", None).await;
    assert_eq!(b["data"]["stored"], 64, "{b}");
    let err = b["data"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("more than 64 plugin data writes in one call"),
        "{b}"
    );
    // Keys per mount: 1000 fit, the 1001st does not.
    for i in 0..15 {
        let name: &'static str = Box::leak(format!("k{i}").into_boxed_str());
        let prefix = format!("k{i}/");
        role(
            "keys",
            name,
            json!({"mode": "data-many", "count": 64, "prefix": prefix}),
        )
        .await;
        let (_, b) = s.creds("acme", "keys", name, None).await;
        assert_eq!(b["data"], json!({"stored": 64, "error": null}), "{b}");
    }
    role(
        "keys",
        "last",
        json!({"mode": "data-many", "count": 64, "prefix": "z/"}),
    )
    .await;
    let (_, b) = s.creds("acme", "keys", "last", None).await;
    assert_eq!(b["data"]["stored"], 40, "1000 keys in all: {b}");
    let err = b["data"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("at most 1000 are allowed"), "{b}");
    // Bytes per mount: 17 values of 60 000 bytes fit in 1 MiB, the 18th does not.
    role(
        "bytes",
        "big",
        json!({"mode": "data-many", "count": 20, "size": 60000}),
    )
    .await;
    let (_, b) = s.creds("acme", "bytes", "big", None).await;
    assert_eq!(b["data"]["stored"], 17, "{b}");
    let err = b["data"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("at most 1048576 are allowed"), "{b}");
    // Overwriting a key in place does not count it twice.
    role(
        "bytes",
        "again",
        json!({"mode": "data-many", "count": 17, "size": 60000}),
    )
    .await;
    let (_, b) = s.creds("acme", "bytes", "again", None).await;
    assert_eq!(b["data"], json!({"stored": 17, "error": null}), "{b}");
}

async fn pg_password_hash(admin: &mut sqlx::PgConnection, role: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(admin)
        .await
        .expect("pg_authid")
}

/// Two nodes on one PostgreSQL store: both reapers run and both revoke leases (small
/// batches, so neither takes all), each expired lease is revoked once, by `system:reaper`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reapers_revoke_each_lease_once() {
    let reaper = "reaper:\n  interval: 1s\n  grace: 20s\n  revoke_timeout: 5s\n  batch: 2\n";
    let a = Server::start_with(Backend::Postgres, &plugin_config(reaper)).await;
    let bnode = a.join().await;
    a.realm("acme").await;
    probe(&a, "acme", "p").await;
    mode_role(&a, "acme", "p", "ok", json!({"mode": "ok"})).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (st, c) = a.creds("acme", "p", "ok", Some("1s")).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        ids.push(c["lease_id"].as_str().expect("id").to_owned());
    }
    let all_revoked = Server::wait_for(40, || async {
        let (_, l) = a
            .get("/api/v1/realms/acme/leases?state=active", &a.root)
            .await;
        l["items"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    if !all_revoked {
        let (_, l) = a
            .get("/api/v1/realms/acme/leases?state=active", &a.root)
            .await;
        panic!(
            "leases left active: {l}\nnode a:\n{}\nnode b:\n{}",
            a.log(),
            bnode.log()
        );
    }
    // Each lease has exactly one successful engine revocation in the audit log.
    let counted = Server::wait_for(10, || async {
        let (_, ev) = a
            .get(
                "/api/v1/realms/acme/audit?action=plugin.probe.revoke&limit=1000",
                &a.root,
            )
            .await;
        ev["items"].as_array().map(Vec::len) == Some(20)
    })
    .await;
    let (_, ev) = a
        .get(
            "/api/v1/realms/acme/audit?action=plugin.probe.revoke&limit=1000",
            &a.root,
        )
        .await;
    assert!(
        counted,
        "engine revocations: {}",
        ev["items"].as_array().map(Vec::len).unwrap_or(0)
    );
    let (_, reaped) = a
        .get(
            "/api/v1/realms/acme/audit?action=lease.revoke&limit=1000",
            &a.root,
        )
        .await;
    let mut targets: Vec<&str> = reaped["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    targets.sort_unstable();
    let n = targets.len();
    targets.dedup();
    assert_eq!(
        (n, targets.len()),
        (20, 20),
        "a lease was reaped twice or missed"
    );
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(targets, expected, "the reaped leases are the issued ones");
    for e in reaped["items"].as_array().expect("items") {
        assert_eq!(
            (
                e["actor"]["auth_method"].clone(),
                e["actor"]["user_id"].clone()
            ),
            (json!("system"), json!("system:reaper")),
            "{e}"
        );
    }
    // Each node's log counts what its reaper revoked: both took part, 20 in all.
    let (on_a, on_b) = (reaped_in_log(&a.log()), reaped_in_log(&bnode.log()));
    assert!(
        on_a > 0 && on_b > 0 && on_a + on_b == 20,
        "node a reaped {on_a}, node b {on_b}"
    );
    drop(bnode);
}

/// Leases a node's reaper handled, from its JSON log's "reaper round done" lines.
fn reaped_in_log(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "reaper round done")
        .filter_map(|e| e["fields"]["leases"].as_u64())
        .sum()
}

both_backends!(plugin_data_isolation, leases_end_to_end, reaper_and_unmount);
