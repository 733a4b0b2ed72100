//! Who may define login roles and what a login may do to other logins, end to end on both
//! stores: an `auth:manage` holder cannot grant a realm he does not administer (escalation),
//! realm-confined tokens cannot manage methods, the role's principal can be neither bound nor
//! logged in by password; one CI job cannot list or revoke another's token, the anchor token
//! revokes every login of its role until `revoke_tokens` re-arms it, deleting a role or a
//! method kills its logins; the per-IP limit and the failure throttle answer 429.

use arcan_tests::machine::{
    AUD, MACHINE_CONFIG, STATIC_ISSUER as ISSUER, job, raw_login, role, static_method,
};
use arcan_tests::oidc::{TestKey, github_actions};
use arcan_tests::*;

async fn escalation(b: Backend) {
    let cfg = format!("{MACHINE_CONFIG}  default_global_capabilities: [\"auth:manage\"]\n");
    let s = Server::start_with(b, &cfg).await;
    s.realm("acme").await;
    s.realm("beta").await;
    let key = TestKey::ed25519("k");
    let (_, manager) = s.user("manager@example.com").await;
    s.bind("acme", "user:manager@example.com", "admin").await;

    // auth:manage alone defines methods …
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/auth/methods",
            Some(&manager),
            Some(static_method(&key)),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let (st, r) = s
        .put_login_role(
            &manager,
            "github",
            "deploy",
            role(json!([{"realm": "acme", "role": "admin"}])),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "granting a realm he administers: {r}");

    // … but grants only what he could bind by hand: beta is invisible to him (as missing),
    let beta = role(json!([{"realm": "beta", "role": "viewer"}]));
    let (st, body) = s
        .put_login_role(&manager, "github", "ci", beta.clone())
        .await;
    assert_refused(st, &body, StatusCode::BAD_REQUEST, "no realm `beta`");
    let (st, body) = s
        .put_login_role(
            &manager,
            "github",
            "ci",
            role(json!([{"realm": "ghost", "role": "viewer"}])),
        )
        .await;
    assert_refused(st, &body, StatusCode::BAD_REQUEST, "no realm `ghost`");
    // nor take away what another granted there (the removal rule),
    s.login_role(
        "github",
        "rootmade",
        role(json!([{"realm": "beta", "role": "viewer"}])),
    )
    .await;
    for path in [
        "/api/v1/auth/methods/github/roles/rootmade",
        "/api/v1/auth/methods/github",
    ] {
        let (st, body) = s.call(Method::DELETE, path, Some(&manager), None).await;
        assert_refused(
            st,
            &body,
            StatusCode::FORBIDDEN,
            "which you cannot take away",
        );
    }
    // visible as a member (no policy:manage) he still may not grant it,
    s.bind("beta", "user:manager@example.com", "member").await;
    let (st, body) = s
        .put_login_role(&manager, "github", "ci", beta.clone())
        .await;
    assert_refused(st, &body, StatusCode::FORBIDDEN, "policy:manage");
    let (st, body) = s.get("/api/v1/auth/methods/github/roles/ci", &s.root).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "a refused role is not created: {body}"
    );
    // as an admin of beta he may.
    s.bind("beta", "user:manager@example.com", "admin").await;
    let (st, body) = s.put_login_role(&manager, "github", "ci", beta).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    // Realm-confined tokens cannot manage methods, even root's.
    for owner in [s.root.as_str(), manager.as_str()] {
        let (st, t) = s
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(owner),
                Some(json!({"realm": "acme", "ttl": "1h"})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        let confined = t["token"].as_str().expect("token");
        let (st, body) = s.get("/api/v1/auth/methods", confined).await;
        assert_refused(st, &body, StatusCode::FORBIDDEN, "auth:manage");
        let (st, body) = s
            .put_login_role(
                confined,
                "github",
                "deploy",
                role(json!([{"realm": "acme", "role": "viewer"}])),
            )
            .await;
        assert_refused(st, &body, StatusCode::FORBIDDEN, "auth:manage");
    }
    let (st, body) = s.get("/api/v1/auth/methods", &manager).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["name"], "github", "{body}");

    // The role's principal: no global capability, no hand-made binding, no password login.
    let login = s
        .machine_login_ok("github", "deploy", &job(&key, "1"))
        .await;
    let token = login["token"].as_str().expect("token");
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["global_capabilities"], json!([]), "{me}");
    assert_eq!(me["email"], "auth:github/deploy", "{me}");
    let principal = me["user_id"].as_str().expect("principal id");
    let (st, body) = s.get("/api/v1/auth/methods", token).await;
    assert_refused(st, &body, StatusCode::FORBIDDEN, "auth:manage");
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms/beta/bindings",
            Some(&s.root),
            Some(json!({"subject": format!("user:{principal}"), "role": "viewer"})),
        )
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::BAD_REQUEST,
        "grant realms through the login role",
    );
    for password in ["!", "correct horse battery", ""] {
        let (st, body) = s
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": "auth:github/deploy", "password": password})),
            )
            .await;
        assert_refused(
            st,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid email or password",
        );
    }
}

