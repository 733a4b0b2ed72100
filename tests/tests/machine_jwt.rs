//! JWT/OIDC login end to end, on both stores: a GitHub Actions workflow logs in through OIDC
//! discovery and reads exactly the secrets its role grants (identity on the token and in the
//! audit trail, the JWT stored nowhere); GitLab CI tokens through a JWKS URL (ES256) and a
//! static PEM (EdDSA) with glob-bound claims; key rotation and the rate-limited refetch of
//! unknown `kid`s, counted at the issuer. The test OIDC issuer (`arcan_tests::oidc`) itself
//! is checked with PyJWT, an implementation independent of the one the issuer signs with, so
//! that the discovery document, the key set and the tokens Arcan is tested against are
//! standard.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use arcan_tests::machine::{
    AUD, MACHINE_CONFIG, deploy_role, github_method, identity, spki_pem, temp_dir,
};
use arcan_tests::oidc::{Issuer, TestKey, github_actions, gitlab_ci};
use arcan_tests::*;

/// Verifies `tokens` with PyJWT against the issuer's discovery document and key set.
async fn pyjwt(issuer: &Issuer, audience: &str, tokens: &[String]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/oidc_verify.py");
    let mut cmd = Command::new(arcan_tests::reference_python());
    cmd.arg(script)
        .env("OIDC_ISSUER", &issuer.url)
        .env("OIDC_CA", &issuer.ca_path)
        .env("OIDC_AUDIENCE", audience)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = tokens.join("\n");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("run PyJWT");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write tokens");
        child.wait_with_output().expect("PyJWT output")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "PyJWT failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test]
async fn oidc_issuer_is_standard_for_pyjwt() {
    let dir = std::env::temp_dir().join(format!("arcan-oidc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rsa = TestKey::rs256("gh-1");
    let ec = TestKey::es256("gl-1");
    let ed = TestKey::ed25519("ed-1");
    let issuer = Issuer::start(&dir, &[&rsa, &ec]).await;
    let aud = "https://arcan.example";

    let gh = github_actions(&issuer.url, "acme/api", "refs/heads/main", aud);
    let gl = gitlab_ci(&issuer.url, "acme/api", "main", aud);
    let unpublished = ed.sign(&gh);
    let tokens = vec![
        rsa.sign(&gh),
        ec.sign(&gl),
        unpublished.clone(),
        rsa.sign(&github_actions(
            &issuer.url,
            "acme/api",
            "refs/heads/main",
            "sts.amazonaws.com",
        )),
    ];
    let got = pyjwt(&issuer, aud, &tokens).await;
    assert_eq!(got[0]["ok"], true, "RS256 GitHub-shaped token: {}", got[0]);
    assert_eq!(got[0]["sub"], "repo:acme/api:ref:refs/heads/main");
    assert_eq!(got[0]["alg"], "RS256");
    assert_eq!(got[1]["ok"], true, "ES256 GitLab-shaped token: {}", got[1]);
    assert_eq!(
        got[1]["sub"],
        "project_path:acme/api:ref_type:branch:ref:main"
    );
    assert_eq!(
        got[2]["ok"], false,
        "a key the issuer does not publish: {}",
        got[2]
    );
    assert_eq!(got[3]["error"], "InvalidAudienceError", "{}", got[3]);
    let fetches = issuer.with(|s| (s.discovery_fetches, s.jwks_fetches));
    assert_eq!(fetches.0, 1, "one discovery document");
    assert!(fetches.1 >= 1, "the key set was fetched");

    // Rotation: the EdDSA key is published next to the others, then the RSA key retired.
    issuer.publish(&ed);
    issuer.retire("gh-1");
    let got = pyjwt(&issuer, aud, &[unpublished, rsa.sign(&gh)]).await;
    assert_eq!(got[0]["ok"], true, "EdDSA after rotation: {}", got[0]);
    assert_eq!(got[0]["alg"], "EdDSA");
    assert_eq!(got[1]["ok"], false, "the retired key: {}", got[1]);

    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads a secret with `token`.
async fn read(s: &Server, token: &str, realm: &str, env: &str, key: &str) -> (StatusCode, Value) {
    s.get(
        &format!("/api/v1/realms/{realm}/secrets/{key}?env={env}"),
        token,
    )
    .await
}

async fn github_actions_reads_exactly_its_secrets(b: Backend) {
    let dir = temp_dir("arcan-oidc");
    let key = TestKey::rs256("gh-1");
    let issuer = Issuer::start(&dir, &[&key]).await;
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    s.realm("beta").await;
    for (realm, env, k) in [
        ("acme", "prod", "app/db"),
        ("acme", "prod", "other/x"),
        ("acme", "dev", "app/db"),
        ("beta", "prod", "app/db"),
    ] {
        let (st, body) = s
            .put(&s.root, realm, env, k, &format!("{realm}:{env}:{k}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let method = s.auth_method(github_method(&issuer, json!({}))).await;
    assert_eq!(
        (&method["name"], &method["type"]),
        (&json!("github"), &json!("jwt")),
        "{method}"
    );
    assert_eq!(
        method["config"]["oidc_discovery_url"], issuer.url,
        "{method}"
    );
    let role = s.login_role("github", "deploy", deploy_role()).await;
    assert_eq!(role["principal"], "auth:github/deploy", "{role}");
    let anchor = role["anchor_token_id"].as_str().expect("anchor").to_owned();
    let grants = role["grants"].as_array().expect("grants");
    assert_eq!(grants.len(), 1, "{role}");
    assert_eq!(
        (
            &grants[0]["realm"],
            &grants[0]["env"],
            &grants[0]["key_glob"]
        ),
        (&json!("acme"), &json!("prod"), &json!("app/*")),
        "{role}"
    );

    let jwt = key.sign(&github_actions(
        &issuer.url,
        "acme/api",
        "refs/heads/main",
        AUD,
    ));
    let login = s.machine_login_ok("github", "deploy", &jwt).await;
    assert_eq!(login["realms"], json!(["acme"]), "{login}");
    assert_eq!(
        (&login["method"], &login["role"]),
        (&json!("github"), &json!("deploy")),
        "{login}"
    );
    let mut caps: Vec<&str> = login["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    caps.sort_unstable();
    assert_eq!(caps, ["secrets:list", "secrets:read"], "{login}");
    let token = login["token"].as_str().expect("token");
    let token_id = login["token_id"].as_str().expect("token id");

    // Exactly its secrets: prod app/* in acme, read and list only.
    let (st, v) = read(&s, token, "acme", "prod", "app/db").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["value"], "acme:prod:app/db");
    let (st, v) = read(&s, token, "acme", "dev", "app/db").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "dev: {v}");
    let (st, v) = read(&s, token, "acme", "prod", "other/x").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "other/x: {v}");
    let (st, v) = s.put(token, "acme", "prod", "app/db", "overwritten").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "write: {v}");
    let (st, v) = read(&s, token, "beta", "prod", "app/db").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another realm: {v}");
    let (st, page) = s.get("/api/v1/realms/acme/secrets?env=prod", token).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let keys: Vec<&Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| &i["key"])
        .collect();
    assert_eq!(keys, [&json!("app/db")], "{page}");
    let (st, v) = s
        .call(
            Method::POST,
            "/api/v1/realms",
            Some(token),
            Some(json!({"slug": "ci-made"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "realm creation: {v}");

    // The token says who logged in, and descends from the role's anchor.
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["token"]["id"], token_id, "{me}");
    assert_eq!(me["token"]["parent_id"], anchor.as_str(), "{me}");
    assert!(me["token"]["realm_id"].is_string(), "confined: {me}");
    assert_eq!(me["global_capabilities"], json!([]), "{me}");

    // The login event in the system chain, and the identity on every later event.
    let event = s
        .login_events()
        .await
        .into_iter()
        .find(|e| e["detail"]["token_id"] == token_id)
        .expect("a login event naming the token");
    assert_eq!(
        (&event["outcome"], &event["status"]),
        (&json!("success"), &json!(200)),
        "{event}"
    );
    let d = &event["detail"];
    assert_eq!(d["method"], "github", "{event}");
    assert_eq!(d["type"], "jwt", "{event}");
    assert_eq!(d["role"], "deploy", "{event}");
    assert_eq!(d["subject"], "repo:acme/api:ref:refs/heads/main", "{event}");
    assert_eq!(d["issuer"], issuer.url, "{event}");
    assert_eq!(
        d["claims"],
        json!({"repository": "acme/api", "run_id": "5943871210"}),
        "{event}"
    );
    assert_eq!(d["realms"], json!(["acme"]), "{event}");
    assert_eq!(d["expires_at"], login["expires_at"], "{event}");
    let reads = s
        .realm_events_of_token("acme", "secrets.read", token_id)
        .await;
    assert!(reads.len() >= 3, "prod, dev and other/x reads: {reads:?}");
    for e in &reads {
        assert_eq!(e["actor"]["auth_method"], "jwt", "{e}");
        assert_eq!(
            e["actor"]["identity"],
            json!({"method": "github", "role": "deploy",
                   "subject": "repo:acme/api:ref:refs/heads/main"}),
            "{e}"
        );
    }
    assert!(
        reads
            .iter()
            .any(|e| e["outcome"] == "success" && e["status"] == 200),
        "{reads:?}"
    );
    assert!(
        reads
            .iter()
            .any(|e| e["outcome"] == "denied" && e["status"] == 403),
        "{reads:?}"
    );

    // The JWT is kept nowhere: not in the store, the trail or the log.
    let signature = jwt.rsplit('.').next().expect("signature");
    let dump = s.store_dump().await;
    let trail = s.login_events().await;
    for needle in [jwt.as_str(), signature, token] {
        assert!(!contains(&dump, needle), "the store holds {needle:.40}…");
        assert!(
            !trail.iter().any(|e| e.to_string().contains(needle)),
            "the trail holds {needle:.40}…"
        );
        assert!(!s.log().contains(needle), "the log holds {needle:.40}…");
    }
    // `GET /tokens/self` describes the identity too.
    let id = identity(&me);
    assert_eq!(id["method"], "github", "{me}");
    assert_eq!(id["type"], "jwt", "{me}");
    assert_eq!(id["role"], "deploy", "{me}");
    assert_eq!(id["subject"], "repo:acme/api:ref:refs/heads/main", "{me}");
    assert_eq!(id["issuer"], issuer.url, "{me}");
    assert_eq!(id["claims"]["repository"], "acme/api", "{me}");
    assert_eq!(id["claims"]["run_id"], "5943871210", "{me}");
    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GitLab CI role: globs on `project_path`, the string `"true"` of `ref_protected`, a list
/// of refs.
fn gitlab_role() -> Value {
    json!({
        "bound_audiences": [AUD],
        "bound_claims_type": "glob",
        "bound_claims": {"project_path": "acme/*", "ref_protected": "true",
                         "ref": ["main", "release/*"]},
        "claim_mappings": {"project_path": "project", "pipeline_id": "pipeline"},
        "grants": [{"realm": "acme", "role": "viewer"}],
    })
}

async fn gitlab_ci_globs_and_key_sources(b: Backend) {
    let dir = temp_dir("arcan-oidc");
    let ec = TestKey::es256("gl-1");
    let issuer = Issuer::start(&dir, &[&ec]).await;
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    assert_eq!(
        s.put(&s.root, "acme", "prod", "app/db", "v").await.0,
        StatusCode::OK
    );

    // ES256 keys from a JWKS URL (no discovery): the issuer must be bound explicitly.
    s.auth_method(json!({"name": "gitlab", "type": "jwt", "config": {
        "jwks_url": format!("{}/.well-known/jwks", issuer.url), "ca_pem": issuer.ca_pem,
        "bound_issuer": issuer.url, "jwt_supported_algs": ["ES256"]}}))
        .await;
    s.login_role("gitlab", "ci", gitlab_role()).await;
    let claims = |project: &str, git_ref: &str| gitlab_ci(&issuer.url, project, git_ref, AUD);
    for (what, c) in [
        ("acme/api on main", claims("acme/api", "main")),
        ("a release branch", claims("acme/web", "release/1.2")),
    ] {
        let login = s.machine_login_ok("gitlab", "ci", &ec.sign(&c)).await;
        let token = login["token"].as_str().expect("token");
        let (st, v) = s
            .get("/api/v1/realms/acme/secrets/app/db?env=prod", token)
            .await;
        assert_eq!(st, StatusCode::OK, "{what}: {v}");
    }
    let mut unprotected = claims("acme/api", "main");
    unprotected["ref_protected"] = json!("false");
    let mut boolean = claims("acme/api", "main");
    boolean["ref_protected"] = json!(true);
    for (what, c, phrase) in [
        (
            "`*` does not cross `/`",
            claims("acme/group/api", "main"),
            "claim `project_path`: `acme/group/api` matches none of",
        ),
        (
            "another namespace",
            claims("beta/api", "main"),
            "claim `project_path`: `beta/api` matches none of",
        ),
        (
            "an unprotected ref",
            unprotected,
            "claim `ref_protected`: `false` matches none of",
        ),
        (
            "a boolean where the string is bound",
            boolean,
            "claim `ref_protected`",
        ),
        (
            "a ref outside the list",
            claims("acme/api", "dev"),
            "claim `ref`: `dev` matches none of",
        ),
    ] {
        let (st, body) = s.machine_login("gitlab", "ci", &ec.sign(&c)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_refused(st, &body, StatusCode::FORBIDDEN, phrase);
    }
    let rsa = TestKey::rs256("gl-1");
    let (st, body) = s
        .machine_login("gitlab", "ci", &rsa.sign(&claims("acme/api", "main")))
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::UNAUTHORIZED,
        "alg: `RS256` is not accepted (allowed: ES256)",
    );
    let fetched = issuer.with(|st| (st.discovery_fetches, st.jwks_fetches));
    assert_eq!(fetched.0, 0, "no discovery with jwks_url");
    assert!(fetched.1 >= 1, "the key set was fetched");

    // EdDSA from a static PEM: no network at all.
    let ed = TestKey::ed25519("ed-1");
    let static_iss = "https://gitlab.example.com";
    let m = s
        .auth_method(json!({"name": "gitlab-static", "type": "jwt", "config": {
            "jwt_validation_pubkeys": [spki_pem(&ed.jwk)], "bound_issuer": static_iss}}))
        .await;
    assert_eq!(m["type"], "jwt", "{m}");
    s.login_role("gitlab-static", "ci", gitlab_role()).await;
    let good = gitlab_ci(static_iss, "acme/api", "main", AUD);
    let login = s
        .machine_login_ok("gitlab-static", "ci", &ed.sign(&good))
        .await;
    let token = login["token"].as_str().expect("token");
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    let other = TestKey::ed25519("ed-1");
    let (st, body) = s
        .machine_login("gitlab-static", "ci", &other.sign(&good))
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::UNAUTHORIZED,
        "signature: does not verify",
    );
    let foreign = gitlab_ci(&issuer.url, "acme/api", "main", AUD);
    let (st, body) = s
        .machine_login("gitlab-static", "ci", &ed.sign(&foreign))
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::UNAUTHORIZED,
        &format!("iss: `{}` is not the method's issuer", issuer.url),
    );
    // `GET /tokens/self` describes the identity too.
    let id = identity(&me);
    assert_eq!(id["issuer"], static_iss, "{me}");
    assert_eq!(
        id["subject"], "project_path:acme/api:ref_type:branch:ref:main",
        "{me}"
    );
    assert_eq!(
        id["claims"],
        json!({"project": "acme/api", "pipeline": "574"}),
        "{me}"
    );
    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` logins at once with tokens signed by `key` under random unknown kids.
async fn unknown_kids(s: &Server, key: &TestKey, claims: &Value, n: usize) {
    let answers = futures_util::future::join_all((0..n).map(|i| {
        let mut header = jsonwebtoken::Header::new(key.alg);
        header.kid = Some(format!("random-{i}-{}", uuid::Uuid::new_v4().simple()));
        let jwt = key.sign_with(&header, claims);
        async move { s.machine_login("github", "deploy", &jwt).await }
    }))
    .await;
    for (st, body) in answers {
        assert_refused(st, &body, StatusCode::UNAUTHORIZED, "kid: no key `random-");
    }
}

async fn key_rotation(b: Backend) {
    let dir = temp_dir("arcan-oidc");
    let k1 = TestKey::rs256("kid-1");
    let k2 = TestKey::es256("kid-2");
    let issuer = Issuer::start(&dir, &[&k1]).await;
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    let interval = Duration::from_secs(6);
    let jwks = || issuer.with(|st| st.jwks_fetches);

    // Every fetch so far happened between `start` and `fetched`.
    let start = std::time::Instant::now();
    s.auth_method(github_method(
        &issuer,
        json!({"jwks_cache_ttl": "1h", "jwks_refresh_min_interval": "6s"}),
    ))
    .await;
    assert!(jwks() >= 1, "enable fetches the key set");
    let mut role = deploy_role();
    role["grants"] = json!([{"realm": "acme", "role": "viewer"}]);
    s.login_role("github", "deploy", role).await;
    let claims = github_actions(&issuer.url, "acme/api", "refs/heads/main", AUD);
    s.machine_login_ok("github", "deploy", &k1.sign(&claims))
        .await;
    let fetched = std::time::Instant::now();
    let base = jwks();
    s.machine_login_ok("github", "deploy", &k1.sign(&claims))
        .await;
    assert_eq!(jwks(), base, "a fresh cached set is not refetched");

    // kid-2 is published; within the refresh interval nothing is refetched, however many
    // unknown kids arrive.
    issuer.publish(&k2);
    let (st, body) = s.machine_login("github", "deploy", &k2.sign(&claims)).await;
    assert_refused(st, &body, StatusCode::UNAUTHORIZED, "kid: no key `kid-2`");
    unknown_kids(&s, &k1, &claims, 30).await;
    assert!(
        start.elapsed() < interval,
        "the test took longer than the refresh interval; the checks above prove nothing"
    );
    assert_eq!(
        jwks(),
        base,
        "unknown kids within the interval fetch nothing"
    );

    // After the interval, 30 unknown kids at once cost exactly one fetch, which brings kid-2.
    tokio::time::sleep(interval.saturating_sub(fetched.elapsed()) + Duration::from_millis(500))
        .await;
    unknown_kids(&s, &k1, &claims, 30).await;
    assert_eq!(jwks(), base + 1, "one fetch for a flood of unknown kids");
    s.machine_login_ok("github", "deploy", &k2.sign(&claims))
        .await;
    assert_eq!(jwks(), base + 1, "kid-2 came with that fetch");

    // Retiring kid-1: with a 1 s cache it is refused soon after (the first login after the
    // retirement may still be served from the cached set).
    let config = github_method(
        &issuer,
        json!({"jwks_cache_ttl": "1s", "jwks_refresh_min_interval": "1s"}),
    );
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/auth/methods/github",
            Some(&s.root),
            Some(json!({"config": config["config"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["config"]["jwks_cache_ttl"], "1s", "{body}");
    s.machine_login_ok("github", "deploy", &k1.sign(&claims))
        .await;
    issuer.retire("kid-1");
    s.machine_login_ok("github", "deploy", &k1.sign(&claims))
        .await;
    let old = k1.sign(&claims);
    let mut last = (StatusCode::OK, Value::Null);
    for _ in 0..150 {
        last = s.machine_login("github", "deploy", &old).await;
        if last.0 != StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(
        last.0,
        &last.1,
        StatusCode::UNAUTHORIZED,
        "kid: no key `kid-1`",
    );
    s.machine_login_ok("github", "deploy", &k2.sign(&claims))
        .await;

    // The issuer fails: the cached kid-2 still works, an unknown kid is an upstream failure.
    issuer.with(|st| st.fail_with = Some(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.machine_login_ok("github", "deploy", &k2.sign(&claims))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("kid-3".into());
    let (st, body) = s
        .machine_login("github", "deploy", &k1.sign_with(&header, &claims))
        .await;
    assert_refused(st, &body, StatusCode::BAD_GATEWAY, "upstream: the issuer's");
    assert_eq!(body["error"]["code"], "upstream_failed", "{body}");
    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

both_backends!(
    github_actions_reads_exactly_its_secrets,
    gitlab_ci_globs_and_key_sources,
    key_rotation
);
