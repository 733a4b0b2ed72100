//! Kubernetes service-account login end to end, on both stores: a pod's projected token
//! (audience `arcan`) reviewed by a configured reviewer reads its realm's secrets, with its
//! identity on the token and in the audit trail; unbound names and namespaces, foreign
//! audiences, expired and legacy tokens are refused before any TokenReview (the API server's
//! request counter does not move); legacy tokens only where the method allows them. The test
//! TokenReview server (`arcan_tests::k8s`) itself is checked against the official Kubernetes
//! Python client, so that what Arcan is tested against is the real `authentication.k8s.io/v1`
//! contract.

use std::process::Command;
use std::time::Duration;

use arcan_tests::k8s::{ApiServer, ISSUER, ServiceAccount};
use arcan_tests::machine::{AUD, K8sCluster, MACHINE_CONFIG, identity, k8s_role};
use arcan_tests::*;

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

/// A server with realm `acme` (a secret in prod `app/db`) and the method `k8s` (configured
/// reviewer, audience `arcan`) with the role `api`.
async fn setup(b: Backend, cluster: &K8sCluster) -> Server {
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    let (st, body) = s
        .put(&s.root, "acme", "prod", "app/db", "db-password")
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let m = s
        .auth_method(cluster.method("k8s", Some(&cluster.reviewer), json!({"audience": "arcan"})))
        .await;
    assert_eq!(m["token_reviewer_jwt_set"], true, "{m}");
    s.login_role("k8s", "api", k8s_role()).await;
    s
}

/// A refused login of role `api` of `method`, audited with `check`.
async fn refused(
    s: &Server,
    method: &str,
    jwt: &str,
    want: StatusCode,
    phrase: &str,
    check: &str,
) -> Value {
    s.login_refused(method, "api", jwt, want, phrase, check)
        .await
}

async fn bound_sa_reads_its_secrets(b: Backend) {
    let cluster = K8sCluster::start().await;
    let s = setup(b, &cluster).await;
    let api = cluster.account("prod", "api");
    let jwt = cluster.token(&api, &["arcan"]);
    let login = s.machine_login_ok("k8s", "api", &jwt).await;
    assert_eq!(login["realms"], json!(["acme"]), "{login}");
    assert_eq!(cluster.reviews(), 1, "one TokenReview");
    assert_eq!(
        cluster.api.with(|c| c.bearers.last().cloned()),
        Some(cluster.reviewer.clone()),
        "the configured reviewer is the bearer"
    );
    let token = login["token"].as_str().expect("token");
    let token_id = login["token_id"].as_str().expect("token id");
    let (st, v) = s
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", token)
        .await;
    assert_eq!(
        (st, &v["value"]),
        (StatusCode::OK, &json!("db-password")),
        "{v}"
    );
    let (st, v) = s.put(token, "acme", "prod", "app/db", "x").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a viewer cannot write: {v}");

    // Who it is: on the token, in the login event, on its later events.
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    let event = s
        .login_events()
        .await
        .into_iter()
        .find(|e| e["detail"]["token_id"] == token_id)
        .expect("the login event");
    let d = &event["detail"];
    assert_eq!(event["outcome"], "success", "{event}");
    assert_eq!(d["type"], "kubernetes", "{event}");
    assert_eq!(d["subject"], "system:serviceaccount:prod:api", "{event}");
    assert_eq!(d["issuer"], cluster.api.url, "{event}");
    assert_eq!(d["realms"], json!(["acme"]), "{event}");
    assert_eq!(d["claims"]["namespace"], "prod", "{event}");
    assert_eq!(d["claims"]["service_account"], "api", "{event}");
    assert_eq!(d["claims"]["uid"], api.uid.as_str(), "{event}");
    for e in s
        .realm_events_of_token("acme", "secrets.read", token_id)
        .await
    {
        assert_eq!(e["actor"]["auth_method"], "kubernetes", "{e}");
        assert_eq!(
            e["actor"]["identity"],
            json!({"method": "k8s", "role": "api", "subject": "system:serviceaccount:prod:api"}),
            "{e}"
        );
    }

    // Unbound names and namespaces are refused before any TokenReview.
    let db = cluster.account("prod", "db");
    let worker = cluster.account("prod", "worker");
    let dev = cluster.account("dev", "api");
    for (sa, phrase, check) in [
        (
            &db,
            "service account `prod/db`: name is not bound by role `api`",
            "sa_name",
        ),
        (
            &worker,
            "service account `prod/worker`: name is not bound by role `api`",
            "sa_name",
        ),
        (
            &dev,
            "service account `dev/api`: namespace is not bound by role `api`",
            "sa_namespace",
        ),
    ] {
        let jwt = cluster.token(sa, &["arcan"]);
        refused(&s, "k8s", &jwt, StatusCode::FORBIDDEN, phrase, check).await;
    }
    assert_eq!(cluster.reviews(), 1, "no TokenReview for unbound accounts");
    // A glob-bound name.
    let w1 = cluster.account("prod", "worker-1");
    s.machine_login_ok("k8s", "api", &cluster.token(&w1, &["arcan"]))
        .await;
    assert_eq!(cluster.reviews(), 2);
    // `GET /tokens/self` describes the identity too.
    let id = identity(&me);
    assert_eq!(id["claims"]["namespace"], "prod", "{me}");
    assert_eq!(id["method"], "k8s", "{me}");
    assert_eq!(id["type"], "kubernetes", "{me}");
    assert_eq!(id["role"], "api", "{me}");
    assert_eq!(id["subject"], "system:serviceaccount:prod:api", "{me}");
    assert_eq!(id["issuer"], cluster.api.url, "{me}");
}

