//! The host's guardians hold for `arcan:plugin@0.1.0` components too. Host functions are
//! written once against the 0.2.0 bindings and the 0.1.0 ones convert and delegate; these
//! tests drive every guardian through that delegation with the `tokens-v01` fixture (built
//! with `wit-bindgen` against `wit/arcan-plugin-0.1.0`, no SDK), whose role field `check`
//! makes `issue` exercise one host path. Each guardian is shown holding (the call succeeds
//! with the grant, under the limit) and violated (its status and message), and after every
//! violation an ordinary request and an ordinary issue still succeed.
//!
//! Covered: the two-key rule for 0.1.0 imports (manifest and grant), `sql` (every value
//! variant both ways, a transaction, connections that are not bound or of another kind),
//! `http` (through a local HTTPS endpoint with its own CA: this server; not bound, of another
//! kind, a path that would leave the base URL), `plugin-data` (list, isolation between
//! mounts, the per-call write quota, bounded arguments), the per-call audit quota, the result
//! size limit, the call deadline, and a denial the plugin hides.

use std::path::Path;
use std::time::{Duration, Instant};

use arcan_tests::*;

const ALL_GRANTS: &[&str] = &["host:sql", "host:http", "host:store", "host:audit"];
const PLUGIN: &str = "tokens-v01";

async fn role(s: &Server, mount: &str, name: &str, def: Value) {
    s.engine_role(
        "acme",
        mount,
        name,
        json!({"definition": def, "default_ttl": "5m", "max_ttl": "10m"}),
    )
    .await;
}

/// Mounts the fixture at `mount` with every grant and `connections`, and its role `plain`
/// (no check: an ordinary token).
async fn mount(s: &Server, mount: &str, connections: Value) {
    let (st, b) = s
        .mount("acme", mount, PLUGIN, ALL_GRANTS, connections)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    role(s, mount, "plain", json!({"prefix": "plain"})).await;
}

/// After a violation (`after` names it) the core is unaffected: a KV write is read back and
/// the same mount issues an ordinary token.
async fn core_unaffected(s: &Server, mount: &str, after: &str) {
    let (st, b) = s.put(&s.root, "acme", "default", "steady", after).await;
    assert_eq!(st, StatusCode::OK, "KV write after {after}: {b}");
    let (st, b) = s.get("/api/v1/realms/acme/secrets/steady", &s.root).await;
    assert_eq!(
        (st, b["value"].clone()),
        (StatusCode::OK, json!(after)),
        "KV read after {after}: {b}"
    );
    let (st, c) = s.creds("acme", mount, "plain", None).await;
    assert_eq!(st, StatusCode::OK, "ordinary issue after {after}: {c}");
    let token = c["data"]["token"].as_str().unwrap_or_default();
    assert!(
        token.starts_with("plain-") && token.len() == 6 + 32,
        "after {after}: {c}"
    );
}

/// Issues from `mount`'s role `name` and returns what its check came back with.
async fn checked(s: &Server, mount: &str, name: &str) -> Value {
    let (st, c) = s.creds("acme", mount, name, None).await;
    assert_eq!(st, StatusCode::OK, "{name}: {c}");
    assert_eq!(c["renewable"], json!(false), "{name}: {c}");
    c["data"]["check"].clone()
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

/// Copies the installed fixture into `dir` as `name`, its manifest's capabilities `caps`.
fn repackage(dir: &Path, name: &str, caps: &[&str]) {
    let src = plugins_dir().join(PLUGIN);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::copy(src.join("engine.wasm"), dst.join("engine.wasm")).expect("copy");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).expect("manifest"))
            .expect("json");
    manifest["name"] = json!(name);
    manifest["capabilities"] = json!(caps);
    std::fs::write(dst.join("manifest.json"), manifest.to_string()).expect("write");
}

