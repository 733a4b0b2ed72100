//! What changing a login role does to the tokens and bindings it made, end to end on both
//! stores: rewriting a role with the same bounds and realms keeps its logins; changing its
//! bounds or adding a realm revokes them (a token minted under other bounds never reaches the
//! new realm); the managed role and a login's token cannot be bound by hand; an
//! `auth:manage` holder reading a role sees only the grants in realms visible to him; each
//! realm's log records the role writes that changed its bindings.

use arcan_tests::machine::{MACHINE_CONFIG, job, role, static_method};
use arcan_tests::oidc::TestKey;
use arcan_tests::*;

async fn self_status(s: &Server, token: &str) -> StatusCode {
    s.get("/api/v1/tokens/self", token).await.0
}

async fn role_changes_rearm_and_bindings_stay_owned(b: Backend) {
    let cfg = format!("{MACHINE_CONFIG}  default_global_capabilities: [\"auth:manage\"]\n");
    let s = Server::start_with(b, &cfg).await;
    s.realm("acme").await;
    s.realm("beta").await;
    let key = TestKey::ed25519("k");
    s.auth_method(static_method(&key)).await;
    let acme_only = role(json!([{"realm": "acme", "role": "viewer"}]));
    s.login_role("github", "deploy", acme_only.clone()).await;

    // The same role written again: its logins live on.
    let a = s
        .machine_login_ok("github", "deploy", &job(&key, "1"))
        .await;
    let a_tok = a["token"].as_str().expect("a").to_owned();
    s.login_role("github", "deploy", acme_only.clone()).await;
    assert_eq!(self_status(&s, &a_tok).await, StatusCode::OK, "same role");

    // A realm added: earlier logins are revoked, a new one reaches both realms.
    let both =
        role(json!([{"realm": "acme", "role": "viewer"}, {"realm": "beta", "role": "viewer"}]));
    s.login_role("github", "deploy", both.clone()).await;
    assert_eq!(
        self_status(&s, &a_tok).await,
        StatusCode::UNAUTHORIZED,
        "a token minted before beta was granted never reaches beta"
    );
    let b_ = s
        .machine_login_ok("github", "deploy", &job(&key, "2"))
        .await;
    assert_eq!(b_["realms"], json!(["acme", "beta"]), "{b_}");
    let b_tok = b_["token"].as_str().expect("b").to_owned();
    let b_id = b_["token_id"].as_str().expect("b id").to_owned();

    // Bounds tightened (another claim bound): logins under the old bounds are revoked.
    let mut tighter = both.clone();
    tighter["bound_claims"]["ref"] = json!("refs/heads/main");
    s.login_role("github", "deploy", tighter).await;
    assert_eq!(self_status(&s, &b_tok).await, StatusCode::UNAUTHORIZED);
    let c = s
        .machine_login_ok("github", "deploy", &job(&key, "3"))
        .await;
    let c_id = c["token_id"].as_str().expect("c id").to_owned();

    // The managed role and a login's token cannot be bound by hand.
    let managed = role(json!([{"realm": "acme", "capabilities": ["secrets:read"]}]));
    s.login_role("github", "reader", managed).await;
    s.user("someone@example.com").await;
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/bindings",
            Some(&s.root),
            Some(json!({"subject": "user:someone@example.com", "role": "auth.github.reader"})),
        )
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::BAD_REQUEST,
        "managed by a login role",
    );
    for id in [&b_id, &c_id] {
        let (st, body) = s
            .call(
                Method::POST,
                "/api/v1/realms/beta/bindings",
                Some(&s.root),
                Some(json!({"subject": format!("token:{id}"), "role": "admin"})),
            )
            .await;
        assert_refused(st, &body, StatusCode::BAD_REQUEST, "machine login's");
    }
    // Binding an ordinary custom role still works (the refusal is specific).
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/bindings",
            Some(&s.root),
            Some(json!({"subject": "user:someone@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    // An auth:manage holder who administers acme only sees the acme grant.
    let (_, manager) = s.user("manager@example.com").await;
    s.bind("acme", "user:manager@example.com", "admin").await;
    let (st, info) = s
        .get("/api/v1/auth/methods/github/roles/deploy", &manager)
        .await;
    assert_eq!(st, StatusCode::OK, "{info}");
    assert_eq!(
        info["grants"],
        json!([{"realm": "acme", "role": "viewer"}]),
        "beta is invisible to him: {info}"
    );
    let (_, full) = s
        .get("/api/v1/auth/methods/github/roles/deploy", &s.root)
        .await;
    assert_eq!(full["grants"].as_array().map(Vec::len), Some(2), "{full}");
    // Each realm's own log shows the changes a login role made to its bindings.
    for realm in ["acme", "beta"] {
        let (st, log) = s
            .get(
                &format!("/api/v1/realms/{realm}/audit?action=auth.roles.write"),
                &s.root,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{log}");
        let items = log["items"].as_array().expect("items");
        assert!(
            items.iter().any(|e| e["detail"]["role"] == "deploy"
                && e["realm_id"].is_string()
                && e["actor"]["user_id"].is_string()),
            "{realm}'s log has the role writes: {log}"
        );
        let (_, v) = s
            .get(&format!("/api/v1/realms/{realm}/audit/verify"), &s.root)
            .await;
        assert_eq!(v["ok"], true, "{realm}'s chain verifies with them: {v}");
    }
    let (_, log) = s
        .get("/api/v1/realms/beta/audit?action=auth.roles.write", &s.root)
        .await;
    assert!(
        !log.to_string().contains("\"reader\""),
        "a role granting only acme is not in beta's log: {log}"
    );
    // … and cannot rewrite the role, which grants in a realm he cannot see.
    let (st, body) = s
        .put_login_role(&manager, "github", "deploy", acme_only)
        .await;
    assert_refused(st, &body, StatusCode::FORBIDDEN, "a realm you cannot see");
}

both_backends!(role_changes_rearm_and_bindings_stay_owned);
