//! Users, tokens, the capability subset rule, narrowed tokens and roles, and explain.

use arcan_tests::*;

async fn login_and_passwords(b: Backend) {
    let s = Server::start(b).await;
    let reg = |email: &str, pw: &str| {
        s.call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": email, "password": pw})),
        )
    };
    let (st, b) = reg("short@example.com", "too-short").await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "password must be at least 12 characters",
    );
    let (st, b) = reg("not-an-email", "long enough password").await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "invalid email address");
    let (st, _) = reg("bob@example.com", "long enough password").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, b) = reg("BOB@example.com", "long enough password").await;
    assert_refused(
        st,
        &b,
        StatusCode::CONFLICT,
        "a user with this email exists",
    );
    let login = |pw: &str| {
        s.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "bob@example.com", "password": pw})),
        )
    };
    let (st, _) = login("wrong password!!").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, t) = login("long enough password").await;
    assert_eq!(st, StatusCode::OK);
    let token = t["token"].as_str().expect("token");
    assert!(token.starts_with("arc_"));
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["email"], "bob@example.com");
    // Revocation takes effect at once.
    let id = me["token"]["id"].as_str().expect("id");
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

async fn capability_subset_rule(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    let (_, viewer) = s.user("v@example.com").await;
    s.bind("acme", "user:v@example.com", "member").await;
    let create = async |tok: &str, body: Value| {
        s.call(Method::POST, "/api/v1/tokens", Some(tok), Some(body))
            .await
    };
    // A member cannot mint policy:manage or a global capability.
    for cap in ["policy:manage", "engines:manage", "audit:read"] {
        let (st, body) = create(&viewer, json!({"capabilities": [cap], "ttl": "1h"})).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{cap}: {body}");
    }
    let (st, b) = create(&viewer, json!({"capabilities": ["secrets:fly"]})).await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "unknown capability `secrets:fly`",
    );
    // The narrowed token may create tokens, so a refusal below is about widening (without
    // `tokens:create` it would be refused for that instead).
    let (st, t) = create(
        &viewer,
        json!({"capabilities": ["secrets:read", "tokens:create"], "ttl": "1h"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let narrow = t["token"].as_str().expect("token").to_owned();
    let (st, b) = create(
        &narrow,
        json!({"capabilities": ["secrets:read"], "ttl": "10m"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    // The narrowed token cannot widen itself.
    let (st, b) = create(
        &narrow,
        json!({"capabilities": ["secrets:write"], "ttl": "10m"}),
    )
    .await;
    assert_refused(
        st,
        &b,
        StatusCode::FORBIDDEN,
        "cannot grant `secrets:write`",
    );
    // Nor outlive itself, nor exceed the maximum TTL.
    let (st, b) = create(
        &narrow,
        json!({"capabilities": ["secrets:read"], "ttl": "2h"}),
    )
    .await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "ttl outlives the issuing token",
    );
    let (st, b) = create(&s.root, json!({"ttl": "900d"})).await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "ttl must be between 1s and",
    );
    let (st, b) = create(&s.root, json!({"ttl": "soon"})).await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "invalid ttl `soon`");
    // Ceiling enforced on use.
    s.put(&s.root, "acme", "dev", "k", "v").await;
    let (st, _) = s
        .get("/api/v1/realms/acme/secrets/k?env=dev", &narrow)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.put(&narrow, "acme", "dev", "k", "w").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

async fn narrowed_ci_token(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    for (env, key) in [
        ("prod", "app/db"),
        ("prod", "infra/key"),
        ("dev", "app/db"),
        ("prod", "app/deep/x"),
    ] {
        let (st, _) = s
            .put(&s.root, "acme", env, key, &format!("{env}:{key}"))
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    // A custom role narrowed to prod app/*, bound to a CI token.
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/roles",
            Some(&s.root),
            Some(json!({"name": "ci-read", "capabilities": ["secrets:read", "secrets:list", "tokens:create"], "env": "prod", "key_glob": "app/*"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let (_, ci_owner) = s.user("ci@example.com").await;
    s.bind("acme", "user:ci@example.com", "ci-read").await;
    let (st, t) = s
        .call(Method::POST, "/api/v1/tokens", Some(&ci_owner), Some(json!({"capabilities": ["secrets:read", "secrets:list"], "realm": "acme", "ttl": "1h"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let ci = t["token"].as_str().expect("token").to_owned();
    let read = async |env: &str, key: &str| {
        s.get(&format!("/api/v1/realms/acme/secrets/{key}?env={env}"), &ci)
            .await
    };
    let (st, v) = read("prod", "app/db").await;
    assert_eq!(
        (st, v["value"].clone()),
        (StatusCode::OK, json!("prod:app/db"))
    );
    assert_eq!(read("dev", "app/db").await.0, StatusCode::FORBIDDEN);
    assert_eq!(read("prod", "infra/key").await.0, StatusCode::FORBIDDEN);
    assert_eq!(read("prod", "app/deep/x").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        s.put(&ci, "acme", "prod", "app/db", "x").await.0,
        StatusCode::FORBIDDEN
    );
    // Listing shows only the covered keys.
    let (st, page) = s.get("/api/v1/realms/acme/secrets?env=prod", &ci).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let keys: Vec<_> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["key"].clone())
        .collect();
    assert_eq!(keys, vec![json!("app/db")]);
    // Token-level narrowing works too: a root-issued token limited to env and glob.
    let (_, t) = s
        .call(Method::POST, "/api/v1/tokens", Some(&s.root), Some(json!({"capabilities": ["secrets:read"], "env": "prod", "key_glob": "infra/*", "ttl": "1h"})))
        .await;
    let infra = t["token"].as_str().expect("token");
    assert_eq!(
        s.get("/api/v1/realms/acme/secrets/infra/key?env=prod", infra)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.get("/api/v1/realms/acme/secrets/app/db?env=prod", infra)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // explain says which binding allows, and why it denies.
    let explain = |action: &str, key: &str, env: &str| {
        s.call(
            Method::POST,
            "/api/v1/realms/acme/policy/explain",
            Some(&s.root),
            Some(json!({"token": ci, "action": action, "key": key, "env": env})),
        )
    };
    let (st, e) = explain("secrets:read", "app/db", "prod").await;
    assert_eq!(st, StatusCode::OK, "{e}");
    assert_eq!(e["allowed"], true);
    assert!(
        e["reason"]
            .as_str()
            .expect("reason")
            .contains("role ci-read"),
        "{e}"
    );
    let (_, e) = explain("secrets:read", "app/db", "dev").await;
    assert_eq!(e["allowed"], false);
    assert!(
        e["reason"]
            .as_str()
            .expect("reason")
            .contains("environment `prod`"),
        "{e}"
    );
    let (_, e) = explain("secrets:write", "app/db", "prod").await;
    assert_eq!(e["allowed"], false);
    assert!(
        e["reason"]
            .as_str()
            .expect("reason")
            .contains("secrets:write"),
        "{e}"
    );
    // Removing the binding takes effect at once.
    let (_, bindings) = s.get("/api/v1/realms/acme/bindings", &s.root).await;
    let id = bindings["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|b| b["role"] == "ci-read")
        .expect("binding")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/realms/acme/bindings/{id}"),
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(read("prod", "app/db").await.0, StatusCode::NOT_FOUND);
}

async fn role_validation(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    let role = |body: Value| {
        s.call(
            Method::POST,
            "/api/v1/realms/acme/roles",
            Some(&s.root),
            Some(body),
        )
    };
    for (what, body, phrase) in [
        (
            "builtin name",
            json!({"name": "admin", "capabilities": ["secrets:read"]}),
            "`admin` is a built-in role",
        ),
        (
            "unknown capability",
            json!({"name": "r", "capabilities": ["secrets:fly"]}),
            "unknown capability `secrets:fly`",
        ),
        (
            "global capability",
            json!({"name": "r", "capabilities": ["realms:manage"]}),
            "`realms:manage` is global",
        ),
        (
            "no capability",
            json!({"name": "r", "capabilities": []}),
            "a role needs at least one capability",
        ),
        (
            "bad glob",
            json!({"name": "r", "capabilities": ["secrets:read"], "key_glob": "[unclosed"}),
            "invalid key glob `[unclosed`",
        ),
        (
            "bad name",
            json!({"name": "Has Space", "capabilities": ["secrets:read"]}),
            "role name must be 1-64",
        ),
    ] {
        let (st, body) = role(body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_refused(st, &body, StatusCode::BAD_REQUEST, phrase);
    }
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/bindings",
            Some(&s.root),
            Some(json!({"subject": "user:ghost@example.com", "role": "viewer"})),
        )
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::BAD_REQUEST,
        "no user `ghost@example.com`",
    );
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/bindings",
            Some(&s.root),
            Some(json!({"subject": "root", "role": "viewer"})),
        )
        .await;
    assert_refused(st, &body, StatusCode::BAD_REQUEST, "subject must be `user:");
}

both_backends!(
    login_and_passwords,
    capability_subset_rule,
    narrowed_ci_token,
    role_validation
);