/// The two-key rule for 0.1.0 imports: the component imports `arcan:plugin/sql@0.1.0` and
/// `arcan:plugin/http@0.1.0`, so it mounts only when its manifest declares `host:sql` and
/// `host:http` (first key) and the operator grants them (second key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_of_0_1_need_both_keys() {
    let dir = Server::fresh_dir();
    let store = ["host:store", "host:audit", "engine:dynamic_credentials"];
    repackage(
        &dir,
        PLUGIN,
        &[&["host:sql", "host:http"][..], &store[..]].concat(),
    );
    repackage(
        &dir,
        "tokens-undeclared",
        &[&["host:http"][..], &store[..]].concat(),
    );
    let cache = std::env::temp_dir().join("arcan-test-plugin-cache");
    let config = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  allow_unsigned: true\n",
        dir.display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &config).await;
    s.realm("acme").await;
    // Declared, not granted: refused at mount, naming the 0.1.0 import and the grant.
    for (grants, import, cap) in [
        (
            ["host:http", "host:store", "host:audit"],
            "arcan:plugin/sql@0.1.0",
            "host:sql",
        ),
        (
            ["host:sql", "host:store", "host:audit"],
            "arcan:plugin/http@0.1.0",
            "host:http",
        ),
    ] {
        let (st, b) = s.mount("acme", "t", PLUGIN, &grants, Value::Null).await;
        assert_refused(
            st,
            &b,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("imports `{import}`, which needs `{cap}`; grant it when mounting"),
        );
    }
    // Granted as far as the manifest allows, but imported without being declared.
    let (st, b) = s
        .mount(
            "acme",
            "u",
            "tokens-undeclared",
            &["host:http", "host:store", "host:audit"],
            Value::Null,
        )
        .await;
    assert_refused(
        st,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "imports `arcan:plugin/sql@0.1.0` but its manifest does not declare `host:sql`",
    );
    let (_, list) = s.get("/api/v1/realms/acme/engines", &s.root).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "nothing mounted but the built-in kv: {list}"
    );
    // Both keys: it mounts and issues.
    mount(&s, "t", Value::Null).await;
    core_unaffected(&s, "t", "refused-imports").await;
}

/// `sql` through 0.1.0: every value variant goes to PostgreSQL as a parameter and comes
/// back as a column unchanged, and a two-statement transaction reports its row counts;
/// `http` through 0.1.0 reaches a local HTTPS endpoint (this server, trusted by its own CA).
/// A connection that is not bound, or of the other kind, is refused with 501 `not_granted`
/// even though the engine answers `denied` (403), and a path that would leave the base URL
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_through_0_1() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let ca = std::fs::read_to_string(s.dir.join("tls/ca.pem")).expect("ca.pem");
    mount(
        &s,
        "t",
        json!({
            "db": {"type": "postgres", "url": pg_url()},
            "api": {"type": "http", "base_url": s.base, "ca_cert": ca},
        }),
    )
    .await;
    // Each variant once, tagged as the engine tags `sql.value`s: text (not ASCII), an int
    // no f64 holds, a boolean, a float, bytes (hex) and null.
    let params = json!([
        {"text": "zażółć 'ok' ✓"},
        {"int": -9_007_199_254_740_993_i64},
        {"boolean": true},
        {"float": -1234.0625},
        {"bytes": "00fe7fff"},
        {"null": null},
    ]);
    role(
        &s,
        "t",
        "values",
        json!({"prefix": "sql", "check": "sql", "params": params}),
    )
    .await;
    let got = checked(&s, "t", "values").await;
    assert_eq!(
        got["columns"],
        json!(["t", "n", "b", "f", "y", "z"]),
        "{got}"
    );
    assert_eq!(
        got["rows"],
        json!([params]),
        "every variant round-trips: {got}"
    );
    assert_eq!(
        got["affected"],
        json!([0, 2]),
        "the transaction's two statements: {got}"
    );

    role(
        &s,
        "t",
        "health",
        json!({"prefix": "web", "check": "http", "path": "/health"}),
    )
    .await;
    let direct = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .expect("health")
        .bytes()
        .await
        .expect("body");
    let got = checked(&s, "t", "health").await;
    assert_eq!(
        got,
        json!({"status": 200, "body_bytes": direct.len()}),
        "{got}"
    );
    // The endpoint's answer passes through as it is: the host adds no credential of ours.
    role(
        &s,
        "t",
        "realms",
        json!({"prefix": "web", "check": "http", "path": "/api/v1/realms"}),
    )
    .await;
    assert_eq!(checked(&s, "t", "realms").await["status"], 401);

    let refusals = [
        (
            "sql-unbound",
            json!({"prefix": "sql", "check": "sql", "connection": "nope", "params": []}),
            StatusCode::NOT_IMPLEMENTED,
            "connection `nope` is not a postgres connection bound to this mount",
        ),
        (
            "sql-on-http",
            json!({"prefix": "sql", "check": "sql", "connection": "api", "params": []}),
            StatusCode::NOT_IMPLEMENTED,
            "connection `api` is not a postgres connection bound to this mount",
        ),
        (
            "http-unbound",
            json!({"prefix": "web", "check": "http", "connection": "nope"}),
            StatusCode::NOT_IMPLEMENTED,
            "connection `nope` is not an http connection bound to this mount",
        ),
        (
            "http-on-sql",
            json!({"prefix": "web", "check": "http", "connection": "db"}),
            StatusCode::NOT_IMPLEMENTED,
            "connection `db` is not an http connection bound to this mount",
        ),
        (
            "http-elsewhere",
            json!({"prefix": "web", "check": "http", "path": "//example.com/x"}),
            StatusCode::BAD_GATEWAY,
            "path must start with a single `/`",
        ),
    ];
    for (name, def, status, phrase) in refusals {
        role(&s, "t", name, def).await;
        let (st, b) = s.creds("acme", "t", name, None).await;
        assert_refused(st, &b, status, phrase);
        if status == StatusCode::NOT_IMPLEMENTED {
            assert_eq!(b["error"]["code"], "not_granted", "{name}: {b}");
        }
        core_unaffected(&s, "t", name).await;
    }
}

