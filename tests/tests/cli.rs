//! The README walkthrough through the real CLI, and graceful shutdown.

use arcan_tests::cli::Cli;
use arcan_tests::*;

async fn walkthrough(b: Backend) {
    let s = Server::start(b).await;
    let cli = Cli::new(&s);
    cli.ok(
        &["register", "--email", "dev@example.com", "--password-stdin"],
        Some("a long password\n"),
        None,
    );
    cli.ok(
        &["login", "--email", "dev@example.com", "--password-stdin"],
        Some("a long password\n"),
        None,
    );
    let creds = cli.credentials();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds)
            .expect("credentials")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    cli.ok(&["realm", "create", "acme"], None, None);
    cli.ok(
        &[
            "kv",
            "--realm",
            "acme",
            "--env",
            "prod",
            "set",
            "app/db-url",
            "postgres://db",
        ],
        None,
        None,
    );
    cli.ok(
        &[
            "kv",
            "--realm",
            "acme",
            "--env",
            "prod",
            "set",
            "app/api.key",
            "-",
        ],
        Some("k-123"),
        None,
    );
    assert_eq!(
        cli.ok(
            &[
                "kv",
                "--realm",
                "acme",
                "--env",
                "prod",
                "get",
                "app/db-url"
            ],
            None,
            None
        )
        .trim(),
        "postgres://db"
    );
    let (ok, _, err) = cli.run(
        &[
            "kv",
            "--realm",
            "acme",
            "--env",
            "prod",
            "set",
            "app/db-url",
            "x",
            "--cas",
            "0",
        ],
        None,
        None,
    );
    assert!(!ok && err.contains("412"), "{err}");
    let list = cli.ok(
        &["kv", "--realm", "acme", "--env", "prod", "list"],
        None,
        None,
    );
    assert!(
        list.contains("app/api.key") && list.contains("app/db-url"),
        "{list}"
    );
    let dotenv = cli.ok(
        &["kv", "--realm", "acme", "--env", "prod", "export"],
        None,
        None,
    );
    assert!(dotenv.contains("APP_DB_URL=\"postgres://db\""), "{dotenv}");
    let json_out = cli.ok(
        &[
            "kv", "--realm", "acme", "--env", "prod", "export", "--format", "json",
        ],
        None,
        None,
    );
    let parsed: Value = serde_json::from_str(&json_out).expect("json export");
    assert_eq!(parsed["app/api.key"], "k-123");
    let yaml = cli.ok(
        &[
            "kv", "--realm", "acme", "--env", "prod", "export", "--format", "yaml",
        ],
        None,
        None,
    );
    assert!(yaml.contains("app/api.key: k-123"), "{yaml}");
    let ran = cli.ok(
        &[
            "kv",
            "--realm",
            "acme",
            "--env",
            "prod",
            "run",
            "--",
            "sh",
            "-c",
            "echo $APP_API_KEY",
        ],
        None,
        None,
    );
    assert_eq!(ran.trim(), "k-123");
    let (code, _, err) = cli.run_code(
        &["kv", "--realm", "acme", "run", "--", "sh", "-c", "exit 3"],
        None,
        None,
    );
    assert_eq!(code, Some(3), "the child's exit code propagates: {err}");
    let history = cli.ok(
        &[
            "kv",
            "--realm",
            "acme",
            "--env",
            "prod",
            "history",
            "app/db-url",
        ],
        None,
        None,
    );
    assert!(history.contains("\"version\": 1"), "{history}");
    // The README's CI token: 90 days from a 24-hour login session, narrowed, used through
    // ARCAN_TOKEN.
    let created = cli.ok(
        &[
            "token",
            "create",
            "--ttl",
            "90d",
            "--capabilities",
            "secrets:read",
            "--realm",
            "acme",
            "--env",
            "prod",
            "--keys",
            "app/*",
        ],
        None,
        None,
    );
    let created: Value = serde_json::from_str(&created).expect("token json");
    let narrow = created["token"].as_str().expect("token").to_owned();
    assert_eq!(
        cli.ok(
            &[
                "kv",
                "--realm",
                "acme",
                "--env",
                "prod",
                "get",
                "app/db-url"
            ],
            None,
            Some(&narrow)
        )
        .trim(),
        "postgres://db"
    );
    let (ok, _, err) = cli.run(
        &[
            "kv", "--realm", "acme", "--env", "prod", "set", "app/x", "y",
        ],
        None,
        Some(&narrow),
    );
    assert!(!ok && err.contains("403"), "{err}");
    let explain = cli.ok(
        &[
            "policy",
            "--realm",
            "acme",
            "explain",
            "--token",
            &narrow,
            "--action",
            "secrets:write",
            "--key",
            "app/x",
            "--env",
            "prod",
        ],
        None,
        None,
    );
    assert!(explain.contains("\"allowed\": false"), "{explain}");
    cli.ok(
        &[
            "policy",
            "--realm",
            "acme",
            "role",
            "create",
            "ci",
            "--capabilities",
            "secrets:read",
            "--env",
            "prod",
            "--keys",
            "app/*",
        ],
        None,
        None,
    );
    let roles = cli.ok(&["policy", "--realm", "acme", "role", "list"], None, None);
    assert!(roles.contains("\"ci\""), "{roles}");
    let who = cli.ok(&["token", "lookup-self"], None, None);
    assert!(who.contains("dev@example.com"), "{who}");
    let doctor = cli.ok(&["doctor"], None, None);
    assert!(
        doctor.contains("ok   server") && doctor.contains("dev@example.com"),
        "{doctor}"
    );
    let (ok, out, _) = cli.run(&["doctor"], None, Some("arc_revoked-or-bogus"));
    assert!(!ok && out.contains("FAIL token"), "{out}");
    let (ok, _, err) = cli.run(&["kv", "--realm", "acme", "get", "nope"], None, None);
    assert!(!ok && err.contains("404"), "{err}");
}

