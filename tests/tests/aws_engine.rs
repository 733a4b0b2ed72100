//! The `aws` engine (plugins/aws) end to end against moto with SigV4 verification on:
//! IAM users issued, used and revoked; assumed-role sessions that expire by themselves;
//! root rotation that nobody sees; signing that is really checked; bad input refused with
//! nothing half-created.

use arcan_tests::moto::{self, ADMIN_USER, Account, Keys, Moto};
use arcan_tests::*;

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The connection spec of a mount: moto's URL and the given root keys.
fn connection(moto: &Moto, keys: &Keys) -> Value {
    json!({"aws": {
        "type": "http", "base_url": moto.base,
        "auth": {
            "type": "aws_sigv4", "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key, "region": moto::REGION,
        },
    }})
}

/// moto with its account, a server with the test plugins, realm `acme` and the engine
/// mounted at `aws` with the admin's keys.
async fn setup() -> (Server, Moto, Account) {
    setup_with("").await
}

/// [`setup`] with extra server configuration.
async fn setup_with(extra: &str) -> (Server, Moto, Account) {
    let (moto, account) = Moto::start().await;
    let s = Server::start_with(Backend::Sqlite, &plugin_config(extra)).await;
    s.realm("acme").await;
    let (st, m) = s
        .mount(
            "acme",
            "aws",
            "aws",
            &["host:http"],
            connection(&moto, &account.admin),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert!(
        !m.to_string().contains(&account.admin.secret_access_key),
        "{m}"
    );
    (s, moto, account)
}

async fn role(s: &Server, mount: &str, name: &str, definition: Value) {
    s.engine_role(
        "acme",
        mount,
        name,
        json!({"definition": definition, "default_ttl": "1h", "max_ttl": "24h"}),
    )
    .await;
}

async fn revoke(s: &Server, lease: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/realms/acme/leases/revoke",
        Some(&s.root),
        Some(json!({"lease_id": lease})),
    )
    .await
}