/// `plugin-data` through 0.1.0: `list` sees the mount's own records (and their removal by
/// revoke), never another mount's; the per-call write quota lets `max` puts through and
/// refuses the next with an `invalid` host error the engine sees; an oversized argument
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_data_through_0_1() {
    let s = Server::start_with(
        Backend::Sqlite,
        &plugin_config("  max_data_writes_per_call: 8\n"),
    )
    .await;
    s.realm("acme").await;
    for m in ["t", "u"] {
        mount(&s, m, Value::Null).await;
        role(&s, m, "list", json!({"prefix": "ls", "check": "list"})).await;
    }
    let mut leases = Vec::new();
    for _ in 0..3 {
        let (st, c) = s.creds("acme", "t", "plain", None).await;
        assert_eq!(st, StatusCode::OK, "{c}");
        leases.push(c["lease_id"].as_str().expect("lease id").to_owned());
    }
    let got = checked(&s, "t", "list").await;
    assert_eq!(got["count"], 3, "{got}");
    assert!(
        got["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k.as_str().is_some_and(|k| k.starts_with("issued/"))),
        "{got}"
    );
    assert_eq!(
        checked(&s, "u", "list").await,
        json!({"count": 0, "keys": []}),
        "another mount sees none of them"
    );
    let (st, l) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/leases/revoke",
            Some(&s.root),
            Some(json!({"lease_id": leases[0]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{l}");
    assert_eq!(
        checked(&s, "t", "list").await["count"],
        2,
        "revoke deleted its record"
    );

    // The write quota: 8 puts in one call pass, the 9th is refused (the engine reports it).
    role(
        &s,
        "t",
        "many8",
        json!({"prefix": "w", "check": "data-many", "count": 8}),
    )
    .await;
    role(
        &s,
        "t",
        "many9",
        json!({"prefix": "w", "check": "data-many", "count": 9}),
    )
    .await;
    role(
        &s,
        "t",
        "list-many",
        json!({"prefix": "ls", "check": "list", "under": "many/"}),
    )
    .await;
    assert_eq!(
        checked(&s, "t", "many8").await,
        json!({"stored": 8, "error": null})
    );
    let got = checked(&s, "t", "many9").await;
    assert_eq!(
        (got["stored"].clone(), got["error"]["kind"].clone()),
        (json!(8), json!("invalid")),
        "{got}"
    );
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("quota exceeded: more than 8 plugin data writes in one call"),
        "{got}"
    );
    let keys = checked(&s, "t", "list-many").await;
    assert_eq!(
        keys["keys"],
        json!([
            "many/0", "many/1", "many/2", "many/3", "many/4", "many/5", "many/6", "many/7"
        ]),
        "the refused write was not made: {keys}"
    );
    core_unaffected(&s, "t", "write-quota").await;

    // Arguments are bounded: a prefix longer than a key can be.
    role(
        &s,
        "t",
        "long",
        json!({"prefix": "ls", "check": "list", "under": "p".repeat(300)}),
    )
    .await;
    let (st, b) = s.creds("acme", "t", "long", None).await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_GATEWAY,
        "prefix is 300 bytes, more than the 256 allowed",
    );
    core_unaffected(&s, "t", "long-prefix").await;
}

/// The per-call audit quota through 0.1.0's `audit.emit` (which returns nothing): `max`
/// events pass; the next one fails the call (502), the events before it are kept and the
/// refusal is audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_quota_through_0_1() {
    let s = Server::start_with(
        Backend::Sqlite,
        &plugin_config("  max_audit_events_per_call: 4\n"),
    )
    .await;
    s.realm("acme").await;
    mount(&s, "t", Value::Null).await;
    role(
        &s,
        "t",
        "four",
        json!({"prefix": "a", "check": "audit-flood", "count": 4}),
    )
    .await;
    role(
        &s,
        "t",
        "five",
        json!({"prefix": "a", "check": "audit-flood", "count": 5}),
    )
    .await;
    assert_eq!(checked(&s, "t", "four").await, json!({"emitted": 4}));
    assert_eq!(audited(&s, "plugin.tokens-v01.flood", 4).await, 4);
    let (st, b) = s.creds("acme", "t", "five", None).await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_GATEWAY,
        "audit quota exceeded: at most 4 events",
    );
    let rid = b["error"]["request_id"].as_str().expect("request id");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("plugin `tokens-v01`") && m.contains(rid)),
        "{b}"
    );
    assert_eq!(
        audited(&s, "plugin.tokens-v01.flood", 8).await,
        8,
        "4 + the 4 before the refusal"
    );
    assert_eq!(audited(&s, "plugin.audit_quota_exceeded", 1).await, 1);
    core_unaffected(&s, "t", "audit-quota").await;
    let (_, leases) = s
        .get("/api/v1/realms/acme/leases?prefix=t/five/", &s.root)
        .await;
    assert_eq!(leases["items"], json!([]), "nothing leased: {leases}");
}