async fn graceful_shutdown(b: Backend) {
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    // A write whose body is still arriving when SIGTERM comes in.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let request = s
        .http
        .put(format!(
            "{}/api/v1/realms/acme/secrets/inflight?env=dev",
            s.base
        ))
        .bearer_auth(&s.root)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let pending = tokio::spawn(request);
    tx.send(Ok(br#"{"value": "#.to_vec()))
        .await
        .expect("first half");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.signal_term();
    // Send the rest once the server is draining (it logs so), not after a guessed delay.
    let draining = Server::wait_for(10, || async { s.log().contains("draining in-flight") }).await;
    assert!(draining, "no drain after SIGTERM: {}", s.log());
    tx.send(Ok(br#""drained"}"#.to_vec()))
        .await
        .expect("second half");
    drop(tx);
    let res = pending
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(res.status(), StatusCode::OK, "drained, not dropped");
    assert!(s.wait_exit(), "server exits 0 after draining: {}", s.log());
    // The acknowledged write is there after a restart.
    s.restart().await;
    let (st, v) = s
        .get("/api/v1/realms/acme/secrets/inflight?env=dev", &s.root)
        .await;
    assert_eq!((st, v["value"].clone()), (StatusCode::OK, json!("drained")));
}

both_backends!(walkthrough, graceful_shutdown);

/// The engine and lease commands against a real server with the SDK's hello engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_and_lease_commands() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let cli = Cli::new(&s);
    let root = Some(s.root.as_str());
    let r = |args: &[&str]| {
        let mut all = vec!["--realm", "acme"];
        all.extend_from_slice(args);
        all.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.ok(&refs, None, root)
    };
    let plugins = run(vec!["engine".into(), "plugins".into()]);
    assert!(plugins.contains("\"hello\""), "{plugins}");
    let mut enable = vec![
        "engine".to_string(),
        "enable".into(),
        "hi".into(),
        "--plugin".into(),
        "hello".into(),
    ];
    enable.extend(r(&[]));
    let out = run(enable);
    assert!(out.contains("\"plugin\": \"hello\""), "{out}");
    let mut role = vec![
        "engine",
        "role",
        "set",
        "hi",
        "dev",
        "--definition",
        "{}",
        "--default-ttl",
        "5m",
        "--max-ttl",
        "1h",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    role.extend(r(&[]));
    run(role);
    let mut creds = vec!["engine", "creds", "hi", "dev", "--ttl", "2m"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    creds.extend(r(&[]));
    let issued: Value = serde_json::from_str(&run(creds)).expect("json");
    assert_eq!(issued["data"]["greeting"], "hello dev", "{issued}");
    assert_eq!(issued["lease_duration"], 120);
    let id = issued["lease_id"].as_str().expect("lease id").to_owned();
    let mut list = vec!["lease", "list", "--prefix", "hi/"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    list.extend(r(&[]));
    assert!(run(list).contains(&id));
    let mut renew = vec![
        "lease".to_string(),
        "renew".into(),
        id.clone(),
        "--ttl".into(),
        "10m".into(),
    ];
    renew.extend(r(&[]));
    assert!(run(renew).contains("\"state\": \"active\""));
    let mut revoke = vec!["lease".to_string(), "revoke".into(), id.clone()];
    revoke.extend(r(&[]));
    assert!(run(revoke).contains("\"state\": \"revoked\""));
    // Errors come back readable, with a failing exit status.
    let (ok, _, err) = cli.run(
        &["engine", "creds", "hi", "nope", "--realm", "acme"],
        None,
        root,
    );
    assert!(
        !ok && err.contains("404") && err.contains("role `nope` does not exist"),
        "{err}"
    );
    let mut disable = vec!["engine", "disable", "hi"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    disable.extend(r(&[]));
    run(disable);
    let mut list = vec!["engine", "list"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    list.extend(r(&[]));
    assert!(!run(list).contains("\"hi\""));
}
