//! Several versions of the plugin contract served at once: a component built against
//! `arcan:plugin@0.1.0` (the `tokens-v01` fixture, written with `wit-bindgen` and no SDK,
//! as a third party's engine of that era) and components built with the SDK against
//! `arcan:plugin@0.2.0` load, are called and audited in the same server; what 0.2.0 added
//! works on 0.2.0 engines; a component whose export does not match its manifest's `wit`,
//! or that targets a version this host does not serve, is refused at load.

use std::path::Path;

use arcan_tests::*;

const ALL_GRANTS: &[&str] = &["host:sql", "host:http", "host:store", "host:audit"];

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn role(s: &Server, mount: &str, name: &str, def: Value) -> (StatusCode, Value) {
    s.call(
        Method::PUT,
        &format!("/api/v1/realms/acme/engines/{mount}/roles/{name}"),
        Some(&s.root),
        Some(json!({"definition": def, "default_ttl": "5m", "max_ttl": "10m"})),
    )
    .await
}

async fn lease_call(s: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        &format!("/api/v1/realms/acme/leases/{path}"),
        Some(&s.root),
        Some(body),
    )
    .await
}

/// One 0.1.0 and two 0.2.0 engines in one server: describe, validate a role, issue,
/// renew, revoke, audit and error kinds through each; `unavailable` with `Retry-After`
/// only exists for 0.2.0 engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_contract_versions_serve_side_by_side() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, b) = s
        .mount("acme", "old", "tokens-v01", ALL_GRANTS, Value::Null)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = s
        .mount("acme", "new", "probe", ALL_GRANTS, Value::Null)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");

    // Each mount reports the contract its component was built against; the 0.1.0
    // engine's capability strings come out as the same names the 0.2.0 enum has.
    let (st, old) = s.get("/api/v1/realms/acme/engines/old", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{old}");
    assert_eq!(old["contract"], "arcan:plugin@0.1.0", "{old}");
    assert_eq!(old["describe"]["name"], "tokens-v01", "{old}");
    assert_eq!(
        old["describe"]["capabilities"],
        json!(["engine:dynamic_credentials"]),
        "{old}"
    );
    assert_eq!(
        old["describe"]["role_schema"]["required"],
        json!(["prefix"]),
        "{old}"
    );
    let (st, new) = s.get("/api/v1/realms/acme/engines/new", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{new}");
    assert_eq!(new["contract"], "arcan:plugin@0.2.0", "{new}");
    assert_eq!(
        new["describe"]["capabilities"],
        json!(["engine:dynamic_credentials", "engine:root_rotation"]),
        "{new}"
    );

    // validate-role through 0.1.0: the engine's invalid-input is a 400 with its message.
    let (st, b) = role(&s, "old", "bad", json!({"prefix": "NOT-LOWER"})).await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "prefix");
    let (st, b) = role(&s, "old", "ci", json!({"prefix": "ci"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = role(&s, "new", "ok", json!({"mode": "ok"})).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = role(&s, "hi", "dev", json!({})).await;
    assert_eq!(st, StatusCode::OK, "{b}");

    // Issue from all three, interleaved.
    let (st, old_cred) = s.creds("acme", "old", "ci", None).await;
    assert_eq!(st, StatusCode::OK, "{old_cred}");
    let token = old_cred["data"]["token"].as_str().unwrap_or_default();
    assert!(
        token.starts_with("ci-") && token.len() == 3 + 32,
        "{old_cred}"
    );
    let (st, new_cred) = s.creds("acme", "new", "ok", None).await;
    assert_eq!(st, StatusCode::OK, "{new_cred}");
    let (st, hello) = s.creds("acme", "hi", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{hello}");
    assert_eq!(hello["data"]["greeting"], "hello dev", "{hello}");

    // Renew and revoke the 0.1.0 lease through its engine (which checks its own
    // plugin data), then renewing it is refused.
    let old_lease = old_cred["lease_id"].as_str().expect("lease id").to_owned();
    let (st, l) = lease_call(&s, "renew", json!({"lease_id": old_lease, "ttl": "8m"})).await;
    assert_eq!(st, StatusCode::OK, "{l}");
    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": old_lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );
    let (st, b) = lease_call(&s, "renew", json!({"lease_id": old_lease, "ttl": "8m"})).await;
    assert_refused(st, &b, StatusCode::CONFLICT, "lease is revoked");
    let new_lease = new_cred["lease_id"].as_str().expect("lease id").to_owned();
    let (st, l) = lease_call(&s, "revoke", json!({"lease_id": new_lease})).await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );

    // The 0.1.0 engine's audit.emit went through the same pipeline, namespaced.
    let (_, ev) = s
        .get(
            "/api/v1/realms/acme/audit?action=plugin.tokens-v01.issued&limit=10",
            &s.root,
        )
        .await;
    let items = ev["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{ev}");
    assert_eq!(items[0]["detail"]["prefix"], "ci", "{ev}");
    assert!(
        !ev.to_string().contains(token),
        "the token is never audited: {ev}"
    );

    // An export the 0.1.0 engine does not implement: its unsupported is a 501.
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/old/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_refused(st, &b, StatusCode::NOT_IMPLEMENTED, "not supported");

    // New in 0.2.0: `unavailable` with a retry hint is a 503 with Retry-After, which the
    // host bounds (an engine does not get to stall clients for more than an hour).
    let leases_before = lease_count(&s, "new/").await;
    for (name, asked, sent) in [("busy", 13, "13"), ("stalling", 1_000_000, "3600")] {
        let (st, b) = role(
            &s,
            "new",
            name,
            json!({"mode": "unavailable", "retry_after": asked}),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let res = s
            .http
            .post(format!(
                "{}/api/v1/realms/acme/engines/new/creds/{name}",
                s.base
            ))
            .bearer_auth(&s.root)
            .json(&json!({}))
            .send()
            .await
            .expect("creds");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some(sent),
            "asked {asked}"
        );
        let b: Value = res.json().await.expect("json");
        assert_eq!(b["error"]["code"], "engine_unavailable", "{b}");
        assert!(message(&b).contains("probe is throttled"), "{b}");
    }
    // Nothing was leased for the refused issues.
    assert_eq!(lease_count(&s, "new/").await, leases_before);
}

/// How many leases (any state) the realm `acme` lists under `prefix`.
async fn lease_count(s: &Server, prefix: &str) -> usize {
    let (st, leases) = s
        .get(
            &format!("/api/v1/realms/acme/leases?prefix={prefix}&limit=1000"),
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{leases}");
    let items = leases["items"].as_array().expect("items");
    assert!(!items.is_empty(), "the earlier lease is listed: {leases}");
    items.len()
}

/// Copies an installed plugin's component under a new name with a rewritten manifest.
fn repackage(dir: &Path, from: &str, name: &str, wit: &str) {
    let src = plugins_dir().join(from);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::copy(src.join("engine.wasm"), dst.join("engine.wasm")).expect("copy");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).expect("manifest"))
            .expect("json");
    manifest["name"] = json!(name);
    manifest["wit"] = json!(wit);
    std::fs::write(dst.join("manifest.json"), manifest.to_string()).expect("write");
}

/// The manifest's `wit` decides the bindings, so it must be what the component was built
/// against; a version the host does not serve is refused with the versions it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_mismatches_are_refused_at_load() {
    let dir = Server::fresh_dir();
    repackage(&dir, "tokens-v01", "claims-new", "arcan:plugin@0.2.0");
    repackage(&dir, "hello", "claims-old", "arcan:plugin@0.1.0");
    repackage(&dir, "hello", "from-future", "arcan:plugin@0.3.0");
    repackage(&dir, "hello", "newer-patch", "arcan:plugin@0.2.1");
    repackage(&dir, "hello", "as-built", "arcan:plugin@0.2.0");
    let cache = std::env::temp_dir().join("arcan-test-plugin-cache");
    let config = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  allow_unsigned: true\n",
        dir.display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &config).await;
    s.realm("acme").await;
    let (st, b) = s
        .mount("acme", "a", "claims-new", ALL_GRANTS, Value::Null)
        .await;
    assert_refused(
        st,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "@0.1.0` but its manifest declares `arcan:plugin@0.2.0`",
    );
    let (st, b) = s.mount("acme", "b", "claims-old", &[], Value::Null).await;
    assert_refused(
        st,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "but its manifest declares `arcan:plugin@0.1.0`",
    );
    for name in ["from-future", "newer-patch"] {
        let (st, b) = s.mount("acme", "c", name, &[], Value::Null).await;
        assert_refused(
            st,
            &b,
            StatusCode::UNPROCESSABLE_ENTITY,
            "this host serves arcan:plugin@0.1.0, arcan:plugin@0.2.0",
        );
    }
    // The same component under its true version loads.
    let (st, b) = s.mount("acme", "d", "as-built", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}