/// The result size limit and the call deadline through 0.1.0: a result under
/// `max_result_bytes` and a call that ends before the deadline pass; a larger result and a
/// call that never ends are refused with 502 naming the plugin and the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_size_and_deadline_through_0_1() {
    let s = Server::start_with(
        Backend::Sqlite,
        &plugin_config("  max_result_bytes: 4096\n"),
    )
    .await;
    s.realm("acme").await;
    mount(&s, "t", Value::Null).await;
    role(
        &s,
        "t",
        "small",
        json!({"prefix": "b", "check": "big", "bytes": 3000}),
    )
    .await;
    role(
        &s,
        "t",
        "large",
        json!({"prefix": "b", "check": "big", "bytes": 5000}),
    )
    .await;
    role(
        &s,
        "t",
        "brief",
        json!({"prefix": "s", "check": "spin", "ms": 300}),
    )
    .await;
    role(&s, "t", "forever", json!({"prefix": "s", "check": "spin"})).await;
    let got = checked(&s, "t", "small").await;
    assert_eq!(got["filler"].as_str().map(str::len), Some(3000));
    assert_eq!(checked(&s, "t", "brief").await, json!({"spun_ms": 300}));
    for (name, phrase) in [
        ("large", "bytes, more than the 4096 allowed"),
        ("forever", "deadline of 2s exceeded"),
    ] {
        let started = Instant::now();
        let (st, b) = s.creds("acme", "t", name, None).await;
        assert_refused(st, &b, StatusCode::BAD_GATEWAY, phrase);
        let rid = b["error"]["request_id"].as_str().expect("request id");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("plugin `tokens-v01`") && m.contains(rid)),
            "{name}: {b}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
        core_unaffected(&s, "t", name).await;
    }
}

/// A denial the plugin hides: it asks for a connection that is not bound, ignores the
/// refusal and returns success. The host recorded the denial, so the call is still answered
/// 501 `not_granted`, and nothing is leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_denials_through_0_1() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    mount(
        &s,
        "t",
        json!({"db": {"type": "postgres", "url": pg_url()}}),
    )
    .await;
    role(
        &s,
        "t",
        "hide",
        json!({"prefix": "h", "check": "hide-denied"}),
    )
    .await;
    let (st, b) = s.creds("acme", "t", "hide", None).await;
    assert_refused(
        st,
        &b,
        StatusCode::NOT_IMPLEMENTED,
        "connection `unbound` is not a postgres connection bound to this mount",
    );
    assert_eq!(b["error"]["code"], "not_granted", "{b}");
    let (_, leases) = s
        .get("/api/v1/realms/acme/leases?prefix=t/hide/", &s.root)
        .await;
    assert_eq!(leases["items"], json!([]), "nothing leased: {leases}");
    // The token the engine issued anyway was revoked by the host (its record is gone).
    role(&s, "t", "list", json!({"prefix": "ls", "check": "list"})).await;
    let got = checked(&s, "t", "list").await;
    assert_eq!(got["count"], 0, "the refused token was revoked: {got}");
    core_unaffected(&s, "t", "hidden-denial").await;
}