/// `GET /tokens` ids of `token`.
async fn listed(s: &Server, token: &str) -> Vec<String> {
    let (st, body) = s.get("/api/v1/tokens", token).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect()
}

async fn self_status(s: &Server, token: &str) -> StatusCode {
    s.get("/api/v1/tokens/self", token).await.0
}

async fn lineage(b: Backend) {
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    let key = TestKey::ed25519("k");
    s.auth_method(static_method(&key)).await;
    let definition = role(json!([{"realm": "acme", "role": "viewer"}]));
    let info = s.login_role("github", "deploy", definition.clone()).await;
    let anchor = info["anchor_token_id"].as_str().expect("anchor").to_owned();

    let a = s
        .machine_login_ok("github", "deploy", &job(&key, "1"))
        .await;
    let b_ = s
        .machine_login_ok("github", "deploy", &job(&key, "2"))
        .await;
    let (a_tok, a_id) = (
        a["token"].as_str().expect("a"),
        a["token_id"].as_str().expect("a id"),
    );
    let (b_tok, b_id) = (
        b_["token"].as_str().expect("b"),
        b_["token_id"].as_str().expect("b id"),
    );

    // Job A sees and revokes only its own subtree.
    assert_eq!(listed(&s, a_tok).await, [a_id], "job A lists only itself");
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{b_id}"),
            Some(a_tok),
            None,
        )
        .await;
    assert_refused(st, &body, StatusCode::NOT_FOUND, "token not found");
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{anchor}"),
            Some(a_tok),
            None,
        )
        .await;
    assert_refused(st, &body, StatusCode::NOT_FOUND, "token not found");
    assert_eq!(self_status(&s, b_tok).await, StatusCode::OK);

    // The anchor revokes every login of the role; further logins fail until re-armed.
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{anchor}"),
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(self_status(&s, a_tok).await, StatusCode::UNAUTHORIZED);
    assert_eq!(self_status(&s, b_tok).await, StatusCode::UNAUTHORIZED);
    for _ in 0..2 {
        let (st, body) = s.machine_login("github", "deploy", &job(&key, "3")).await;
        assert_refused(
            st,
            &body,
            StatusCode::FORBIDDEN,
            "login role `deploy` is revoked",
        );
    }
    let mut rearm = definition.clone();
    rearm["revoke_tokens"] = json!(true);
    let info = s.login_role("github", "deploy", rearm).await;
    let new_anchor = info["anchor_token_id"].as_str().expect("anchor");
    assert_ne!(new_anchor, anchor, "re-arming mints a new anchor");
    let c = s
        .machine_login_ok("github", "deploy", &job(&key, "4"))
        .await;
    let c_tok = c["token"].as_str().expect("c");
    assert_eq!(self_status(&s, c_tok).await, StatusCode::OK);
    // revoke_tokens revokes the live logins too.
    let mut again = definition.clone();
    again["revoke_tokens"] = json!(true);
    s.login_role("github", "deploy", again).await;
    assert_eq!(self_status(&s, c_tok).await, StatusCode::UNAUTHORIZED);

    // Deleting the role kills its logins.
    let d = s
        .machine_login_ok("github", "deploy", &job(&key, "5"))
        .await;
    let d_tok = d["token"].as_str().expect("d");
    let (st, body) = s
        .call(
            Method::DELETE,
            "/api/v1/auth/methods/github/roles/deploy",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(self_status(&s, d_tok).await, StatusCode::UNAUTHORIZED);
    let (st, body) = s.machine_login("github", "deploy", &job(&key, "6")).await;
    assert_refused(
        st,
        &body,
        StatusCode::BAD_REQUEST,
        "role: no login role `deploy` in auth method `github`",
    );

    // Deleting the method likewise.
    s.login_role("github", "deploy", definition).await;
    let e = s
        .machine_login_ok("github", "deploy", &job(&key, "7"))
        .await;
    let e_tok = e["token"].as_str().expect("e");
    let (_, me) = s.get("/api/v1/tokens/self", e_tok).await;
    let principal = me["user_id"].as_str().expect("principal").to_owned();
    let grants_principal = async || {
        let (st, body) = s.get("/api/v1/realms/acme/bindings", &s.root).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|b| b.to_string().contains(&principal))
    };
    assert!(
        grants_principal().await,
        "the grant is a binding of the principal"
    );
    let (st, body) = s
        .call(
            Method::DELETE,
            "/api/v1/auth/methods/github",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(self_status(&s, e_tok).await, StatusCode::UNAUTHORIZED);
    let (st, body) = s.machine_login("github", "deploy", &job(&key, "8")).await;
    assert_refused(st, &body, StatusCode::NOT_FOUND, "auth method not found");
    assert!(
        !grants_principal().await,
        "the role's bindings went with the method"
    );

    // Deleting the only realm a role grants kills its confined logins; the role then grants
    // nothing.
    s.realm("temp").await;
    s.auth_method(static_method(&key)).await;
    s.login_role(
        "github",
        "solo",
        role(json!([{"realm": "temp", "role": "viewer"}])),
    )
    .await;
    let f = s.machine_login_ok("github", "solo", &job(&key, "9")).await;
    let f_tok = f["token"].as_str().expect("f");
    let (st, body) = s
        .call(Method::DELETE, "/api/v1/realms/temp", Some(&s.root), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(self_status(&s, f_tok).await, StatusCode::UNAUTHORIZED);
    let (st, body) = s.machine_login("github", "solo", &job(&key, "10")).await;
    assert_refused(
        st,
        &body,
        StatusCode::FORBIDDEN,
        "login role `solo` grants no realm",
    );
}

async fn rate_limits(b: Backend) {
    // Per IP: the login route is public and limited like the password login.
    let key = TestKey::ed25519("k");
    let s = Server::start_with(b, "rate_limit:\n  per_ip: 3\n  per_token: 100000\n").await;
    s.realm("acme").await;
    s.auth_method(static_method(&key)).await;
    s.login_role(
        "github",
        "deploy",
        role(json!([{"realm": "acme", "role": "viewer"}])),
    )
    .await;
    let flood = futures_util::future::join_all((0..20).map(|i| {
        let jwt = job(&key, &i.to_string());
        let s = &s;
        async move { raw_login(s, "github", json!({"role": "deploy", "jwt": jwt}), None).await }
    }))
    .await;
    let statuses: Vec<u16> = flood.iter().map(|r| r.status.as_u16()).collect();
    assert!(
        statuses.iter().all(|st| [200, 429].contains(st)),
        "{statuses:?}"
    );
    let limited: Vec<_> = flood
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(limited.len() >= 10, "per_ip 3 let through {statuses:?}");
    for r in limited {
        assert_eq!(r.body["error"]["code"], "rate_limited", "{}", r.body);
        assert!(r.retry_after.is_some_and(|s| s >= 1), "{}", r.body);
    }
    drop(s);

    // The failure throttle: per role and client network.
    let cfg = "rate_limit:\n  per_ip: 100000\n  per_token: 100000\n  trusted_proxies: [\"127.0.0.1/32\"]\nauth:\n  login_throttle:\n    free_attempts: 2\n    base_delay: 60s\n    max_delay: 60s\n";
    let s = Server::start_with(b, cfg).await;
    s.realm("acme").await;
    s.auth_method(static_method(&key)).await;
    let grants = json!([{"realm": "acme", "role": "viewer"}]);
    s.login_role("github", "deploy", role(grants.clone())).await;
    s.login_role("github", "other", role(grants)).await;
    let mut wrong = github_actions(ISSUER, "beta/api", "refs/heads/main", AUD);
    wrong["run_id"] = json!("9");
    let wrong = key.sign(&wrong);
    let login = |role: &str, jwt: &str, xff: Option<&'static str>| {
        let body = json!({"role": role, "jwt": jwt});
        let s = &s;
        async move { raw_login(s, "github", body, xff).await }
    };
    for i in 0..2 {
        let r = login("deploy", &wrong, None).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "free failure {i}: {}",
            r.body
        );
    }
    let good = job(&key, "10");
    for (what, jwt) in [
        ("another failure", &wrong),
        ("a good token while locked", &good),
    ] {
        let r = login("deploy", jwt, None).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{what}: {}",
            r.body
        );
        assert_eq!(
            r.body["error"]["code"], "login_throttled",
            "{what}: {}",
            r.body
        );
        assert!(
            r.retry_after.is_some_and(|s| (1..=61).contains(&s)),
            "{what}: {}",
            r.body
        );
    }
    // Another role, and the same role from another network, are not locked.
    let r = login("other", &good, None).await;
    assert_eq!(r.status, StatusCode::OK, "another role: {}", r.body);
    let r = login("deploy", &good, Some("198.51.100.7")).await;
    assert_eq!(r.status, StatusCode::OK, "another network: {}", r.body);
}

both_backends!(escalation, lineage, rate_limits);
