//! Each guardian's failure mode, held and violated: 401, 403, 404 across realms, 429.

use arcan_tests::*;

async fn auth_guardian(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    s.put(&s.root, "acme", "dev", "k", "v").await;
    let path = "/api/v1/realms/acme/secrets/k?env=dev";
    let (st, body) = s.call(Method::GET, path, None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["status"], 401);
    assert!(
        !body["error"]["request_id"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let (st, _) = s.get(path, "arc_not-a-real-token").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get(path, "garbage").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, body) = s.get(path, &s.root).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["value"], "v");
}

async fn policy_guardian(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    let (_, viewer) = s.user("viewer@example.com").await;
    s.bind("acme", "user:viewer@example.com", "viewer").await;
    s.put(&s.root, "acme", "dev", "k", "v").await;
    let (st, body) = s
        .get("/api/v1/realms/acme/secrets/k?env=dev", &viewer)
        .await;
    assert_eq!(st, StatusCode::OK, "viewer reads: {body}");
    let (st, body) = s.put(&viewer, "acme", "dev", "k", "new").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "viewer writes: {body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (st, _) = s
        .call(
            Method::DELETE,
            "/api/v1/realms/acme/secrets/k?env=dev",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.get("/api/v1/realms/acme/bindings", &viewer).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

async fn realm_guardian(b: Backend) {
    let s = Server::start(b).await;
    s.realm("alpha").await;
    s.realm("beta").await;
    let (_, alice) = s.user("alice@example.com").await;
    s.bind("alpha", "user:alice@example.com", "admin").await;
    s.put(&s.root, "beta", "dev", "k", "beta-secret").await;
    // Alice is admin of alpha; beta exists but is invisible to her, like a missing realm.
    for realm in ["beta", "nope"] {
        let (st, body) = s
            .get(&format!("/api/v1/realms/{realm}/secrets/k?env=dev"), &alice)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{realm}: {body}");
        assert_eq!(body["error"]["message"], "realm not found");
        let (st, _) = s.get(&format!("/api/v1/realms/{realm}"), &alice).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    let (st, _) = s.get("/api/v1/realms/alpha", &alice).await;
    assert_eq!(st, StatusCode::OK);
    let (_, list) = s.get("/api/v1/realms", &alice).await;
    let slugs: Vec<_> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("alpha")]);
    // A token confined to alpha cannot reach beta even for a superuser.
    let (st, t) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"realm": "alpha", "ttl": "1h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let confined = t["token"].as_str().expect("token");
    let (st, _) = s
        .get("/api/v1/realms/beta/secrets/k?env=dev", confined)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

async fn rate_limit_guardian(b: Backend) {
    let s = Server::start_with(b, "rate_limit:\n  per_ip: 5\n  per_token: 8\n").await;
    // Per IP, unauthenticated (and invalid tokens count against the IP).
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(s.call(Method::GET, "/health", None, None).await.0);
    }
    assert!(
        statuses.iter().take(5).all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let res = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!(retry >= 1);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Per token: its own bucket, unaffected by the exhausted IP bucket.
    let mut token_statuses = Vec::new();
    for _ in 0..14 {
        token_statuses.push(s.get("/api/v1/tokens/self", &s.root).await.0);
    }
    assert!(
        token_statuses.iter().take(8).all(|s| *s == StatusCode::OK),
        "{token_statuses:?}"
    );
    assert!(
        token_statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{token_statuses:?}"
    );
}

async fn request_ids(b: Backend) {
    let s = Server::start(b).await;
    let res = s
        .http
        .get(format!("{}/health", s.base))
        .header("x-request-id", "trace-abc.1")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "trace-abc.1");
    // The structured log line of that request carries its id, route and status.
    let mut logged = false;
    for _ in 0..20 {
        logged = s
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["target"] == "arcan::http"
                    && l["fields"]["request_id"] == "trace-abc.1"
                    && l["fields"]["path"] == "/health"
                    && l["fields"]["status"] == 200
                    && l["fields"]["latency_us"].is_u64()
            });
        if logged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        logged,
        "no JSON request log line for trace-abc.1:\n{}",
        s.log()
    );
    let res = s
        .http
        .get(format!("{}/health", s.base))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("send");
    let id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(id, "bad id with spaces");
    assert!(!id.is_empty());
    let res = s
        .http
        .get(format!("{}/no/such/route", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let hdr = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["request_id"], hdr.as_str());
}

async fn operator_certificate_and_openapi(b: Backend) {
    use arcan_tests::receivers::test_pki;
    let dir = Server::fresh_dir();
    let (ca, cert, key) = test_pki(&dir);
    std::fs::write(dir.join("op-cert.pem"), cert).expect("cert");
    std::fs::write(dir.join("op-key.pem"), key).expect("key");
    std::fs::create_dir_all(dir.join("tls")).expect("tls dir");
    std::fs::copy(&ca, dir.join("tls/ca.pem")).expect("ca");
    let config = format!(
        "{RELAXED}server:\n  tls_cert: {}\n  tls_key: {}\n",
        dir.join("op-cert.pem").display(),
        dir.join("op-key.pem").display()
    );
    // The client trusts only the operator's CA, and the certificate names localhost.
    let mut s = Server::start_in(b, &config, dir.clone()).await;
    s.base = s.base.replace("127.0.0.1", "localhost");
    let (st, h) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!((st, h["status"].clone()), (StatusCode::OK, json!("ok")));
    assert!(
        !dir.join("tls/server.pem").exists(),
        "no certificate generated when one is given"
    );
    // Plain HTTP is not served.
    let plain = reqwest::Client::new()
        .get(s.base.replace("https://", "http://") + "/health")
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // The OpenAPI document is generated from the handlers.
    let (st, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/realms/{slug}/secrets/{**key}",
        "/api/v1/tokens",
        "/api/v1/realms/{slug}/audit",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        doc["components"]["schemas"]["arcan.server.handlers.secrets.SetSecret"].is_object()
            || doc.to_string().contains("SetSecret")
    );
}

both_backends!(
    operator_certificate_and_openapi,
    auth_guardian,
    policy_guardian,
    realm_guardian,
    rate_limit_guardian,
    request_ids
);