async fn leases(s: &Server, prefix: &str) -> Vec<Value> {
    let (st, b) = s
        .get(
            &format!("/api/v1/realms/acme/leases?prefix={prefix}"),
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["items"]
        .as_array()
        .cloned()
        .expect("a lease listing has `items`")
}

/// IAM users whose name starts with the engine's default prefix.
async fn engine_users(moto: &Moto, account: &Account) -> Vec<String> {
    let mut users = moto.user_names(&account.observer).await;
    users.retain(|u| u.starts_with("arcan-"));
    users
}

/// An `iam_user` credential works (GetCallerIdentity says it is the generated user, with
/// the role's policies); revoke deletes the key, the policies and the user; a user an
/// admin already deleted by hand still revokes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_user_issue_use_revoke() {
    let (s, moto, account) = setup().await;
    let inline = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    ]});
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY], "policy_document": inline}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(
        (c["renewable"].clone(), c["revocable"].clone()),
        (json!(true), json!(true)),
        "{c}"
    );
    let keys = Keys::from_data(&c["data"]);
    let username = c["data"]["username"].as_str().expect("username").to_owned();
    assert!(username.starts_with("arcan-dev-"), "{username}");
    assert!(username.len() <= 64);
    let arn = moto.caller_arn(&keys).await.expect("the issued key works");
    assert_eq!(
        arn,
        format!("arn:aws:iam::{}:user/{username}", moto::ACCOUNT)
    );
    let user = [("UserName", username.as_str())];
    let (_, attached) = moto
        .iam(&account.observer, "ListAttachedUserPolicies", &user)
        .await;
    assert_eq!(moto::all(&attached, "PolicyArn"), [READ_ONLY], "{attached}");
    let (_, inline) = moto.iam(&account.observer, "ListUserPolicies", &user).await;
    assert_eq!(moto::all(&inline, "member"), ["arcan-inline"], "{inline}");
    let (_, tags) = moto.iam(&account.observer, "ListUserTags", &user).await;
    assert!(
        tags.contains("<Key>arcan:mount</Key><Value>aws</Value>"),
        "{tags}"
    );
    // The secret key is returned once and never logged.
    assert!(
        !s.log().contains(&keys.secret_access_key),
        "secret in the log"
    );
    let lease = c["lease_id"].as_str().expect("lease id").to_owned();
    // Renew: the user lives until revoked, the lease moves.
    let before = s.lease("acme", &lease).await;
    let (st, l) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/leases/renew",
            Some(&s.root),
            Some(json!({"lease_id": lease, "ttl": "2h"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{l}");
    let after = s.lease("acme", &lease).await;
    let expiry = |l: &Value| l["expires_at"].as_str().expect("expires_at").to_owned();
    // RFC 3339 in UTC with milliseconds: the text order is the time order.
    assert!(
        expiry(&after) > expiry(&before) && expiry(&after) == expiry(&l),
        "the lease did not move: {before} -> {after} (renew said {l})"
    );
    assert_eq!(after["state"], "active", "{after}");
    moto.caller_arn(&keys)
        .await
        .expect("the key still works after renew");

    let (st, r) = revoke(&s, &lease).await;
    assert_eq!(
        (st, r["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{r}"
    );
    let err = moto.caller_arn(&keys).await.expect_err("revoked key");
    assert_eq!(err, (403, "InvalidClientTokenId".to_owned()));
    let (st, gone) = moto.iam(&account.observer, "GetUser", &user).await;
    assert_eq!(
        (st, moto::code(&gone).as_deref()),
        (404, Some("NoSuchEntity")),
        "{gone}"
    );
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());

    // A user deleted by hand: revoke succeeds (no irrevocable loop).
    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let name = c["data"]["username"].as_str().expect("username").to_owned();
    let user = [("UserName", name.as_str())];
    let key = c["data"]["access_key_id"].as_str().expect("key id");
    for (action, extra) in [
        ("DeleteAccessKey", ("AccessKeyId", key)),
        ("DetachUserPolicy", ("PolicyArn", READ_ONLY)),
        ("DeleteUserPolicy", ("PolicyName", "arcan-inline")),
    ] {
        let (st, b) = moto.iam(&account.observer, action, &[user[0], extra]).await;
        assert_eq!(st, 200, "{action}: {b}");
    }
    let (st, b) = moto.iam(&account.observer, "DeleteUser", &user).await;
    assert_eq!(st, 200, "{b}");
    let (st, r) = revoke(&s, c["lease_id"].as_str().expect("id")).await;
    assert_eq!(
        (st, r["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{r}"
    );
}

/// `assumed_role`: STS session credentials that work as the role, a lease as long as the
/// session, neither renewable nor revocable (revoke answers 409); ttls under STS's 15
/// minutes are refused, longer ones clamped to 12 h.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_role_sessions_expire_by_themselves() {
    let (s, moto, account) = setup().await;
    role(
        &s,
        "aws",
        "app",
        json!({"credential_type": "assumed_role", "role_arn": account.role_arn}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "app", Some("20m")).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    for field in [
        "access_key_id",
        "secret_access_key",
        "session_token",
        "expiration",
    ] {
        assert!(
            c["data"][field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {c}"
        );
    }
    assert_eq!(c["lease_duration"], 1200, "{c}");
    assert_eq!(
        (c["renewable"].clone(), c["revocable"].clone()),
        (json!(false), json!(false)),
        "{c}"
    );
    let keys = Keys::from_data(&c["data"]);
    assert!(keys.session_token.is_some());
    let arn = moto
        .caller_arn(&keys)
        .await
        .expect("session credentials work");
    let prefix = format!(
        "arn:aws:sts::{}:assumed-role/{}/arcan-app-",
        moto::ACCOUNT,
        moto::ROLE
    );
    assert!(arn.starts_with(&prefix), "{arn}");
    // Without the session token the key is refused.
    let no_token = Keys::new(&keys.access_key_id, &keys.secret_access_key);
    assert!(moto.caller_arn(&no_token).await.is_err());

    let lease = c["lease_id"].as_str().expect("lease id").to_owned();
    let l = s.lease("acme", &lease).await;
    assert_eq!(
        (l["revocable"].clone(), l["renewable"].clone()),
        (json!(false), json!(false)),
        "{l}"
    );
    let (st, r) = revoke(&s, &lease).await;
    assert_eq!(st, StatusCode::CONFLICT, "{r}");
    assert!(message(&r).contains("expires by itself"), "{r}");
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/leases/renew",
            Some(&s.root),
            Some(json!({"lease_id": lease})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{r}");
    assert!(
        moto.caller_arn(&keys).await.is_ok(),
        "the session still works"
    );

    let (st, b) = s.creds("acme", "aws", "app", Some("10m")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("900s"), "{b}");
    let (st, c) = s.creds("acme", "aws", "app", Some("20h")).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["lease_duration"], 43200, "{c}");

    // A session policy narrows the session; a role that does not exist is an AWS error.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
    ]});
    role(
        &s,
        "aws",
        "narrow",
        json!({"credential_type": "assumed_role", "role_arn": account.role_arn, "session_policy": policy}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "narrow", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["lease_duration"], 3600, "{c}");
}

/// Root rotation: afterwards the old root key is refused by moto, the engine keeps
/// issuing with the new one, and no API response or log line shows either key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_replaces_the_key_unseen() {
    let (s, moto, account) = setup().await;
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let old = account.admin.clone();
    assert_eq!(moto.caller_arn(&old).await, Ok(account.admin_arn.clone()));
    let mut responses = Vec::new();
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/aws/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    responses.push(r);
    let err = moto.caller_arn(&old).await.expect_err("the old root key");
    assert_eq!(err, (403, "InvalidClientTokenId".to_owned()));
    let (_, listed) = moto
        .iam(
            &account.observer,
            "ListAccessKeys",
            &[("UserName", ADMIN_USER)],
        )
        .await;
    let ids = moto::all(&listed, "AccessKeyId");
    assert_eq!(ids.len(), 1, "{listed}");
    let new_id = ids[0].clone();
    assert_ne!(new_id, old.access_key_id);

    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "the engine works with the new key: {c}");
    assert!(moto.caller_arn(&Keys::from_data(&c["data"])).await.is_ok());
    responses.push(c);
    let (_, read) = s.get("/api/v1/realms/acme/engines/aws", &s.root).await;
    assert_eq!(read["connections"]["aws"]["auth"], "aws_sigv4", "{read}");
    responses.push(read);
    // Rotating again works too (the stored key is the new one).
    let (st, r) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/aws/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    responses.push(r);
    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    responses.push(c);
    let (st, audit) = s.get("/api/v1/realms/acme/audit?limit=100", &s.root).await;
    assert_eq!(st, StatusCode::OK, "{audit}");
    responses.push(audit);
    let log = s.log();
    for secret in [&old.access_key_id, &old.secret_access_key, &new_id] {
        for r in &responses {
            assert!(!r.to_string().contains(secret.as_str()), "{r}");
        }
        assert!(
            !log.contains(secret.as_str()),
            "a root key in the server log"
        );
    }
    assert!(
        !contains(&s.store_dump().await, &old.secret_access_key),
        "root secret stored in plain text"
    );
}

/// Signing is really checked: moto refuses a request signed with a wrong secret, and a
/// mount whose root secret is wrong gets a 502 naming the AWS error, with no lease and
/// no user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_signed_requests_are_rejected() {
    let (s, moto, account) = setup().await;
    let wrong = Keys::new(&account.observer.access_key_id, "not-the-secret");
    let err = moto.caller_arn(&wrong).await.expect_err("wrong secret");
    assert_eq!(err, (403, "SignatureDoesNotMatch".to_owned()));
    assert!(moto.caller_arn(&account.observer).await.is_ok());

    let bad = Keys::new(&account.admin.access_key_id, "not-the-secret");
    let (st, m) = s
        .mount(
            "acme",
            "bad",
            "aws",
            &["host:http"],
            connection(&moto, &bad),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    role(
        &s,
        "bad",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let (st, b) = s.creds("acme", "bad", "dev", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(message(&b).contains("SignatureDoesNotMatch"), "{b}");
    assert!(!b.to_string().contains("not-the-secret"), "{b}");
    assert_eq!(leases(&s, "bad/").await, Vec::<Value>::new());
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());
    // The same engine with the right keys works.
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
}

/// Bad input: unknown role 404, malformed definitions and configurations 400 (nothing
/// stored), ttl over max 400, an unreachable endpoint 502 with no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let (s, moto, account) = setup().await;
    let (st, _) = s.creds("acme", "aws", "nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for (definition, says) in [
        (json!({"policy_arns": [READ_ONLY]}), "credential_type"),
        (json!({"credential_type": "root"}), "unknown variant"),
        (json!({"credential_type": "iam_user"}), "policy_arns"),
        (
            json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY], "color": "red"}),
            "unknown field",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": ["ReadOnlyAccess"]}),
            "not an IAM policy ARN",
        ),
        (
            json!({"credential_type": "iam_user", "policy_document": {"Version": "2012-10-17"}}),
            "Statement",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY], "path": "apps"}),
            "path",
        ),
        (json!({"credential_type": "assumed_role"}), "role_arn"),
        (
            json!({"credential_type": "assumed_role", "role_arn": READ_ONLY}),
            "not an IAM role ARN",
        ),
        (json!("iam_user"), "JSON object"),
    ] {
        let (st, b) = s
            .call(
                Method::PUT,
                "/api/v1/realms/acme/engines/aws/roles/bad",
                Some(&s.root),
                Some(json!({"definition": definition})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{definition}: {b}");
        assert!(message(&b).contains(says), "{definition}: {b}");
    }
    let (st, _) = s
        .get("/api/v1/realms/acme/engines/aws/roles/bad", &s.root)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no malformed role was stored");
    // Role definitions are normalised.
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY, READ_ONLY]}),
    )
    .await;
    let (_, r) = s
        .get("/api/v1/realms/acme/engines/aws/roles/dev", &s.root)
        .await;
    assert_eq!(
        r["definition"],
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY], "path": "/"}),
        "{r}"
    );
    let (st, b) = s.creds("acme", "aws", "dev", Some("25h")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("max_ttl"), "{b}");

    // Configurations: unknown keys and unsafe prefixes are refused, nothing is mounted.
    for (config, says) in [
        (
            json!({"connection": "aws", "region": "eu-west-1"}),
            "unknown field",
        ),
        (json!({"username_prefix": "bad prefix"}), "username_prefix"),
        (json!({"connection": "Not A Name"}), "connection"),
    ] {
        let (st, b) = s
            .call(
                Method::POST,
                "/api/v1/realms/acme/engines",
                Some(&s.root),
                Some(json!({
                    "name": "cfg", "plugin": "aws", "grants": ["host:http"], "config": config,
                    "connections": connection(&moto, &account.admin),
                })),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{config}: {b}");
        assert!(message(&b).contains(says), "{config}: {b}");
    }
    let (st, _) = s.get("/api/v1/realms/acme/engines/cfg", &s.root).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A configuration that names a connection the mount does not have: the host refuses
    // the use of something not granted (501).
    let (st, m) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines",
            Some(&s.root),
            Some(json!({
                "name": "other", "plugin": "aws", "grants": ["host:http"],
                "config": {"connection": "elsewhere"},
                "connections": connection(&moto, &account.admin),
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    role(
        &s,
        "other",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let (st, b) = s.creds("acme", "other", "dev", None).await;
    assert_eq!(
        (st, b["error"]["code"].clone()),
        (StatusCode::NOT_IMPLEMENTED, json!("not_granted")),
        "{b}"
    );
    assert!(message(&b).contains("`elsewhere`"), "{b}");

    // An endpoint that does not answer: 502, no lease, nothing created.
    let down = format!("http://127.0.0.1:{}", receivers::free_port());
    let mut spec = connection(&moto, &account.admin);
    spec["aws"]["base_url"] = json!(down);
    let (st, m) = s.mount("acme", "down", "aws", &["host:http"], spec).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    role(
        &s,
        "down",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let (st, b) = s.creds("acme", "down", "dev", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(message(&b).contains("CreateUser"), "{b}");
    role(
        &s,
        "down",
        "app",
        json!({"credential_type": "assumed_role", "role_arn": account.role_arn}),
    )
    .await;
    let (st, b) = s.creds("acme", "down", "app", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(leases(&s, "down/").await, Vec::<Value>::new());
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/engines/down/rotate-root",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());
    assert_eq!(
        moto.caller_arn(&account.admin).await,
        Ok(account.admin_arn.clone()),
        "the root key was not touched"
    );
}

/// When a step after CreateUser fails (a policy ARN that does not exist, a policy
/// document AWS refuses), the user and whatever was attached to it are deleted again:
/// nothing half-created, no lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_issues_leave_nothing_behind() {
    let (s, moto, account) = setup().await;
    role(
        &s,
        "aws",
        "missing",
        json!({"credential_type": "iam_user", "policy_arns": [
            READ_ONLY, "arn:aws:iam::aws:policy/DoesNotExist",
        ]}),
    )
    .await;
    let (st, b) = s.creds("acme", "aws", "missing", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(
        message(&b).contains("AttachUserPolicy") && message(&b).contains("NoSuchEntity"),
        "{b}"
    );
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());
    // A document that passes the engine's shape check but not AWS's.
    role(
        &s,
        "aws",
        "malformed",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY],
               "policy_document": {"Version": "2012-10-17", "Statement": "bogus"}}),
    )
    .await;
    let (st, b) = s.creds("acme", "aws", "malformed", None).await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{b}");
    assert!(message(&b).contains("MalformedPolicyDocument"), "{b}");
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());
    assert_eq!(leases(&s, "aws/").await, Vec::<Value>::new());
    // The admin and observer are untouched; the engine still issues.
    let users = moto.user_names(&account.observer).await;
    assert!(users.contains(&ADMIN_USER.to_owned()), "{users:?}");
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
}

/// The reaper deletes the IAM user of an expired lease; unmounting revokes the active
/// `iam_user` leases and lets `assumed_role` ones expire (nothing to revoke).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_and_unmount() {
    let reaper = "reaper:\n  interval: 1s\n  grace: 20s\n  revoke_timeout: 5s\n  max_attempts: 3\n  backoff: 1s\n";
    let (s, moto, account) = setup_with(reaper).await;
    role(
        &s,
        "aws",
        "dev",
        json!({"credential_type": "iam_user", "policy_arns": [READ_ONLY]}),
    )
    .await;
    role(
        &s,
        "aws",
        "app",
        json!({"credential_type": "assumed_role", "role_arn": account.role_arn}),
    )
    .await;
    let (st, c) = s.creds("acme", "aws", "dev", Some("1s")).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let lease = c["lease_id"].as_str().expect("lease id").to_owned();
    let keys = Keys::from_data(&c["data"]);
    let reaped = Server::wait_for(30, || async {
        s.lease("acme", &lease).await["state"] == "revoked"
    })
    .await;
    assert!(reaped, "{}", s.lease("acme", &lease).await);
    assert!(
        moto.caller_arn(&keys).await.is_err(),
        "the reaped key works"
    );
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());

    let (st, c) = s.creds("acme", "aws", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let (st, a) = s.creds("acme", "aws", "app", None).await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let (st, report) = s
        .call(
            Method::DELETE,
            "/api/v1/realms/acme/engines/aws",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(
        (report["revoked"].clone(), report["expired"].clone()),
        (json!(1), json!(1)),
        "{report}"
    );
    assert_eq!(engine_users(&moto, &account).await, Vec::<String>::new());
    let session = s.lease("acme", a["lease_id"].as_str().expect("id")).await;
    assert_eq!(session["state"], "expired", "{session}");
}
