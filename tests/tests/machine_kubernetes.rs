//! Kubernetes service-account identities: the test TokenReview server (`arcan_tests::k8s`)
//! checked against the official Kubernetes Python client, so that what Arcan is tested
//! against is the real `authentication.k8s.io/v1` contract.

use std::process::Command;
use std::time::Duration;

use arcan_tests::k8s::{ApiServer, ISSUER, ServiceAccount};
use serde_json::Value;

/// One `create_token_review` call by the official client, in a blocking thread.
async fn review(api: &ApiServer, bearer: &str, token: &str, audiences: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/k8s_token_review.py");
    let mut cmd = Command::new(arcan_tests::reference_python());
    cmd.arg(script)
        .env("K8S_HOST", &api.url)
        .env("K8S_CA", &api.ca_path)
        .env("K8S_BEARER", bearer)
        .env("K8S_TOKEN", token)
        .env("K8S_AUDIENCES", audiences.join(","));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "the Python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn token_review_server_matches_the_official_client() {
    let dir = std::env::temp_dir().join(format!("arcan-k8s-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let api = ApiServer::start(&dir).await;
    let sa = ServiceAccount::new("prod", "api");
    api.add_account(&sa);
    api.add_reviewer(
        "reviewer-secret",
        "system:serviceaccount:arcan:reviewer",
        true,
    );
    api.add_reviewer("no-delegator", "system:serviceaccount:arcan:other", false);
    let token = api
        .signer
        .projected(&sa, &["arcan"], Duration::from_secs(600));

    // A valid review: the client's request parses, the answer parses into its models.
    let ok = review(&api, "reviewer-secret", &token, &["arcan"]).await;
    assert_eq!(ok["kind"], "TokenReview", "{ok}");
    assert_eq!(ok["api_version"], "authentication.k8s.io/v1", "{ok}");
    assert_eq!(ok["authenticated"], true, "{ok}");
    assert_eq!(ok["username"], "system:serviceaccount:prod:api", "{ok}");
    assert_eq!(ok["uid"], sa.uid.as_str(), "{ok}");
    assert_eq!(ok["audiences"], serde_json::json!(["arcan"]), "{ok}");
    assert!(
        ok["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|x| x == "system:serviceaccounts:prod")),
        "{ok}"
    );
    assert_eq!(
        api.with(|c| c.bearers.last().cloned()),
        Some("reviewer-secret".to_owned()),
        "the client sends the reviewer as a bearer token"
    );

    // The wrong audience: reviewed, not authenticated, with the API server's error text.
    let aud = review(&api, "reviewer-secret", &token, &["vault"]).await;
    assert_eq!(aud["authenticated"], false, "{aud}");
    assert!(
        aud["error"]
            .as_str()
            .is_some_and(|e| e.contains("audiences")),
        "{aud}"
    );

    // No audience requested: the API server's own; this token was minted for `arcan` only.
    let own = review(&api, "reviewer-secret", &token, &[]).await;
    assert_eq!(own["authenticated"], false, "{own}");

    // A deleted service account's token stops authenticating.
    api.with(|c| c.accounts.clear());
    let gone = review(&api, "reviewer-secret", &token, &["arcan"]).await;
    assert_eq!(gone["authenticated"], false, "{gone}");
    api.add_account(&sa);

    // An unknown bearer: 401 with a `Status`.
    let unknown = review(&api, "nobody", &token, &["arcan"]).await;
    assert_eq!(unknown["http_status"], 401, "{unknown}");
    assert_eq!(unknown["kind"], "Status", "{unknown}");
    assert_eq!(unknown["reason"], "Unauthorized", "{unknown}");

    // A bearer without `system:auth-delegator`: 403 with a `Status`.
    let denied = review(&api, "no-delegator", &token, &["arcan"]).await;
    assert_eq!(denied["http_status"], 403, "{denied}");
    assert_eq!(denied["reason"], "Forbidden", "{denied}");

    // The caller's own token as the reviewer: the API server authenticates bearers for its
    // own audience only, so a token minted for `arcan` alone is refused (401); one valid for
    // the API server too authenticates as its service account, which may review only when
    // bound to `system:auth-delegator`.
    let own_bearer = review(&api, &token, &token, &["arcan"]).await;
    assert_eq!(own_bearer["http_status"], 401, "{own_bearer}");
    let both = api
        .signer
        .projected(&sa, &["arcan", ISSUER], Duration::from_secs(600));
    let no_delegator = review(&api, &both, &both, &["arcan"]).await;
    assert_eq!(no_delegator["http_status"], 403, "{no_delegator}");
    api.with(|c| c.delegators.insert(sa.username()));
    let delegated = review(&api, &both, &both, &["arcan"]).await;
    assert_eq!(delegated["authenticated"], true, "{delegated}");

    // A legacy token: valid for the API server's own audience.
    let legacy = api.signer.legacy(&sa);
    let old = review(&api, "reviewer-secret", &legacy, &[]).await;
    assert_eq!(old["authenticated"], true, "{old}");

    // A failing API server answers with a `Status` the client reports.
    api.with(|c| c.fail_with = Some(503));
    let down = review(&api, "reviewer-secret", &token, &["arcan"]).await;
    assert_eq!(down["http_status"], 503, "{down}");
    assert_eq!(api.with(|c| c.requests), 11);
    let _ = std::fs::remove_dir_all(&dir);
}
