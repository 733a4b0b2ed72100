//! Two nodes sharing one PostgreSQL store and master key: data, policy, revocation and the
//! audit chain are shared.

use arcan_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_store() {
    let a = Server::start(Backend::Postgres).await;
    let b = a.join().await;
    a.realm("acme").await;
    assert_eq!(
        a.put(&a.root, "acme", "prod", "app/db", "from-a").await.0,
        StatusCode::OK
    );
    let (st, v) = b
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", &b.root)
        .await;
    assert_eq!(
        (st, v["value"].clone()),
        (StatusCode::OK, json!("from-a")),
        "node B decrypts A's write"
    );
    assert_eq!(
        b.put(&b.root, "acme", "prod", "app/db", "from-b").await.0,
        StatusCode::OK
    );
    let (_, v) = a
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", &a.root)
        .await;
    assert_eq!(
        (v["value"].clone(), v["version"].clone()),
        (json!("from-b"), json!(2)),
        "no stale read on A"
    );
    // A token created on A works on B; revoked on A, B refuses it within the cache TTL.
    let (_, t) = a
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&a.root),
            Some(json!({"ttl": "1h"})),
        )
        .await;
    let token = t["token"].as_str().expect("token").to_owned();
    assert_eq!(b.get("/api/v1/tokens/self", &token).await.0, StatusCode::OK);
    let id = t["id"].as_str().expect("id");
    assert_eq!(
        a.call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&a.root),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        a.get("/api/v1/tokens/self", &token).await.0,
        StatusCode::UNAUTHORIZED,
        "at once on the revoking node"
    );
    let mut refused = false;
    for _ in 0..50 {
        if b.get("/api/v1/tokens/self", &token).await.0 == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "the other node refuses a revoked token within the 2 s cache TTL"
    );
    // Both nodes append to the same realm chain; it verifies.
    for i in 0..5 {
        a.put(&a.root, "acme", "dev", &format!("a{i}"), "v").await;
        b.put(&b.root, "acme", "dev", &format!("b{i}"), "v").await;
    }
    let mut ok = Value::Null;
    for _ in 0..50 {
        ok = a.get("/api/v1/realms/acme/audit/verify", &a.root).await.1;
        if ok["checked"].as_u64().unwrap_or(0) >= 12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(ok["checked"].as_u64().unwrap_or(0) >= 12, "{ok}");
}
