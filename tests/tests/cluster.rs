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
    let refused = Server::wait_for(5, || async {
        b.get("/api/v1/tokens/self", &token).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused,
        "the other node refuses a revoked token within the 2 s cache TTL"
    );
    // Both nodes append to the same realm chain at the same time (20 writes in flight from
    // each node); the chain does not fork and verifies.
    let (before, _) = chain_len(&a).await;
    let keys: Vec<(String, String)> = (0..20)
        .map(|i| (format!("a{i}"), format!("b{i}")))
        .collect();
    let writes = keys.iter().flat_map(|(ka, kb)| {
        [
            a.put(&a.root, "acme", "dev", ka, "v"),
            b.put(&b.root, "acme", "dev", kb, "v"),
        ]
    });
    for (st, body) in futures_util::future::join_all(writes).await {
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let settled = Server::wait_for(10, || async { chain_len(&a).await.0 >= before + 40 }).await;
    let (checked, ok) = chain_len(&a).await;
    assert!(settled, "{ok}");
    assert_eq!(
        ok["ok"], true,
        "the chain forked under concurrent writers: {ok}"
    );
    assert_eq!(
        chain_len(&b).await.1["ok"],
        true,
        "node b verifies the same chain"
    );
    assert!(checked >= before + 40, "{ok}");
}

/// How many events of `acme`'s chain verify, and the verification.
async fn chain_len(s: &Server) -> (u64, Value) {
    let (st, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    (v["checked"].as_u64().expect("checked"), v)
}
