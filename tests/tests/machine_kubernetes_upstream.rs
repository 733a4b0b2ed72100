//! Kubernetes login against a misbehaving or unconvinced API server, end to end on both
//! stores: a rejected or non-delegated reviewer is a 502 naming the reviewer's credentials;
//! without a reviewer the caller's own token reviews itself (403 unless it may); a stopped,
//! slow, failing or throttling API server is a 502 within the method's timeout, never a
//! hang or a 500; deleted and unknown service accounts and a lying API server are refused;
//! the reviewer JWT is never shown, logged or stored in the clear.

use std::time::{Duration, Instant};

use arcan_tests::k8s::ISSUER;
use arcan_tests::machine::{K8sCluster, MACHINE_CONFIG, k8s_role};
use arcan_tests::*;

async fn server(b: Backend) -> Server {
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    s
}

async fn reviewer_rejected(b: Backend) {
    let cluster = K8sCluster::start().await;
    let s = server(b).await;
    cluster
        .api
        .add_reviewer("no-delegator", "system:serviceaccount:arcan:other", false);
    let aud = json!({"audience": "arcan"});
    s.auth_method(cluster.method("unknown", Some("not-a-known-token"), aud.clone()))
        .await;
    s.auth_method(cluster.method("nodeleg", Some("no-delegator"), aud))
        .await;
    for m in ["unknown", "nodeleg"] {
        s.login_role(m, "api", k8s_role()).await;
    }
    let sa = cluster.account("prod", "api");
    let jwt = cluster.token(&sa, &["arcan"]);
    for (method, phrase) in [
        (
            "unknown",
            "upstream: the Kubernetes API server rejected the token reviewer's credentials (401)",
        ),
        (
            "nodeleg",
            "upstream: the token reviewer may not create TokenReviews (403): bind it to system:auth-delegator",
        ),
    ] {
        let body = s
            .login_refused(
                method,
                "api",
                &jwt,
                StatusCode::BAD_GATEWAY,
                phrase,
                "upstream",
            )
            .await;
        assert_eq!(body["error"]["code"], "upstream_failed", "{body}");
    }
    assert_eq!(cluster.reviews(), 2, "one TokenReview each");

    // No reviewer: the caller's token is the bearer, so it must be valid for the API server
    // and its service account must be allowed to review.
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/methods",
            Some(&s.root),
            Some(cluster.method("caller", None, json!({"audience": "arcan"}))),
        )
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::BAD_REQUEST,
        "audience requires token_reviewer_jwt",
    );
    s.auth_method(cluster.method("caller", None, json!({})))
        .await;
    s.login_role("caller", "api", k8s_role()).await;
    let own = cluster.token(&sa, &["arcan", ISSUER]);
    s.login_refused(
        "caller",
        "api",
        &own,
        StatusCode::FORBIDDEN,
        "tokenreview: the service account may not create TokenReviews (403)",
        "tokenreview",
    )
    .await;
    assert_eq!(
        cluster.api.with(|c| c.bearers.last().cloned()),
        Some(own.clone()),
        "the caller's token is the bearer"
    );
    s.login_refused(
        "caller",
        "api",
        &cluster.token(&sa, &["arcan"]),
        StatusCode::UNAUTHORIZED,
        "tokenreview: the Kubernetes API server rejected the token (401)",
        "tokenreview",
    )
    .await;
    cluster.api.with(|c| c.delegators.insert(sa.username()));
    s.machine_login_ok("caller", "api", &own).await;
}