async fn audience_and_legacy_tokens(b: Backend) {
    let cluster = K8sCluster::start().await;
    let s = setup(b, &cluster).await;
    let api = cluster.account("prod", "api");

    // Refused without a call: another audience, expired, legacy, not a service account.
    let expired = cluster
        .api
        .signer
        .projected(&api, &["arcan"], Duration::ZERO);
    let legacy = cluster.api.signer.legacy(&api);
    let not_sa = arcan_tests::oidc::TestKey::es256("x").sign(&arcan_tests::oidc::github_actions(
        "https://token.actions.githubusercontent.com",
        "acme/api",
        "refs/heads/main",
        AUD,
    ));
    for (what, jwt, want, phrase, check) in [
        (
            "another audience",
            cluster.token(&api, &["vault"]),
            StatusCode::UNAUTHORIZED,
            "aud: the token is not for audience `arcan`",
            "aud",
        ),
        (
            "expired",
            expired,
            StatusCode::UNAUTHORIZED,
            "exp: expired at",
            "exp",
        ),
        (
            "legacy",
            legacy.clone(),
            StatusCode::UNAUTHORIZED,
            "jwt: legacy service-account tokens are not accepted by this method",
            "service_account",
        ),
        (
            "a GitHub token",
            not_sa,
            StatusCode::BAD_REQUEST,
            "jwt: not a Kubernetes service-account token",
            "service_account",
        ),
    ] {
        let body = refused(&s, "k8s", &jwt, want, phrase, check).await;
        assert_eq!(cluster.reviews(), 0, "{what}: no TokenReview: {body}");
    }

    // An API server that ignores audiences does not confirm `arcan`: refused, even for a
    // token it authenticates (one valid for its own audience too).
    cluster.api.with(|c| c.audience_unaware = true);
    let jwt = cluster.token(&api, &["arcan", ISSUER]);
    refused(
        &s,
        "k8s",
        &jwt,
        StatusCode::UNAUTHORIZED,
        "tokenreview: not valid for audience `arcan`",
        "tokenreview",
    )
    .await;
    assert_eq!(cluster.reviews(), 1);
    cluster.api.with(|c| c.audience_unaware = false);
    s.machine_login_ok("k8s", "api", &jwt).await;

    // A method that allows legacy tokens (no audience: the API server's own).
    s.auth_method(cluster.method(
        "k8s-legacy",
        Some(&cluster.reviewer),
        json!({"allow_legacy_tokens": true}),
    ))
    .await;
    s.login_role("k8s-legacy", "api", k8s_role()).await;
    let login = s.machine_login_ok("k8s-legacy", "api", &legacy).await;
    let token = login["token"].as_str().expect("token");
    let (st, v) = s
        .get("/api/v1/realms/acme/secrets/app/db?env=prod", token)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Without an audience, a token minted only for `arcan` is not valid for the API server.
    refused(
        &s,
        "k8s-legacy",
        &cluster.token(&api, &["arcan"]),
        StatusCode::UNAUTHORIZED,
        "tokenreview: not authenticated",
        "tokenreview",
    )
    .await;
    s.machine_login_ok("k8s-legacy", "api", &cluster.token(&api, &[ISSUER]))
        .await;
}

both_backends!(bound_sa_reads_its_secrets, audience_and_legacy_tokens);
