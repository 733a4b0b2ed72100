//! Audit: events for every request (denied ones too), realm-scoped queries, the hash chain
//! catching tampering, retention checkpoints, and no secret anywhere in the trail.

use arcan_tests::*;

async fn audit_page(s: &Server, realm: &str, query: &str) -> Vec<Value> {
    let (st, page) = s
        .get(
            &format!("/api/v1/realms/{realm}/audit?limit=1000{query}"),
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

async fn flushed(s: &Server, realm: &str, query: &str, at_least: usize) -> Vec<Value> {
    let mut items = Vec::new();
    for _ in 0..100 {
        items = audit_page(s, realm, query).await;
        if items.len() >= at_least {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "expected {at_least} events for {query}, got {}",
        items.len()
    );
}

async fn every_request_is_an_event(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    s.realm("other").await;
    let (uid, viewer) = s.user("viewer@example.com").await;
    s.bind("acme", "user:viewer@example.com", "viewer").await;
    let canary = "AUDIT-CANARY-93c1f0";
    assert_eq!(
        s.put(&s.root, "acme", "prod", "app/db", canary).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.get("/api/v1/realms/acme/secrets/app/db?env=prod", &viewer)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.put(&viewer, "acme", "prod", "app/db", "nope").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get("/api/v1/realms/other/secrets/x?env=prod", &viewer)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let writes = flushed(&s, "acme", "&action=secrets.write", 2).await;
    let ok = writes
        .iter()
        .find(|e| e["outcome"] == "success")
        .expect("successful write");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["realm"], "acme");
    assert_eq!(ok["target"], "/api/v1/realms/acme/secrets/app/db?env=prod");
    assert!(ok["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(ok["actor"]["auth_method"], "token");
    let denied = writes
        .iter()
        .find(|e| e["outcome"] == "denied")
        .expect("denied write");
    assert_eq!(
        (denied["status"].clone(), denied["actor"]["user_id"].clone()),
        (json!(403), json!(uid))
    );
    // The value is correlatable through its HMAC, never readable.
    let (st, h) = s
        .call(
            Method::POST,
            "/api/v1/audit/hash",
            Some(&s.root),
            Some(json!({"value": canary})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ok["detail"]["value_hmac"], h["hmac"]);
    let reads = flushed(&s, "acme", &format!("&action=secrets.read&actor={uid}"), 1).await;
    assert_eq!(reads[0]["outcome"], "success");
    // Filters and pagination.
    let denied_only = audit_page(&s, "acme", "&outcome=denied").await;
    assert!(denied_only.iter().all(|e| e["outcome"] == "denied") && !denied_only.is_empty());
    let (st, p1) = s.get("/api/v1/realms/acme/audit?limit=2", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{p1}");
    assert_eq!(p1["items"].as_array().expect("items").len(), 2);
    let cursor = p1["next_cursor"].as_str().expect("cursor");
    let (st, p2) = s
        .get(
            &format!("/api/v1/realms/acme/audit?limit=2&cursor={cursor}"),
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p2}");
    // The second page continues the first: no event on both, and it is not empty.
    let ids = |p: &Value| -> Vec<Value> {
        p["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["id"].clone())
            .collect()
    };
    let (first, second) = (ids(&p1), ids(&p2));
    assert!(
        !second.is_empty()
            && second
                .iter()
                .all(|id| id.is_string() && !first.contains(id)),
        "{p1} then {p2}"
    );
    // No event skipped between the pages (the cursor once was a global sequence number
    // compared with the chain's, which skipped events of other realms' numbering).
    assert_eq!(
        p2["items"][0]["seq"].as_i64(),
        p1["items"][1]["seq"].as_i64().map(|n| n + 1),
        "{p1} then {p2}"
    );
    let future = "2999-01-01T00:00:00Z";
    assert!(
        audit_page(&s, "acme", &format!("&since={future}"))
            .await
            .is_empty()
    );
    assert_eq!(
        s.get("/api/v1/realms/acme/audit?since=yesterday", &s.root)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Realm boundary: the viewer (no audit:read) cannot read it; the other realm's events
    // (the 404 above is not even attributed to it) stay out of acme's log.
    assert_eq!(
        s.get("/api/v1/realms/acme/audit", &viewer).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(
        audit_page(&s, "acme", "")
            .await
            .iter()
            .all(|e| e["realm"] == "acme")
    );
    // Nothing secret in the store, the log or the trail.
    let (_, all) = s.get("/api/v1/realms/acme/audit?limit=1000", &s.root).await;
    let trail = all.to_string();
    for needle in [
        canary,
        s.root.as_str(),
        viewer.as_str(),
        "correct horse battery",
    ] {
        assert!(!trail.contains(needle), "audit trail holds {needle:?}");
        assert!(
            !contains(&s.store_dump().await, needle),
            "store holds {needle:?}"
        );
        assert!(!s.log().contains(needle), "log holds {needle:?}");
    }
    // Status: nothing dropped.
    let (st, status) = s.get("/api/v1/audit/status", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{status}");
    assert_eq!(status["dropped"], 0);
    assert_eq!(
        s.get("/api/v1/audit/status", &viewer).await.0,
        StatusCode::FORBIDDEN
    );
}

/// Runs verification, expects it to fail, and returns the problem it reports.
async fn verify_problem(s: &Server) -> String {
    let (_, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!(v["ok"], false, "{v}");
    v["problem"].as_str().expect("problem").to_owned()
}

async fn chain_catches_tampering(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    for i in 0..5 {
        s.put(&s.root, "acme", "dev", &format!("k{i}"), "v").await;
    }
    flushed(&s, "acme", "&action=secrets.write", 5).await;
    let (_, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checked"].as_u64().expect("checked") >= 5, "{v}");
    // Modify one event's body.
    let n = s
        .exec_sql("UPDATE audit_events SET body = REPLACE(body, '\"status\":200', '\"status\":201') WHERE seq = 3 AND action = 'secrets.write'")
        .await;
    assert_eq!(n, 1);
    let problem = verify_problem(&s).await;
    assert!(problem.contains("#3 was modified"), "{problem}");
    // Restore it: verification passes again.
    s.exec_sql("UPDATE audit_events SET body = REPLACE(body, '\"status\":201', '\"status\":200') WHERE seq = 3 AND action = 'secrets.write'").await;
    let (_, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!(v["ok"], true, "{v}");
    // An indexed column changed without the hashed body is caught.
    assert_eq!(
        s.exec_sql(
            "UPDATE audit_events SET outcome = 'denied' WHERE seq = 2 AND action = 'secrets.write'"
        )
        .await,
        1
    );
    let problem = verify_problem(&s).await;
    assert!(
        problem.contains("#2: indexed columns disagree"),
        "{problem}"
    );
    s.exec_sql(
        "UPDATE audit_events SET outcome = 'success' WHERE seq = 2 AND action = 'secrets.write'",
    )
    .await;
    // A deleted event leaves a gap.
    assert_eq!(
        s.exec_sql("DELETE FROM audit_events WHERE seq = 4 AND action = 'secrets.write'")
            .await,
        1
    );
    let problem = verify_problem(&s).await;
    assert!(problem.contains("#4 is missing"), "{problem}");
}

async fn retention_keeps_chain_verifiable(b: Backend) {
    let config =
        format!("{RELAXED}audit:\n  retention_days: 0.00003\n  retention_interval: 500ms\n");
    let s = Server::start_with(b, &config).await;
    s.realm("acme").await;
    for i in 0..4 {
        s.put(&s.root, "acme", "dev", &format!("k{i}"), "v").await;
    }
    // Wait past the ~2.6 s retention: the old events go, a checkpoint stays.
    let mut v = Value::Null;
    for _ in 0..150 {
        v = s.get("/api/v1/realms/acme/audit/verify", &s.root).await.1;
        if v["from_seq"].as_i64().unwrap_or(0) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        v["from_seq"].as_i64().unwrap_or(0) >= 4,
        "retention did not prune: {v}"
    );
    assert_eq!(v["ok"], true, "{v}");
    s.put(&s.root, "acme", "dev", "after", "v").await;
    let (_, v) = s.get("/api/v1/realms/acme/audit/verify", &s.root).await;
    assert_eq!(v["ok"], true, "{v}");
}

async fn no_drops_under_load(b: Backend) {
    let s = std::sync::Arc::new(Server::start(b).await);
    s.realm("acme").await;
    s.put(&s.root, "acme", "dev", "k", "v").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                assert_eq!(
                    s.get("/api/v1/realms/acme/secrets/k?env=dev", &s.root)
                        .await
                        .0,
                    StatusCode::OK
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stored = Server::wait_for(20, || async {
        let (_, st) = s.get("/api/v1/audit/status", &s.root).await;
        st["stored"].as_u64().unwrap_or(0) + 1 >= st["emitted"].as_u64().unwrap_or(u64::MAX)
    })
    .await;
    assert!(stored);
    let (_, st) = s.get("/api/v1/audit/status", &s.root).await;
    assert_eq!(st["dropped"], 0, "{st}");
    assert!(st["emitted"].as_u64().expect("emitted") >= 1600);
}

both_backends!(
    every_request_is_an_event,
    chain_catches_tampering,
    retention_keeps_chain_verifiable,
    no_drops_under_load
);