async fn api_server_failures(b: Backend) {
    let cluster = K8sCluster::start().await;
    let s = server(b).await;
    let reviewer = cluster.reviewer.clone();
    s.auth_method(cluster.method(
        "k8s",
        Some(&reviewer),
        json!({"audience": "arcan", "timeout": "1s"}),
    ))
    .await;
    s.login_role("k8s", "api", k8s_role()).await;
    let sa = cluster.account("prod", "api");
    let jwt = cluster.token(&sa, &["arcan"]);
    s.machine_login_ok("k8s", "api", &jwt).await;

    // The reviewer JWT is write-only.
    for path in ["/api/v1/auth/methods/k8s", "/api/v1/auth/methods"] {
        let (st, body) = s.get(path, &s.root).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(
            !body.to_string().contains(&reviewer),
            "{path} shows it: {body}"
        );
    }
    let (_, m) = s.get("/api/v1/auth/methods/k8s", &s.root).await;
    assert_eq!(m["token_reviewer_jwt_set"], true, "{m}");
    assert!(m["config"].get("token_reviewer_jwt").is_none(), "{m}");
    // An update that keeps host and CA keeps it; one that moves the host needs it again.
    let mut config = m["config"].clone();
    config["timeout"] = json!("2s");
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/auth/methods/k8s",
            Some(&s.root),
            Some(json!({"description": "prod cluster", "config": config.clone()})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["token_reviewer_jwt_set"], true, "{body}");
    s.machine_login_ok("k8s", "api", &jwt).await;
    let mut moved = config.clone();
    moved["kubernetes_host"] = json!("https://localhost:1");
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/auth/methods/k8s",
            Some(&s.root),
            Some(json!({"config": moved})),
        )
        .await;
    assert_refused(st, &body, StatusCode::BAD_REQUEST, "token_reviewer_jwt");
    config["timeout"] = json!("1s");
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/auth/methods/k8s",
            Some(&s.root),
            Some(json!({"config": config})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // Slower than the 1 s timeout: 502 within timeout + 2 s.
    cluster.api.with(|c| c.delay = Duration::from_secs(5));
    let started = Instant::now();
    let body = s
        .login_refused(
            "k8s",
            "api",
            &jwt,
            StatusCode::BAD_GATEWAY,
            "upstream: the Kubernetes API server timed out after 1s",
            "upstream",
        )
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "answered after {took:?}: {body}"
    );
    cluster.api.with(|c| c.delay = Duration::ZERO);
    for (code, phrase) in [
        (503, "upstream: the Kubernetes API server failed (HTTP 503)"),
        (
            429,
            "upstream: the Kubernetes API server is throttling (429)",
        ),
    ] {
        cluster.api.with(|c| c.fail_with = Some(code));
        let body = s
            .login_refused(
                "k8s",
                "api",
                &jwt,
                StatusCode::BAD_GATEWAY,
                phrase,
                "upstream",
            )
            .await;
        assert_eq!(body["error"]["code"], "upstream_failed", "{body}");
    }
    cluster.api.with(|c| c.fail_with = None);
    s.machine_login_ok("k8s", "api", &jwt).await;

    // Stopped: 502, quickly.
    cluster.api.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let body = s
        .login_refused(
            "k8s",
            "api",
            &jwt,
            StatusCode::BAD_GATEWAY,
            "upstream: the Kubernetes API server",
            "upstream",
        )
        .await;
    assert_eq!(body["error"]["code"], "upstream_failed", "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "{body}");

    // The reviewer JWT is nowhere in the clear.
    let dump = s.store_dump().await;
    assert!(
        !contains(&dump, &reviewer),
        "the store holds the reviewer JWT"
    );
    assert!(
        !s.log().contains(&reviewer),
        "the log holds the reviewer JWT"
    );
    assert!(
        !s.login_events()
            .await
            .iter()
            .any(|e| e.to_string().contains(&reviewer)),
        "the trail holds the reviewer JWT"
    );
    assert!(!contains(&dump, &jwt), "the store holds the pod's JWT");
}

async fn unknown_and_deleted_accounts(b: Backend) {
    let cluster = K8sCluster::start().await;
    let s = server(b).await;
    s.auth_method(cluster.method("k8s", Some(&cluster.reviewer), json!({"audience": "arcan"})))
        .await;
    s.login_role("k8s", "api", k8s_role()).await;

    // Never created in the cluster (a token signed by its key nonetheless).
    let ghost = arcan_tests::k8s::ServiceAccount::new("prod", "api");
    let jwt = cluster.token(&ghost, &["arcan"]);
    s.login_refused(
        "k8s",
        "api",
        &jwt,
        StatusCode::UNAUTHORIZED,
        "tokenreview: not authenticated",
        "tokenreview",
    )
    .await;
    assert_eq!(cluster.reviews(), 1);

    // Deleted after its token was minted.
    let sa = cluster.account("prod", "worker-7");
    let jwt = cluster.token(&sa, &["arcan"]);
    s.machine_login_ok("k8s", "api", &jwt).await;
    cluster.api.with(|c| c.accounts.remove(&sa));
    s.login_refused(
        "k8s",
        "api",
        &jwt,
        StatusCode::UNAUTHORIZED,
        "tokenreview: not authenticated",
        "tokenreview",
    )
    .await;

    // A token signed by another cluster's key.
    let api = cluster.account("prod", "api");
    let foreign =
        arcan_tests::k8s::Signer::generate().projected(&api, &["arcan"], Duration::from_secs(600));
    s.login_refused(
        "k8s",
        "api",
        &foreign,
        StatusCode::UNAUTHORIZED,
        "tokenreview: not authenticated",
        "tokenreview",
    )
    .await;

    // The API server names another user than the token's service account.
    cluster
        .api
        .with(|c| c.lie_username = Some("system:serviceaccount:kube-system:admin".into()));
    s.login_refused(
        "k8s",
        "api",
        &cluster.token(&api, &["arcan"]),
        StatusCode::FORBIDDEN,
        "tokenreview: user `system:serviceaccount:kube-system:admin` is not the token's service account `prod/api`",
        "username",
    )
    .await;
}

both_backends!(
    reviewer_rejected,
    api_server_failures,
    unknown_and_deleted_accounts
);
