//! KV engine: versions, check-and-set, pagination, deletion and the bad-input table.

use arcan_tests::*;

async fn versions_and_cas(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    let url = "/api/v1/realms/acme/secrets/app/db?env=prod";
    let put = |body: Value| s.call(Method::PUT, url, Some(&s.root), Some(body));
    let (st, v1) = put(json!({"value": "one", "cas": 0})).await;
    assert_eq!(st, StatusCode::OK, "{v1}");
    assert_eq!(v1["version"], 1);
    let (st, body) = put(json!({"value": "again", "cas": 0})).await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["error"]["code"], "cas_mismatch");
    let (st, v2) = put(json!({"value": "two", "cas": 1})).await;
    assert_eq!((st, v2["version"].clone()), (StatusCode::OK, json!(2)));
    let (st, _) = put(json!({"value": "stale", "cas": 1})).await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    // If-Match works like cas.
    let res = s
        .http
        .put(format!("{}{url}", s.base))
        .bearer_auth(&s.root)
        .header("if-match", "\"1\"")
        .json(&json!({"value": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let res = s
        .http
        .put(format!("{}{url}", s.base))
        .bearer_auth(&s.root)
        .header("if-match", "\"2\"")
        .json(&json!({"value": "three"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"3\"");
    // Current and older versions.
    let (_, cur) = s.get(url, &s.root).await;
    assert_eq!(
        (cur["value"].clone(), cur["version"].clone()),
        (json!("three"), json!(3))
    );
    let (_, old) = s
        .get(
            "/api/v1/realms/acme/secrets/app/db?env=prod&version=1",
            &s.root,
        )
        .await;
    assert_eq!(
        (old["value"].clone(), old["value_version"].clone()),
        (json!("one"), json!(1))
    );
    let (st, _) = s
        .get(
            "/api/v1/realms/acme/secrets/app/db?env=prod&version=9",
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // History, newest first.
    let (_, h) = s
        .get("/api/v1/realms/acme/metadata/app/db?env=prod", &s.root)
        .await;
    let versions: Vec<_> = h["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert_eq!(versions, vec![json!(3), json!(2), json!(1)]);
    // Environments are separate.
    let (st, _) = s
        .get("/api/v1/realms/acme/secrets/app/db?env=dev", &s.root)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Delete, then a write continues the numbering.
    let (st, _) = s.call(Method::DELETE, url, Some(&s.root), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get(url, &s.root).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.call(Method::DELETE, url, Some(&s.root), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v4) = put(json!({"value": "four", "cas": 0})).await;
    assert_eq!((st, v4["version"].clone()), (StatusCode::OK, json!(4)));
}

async fn pagination(b: Backend) {
    let s = Server::start(b).await;
    s.realm("acme").await;
    for i in 0..25 {
        s.put(&s.root, "acme", "dev", &format!("svc/k{i:02}"), "v")
            .await;
    }
    s.put(&s.root, "acme", "dev", "other", "v").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/realms/acme/secrets?env=dev&prefix=svc/&limit=10".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (st, page) = s.get(&path, &s.root).await;
        assert_eq!(st, StatusCode::OK, "{page}");
        for item in page["items"].as_array().expect("items") {
            assert!(item.get("value").is_none(), "list never returns values");
            seen.push(item["key"].as_str().expect("key").to_owned());
        }
        assert_eq!(page["has_more"], json!(page["next_cursor"].is_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<_> = (0..25).map(|i| format!("svc/k{i:02}")).collect();
    assert_eq!(seen, expected);
    let (st, b) = s
        .get("/api/v1/realms/acme/secrets?env=dev&limit=0", &s.root)
        .await;
    assert_refused(
        st,
        &b,
        StatusCode::BAD_REQUEST,
        "limit must be between 1 and 1000",
    );
    let (st, b) = s
        .get("/api/v1/realms/acme/secrets?env=dev&cursor=***", &s.root)
        .await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "invalid cursor");
}

async fn bad_input(b: Backend) {
    let s = Server::start_with(
        b,
        &format!("{RELAXED}server:\n  max_body_bytes: 65536\nkv:\n  max_value_bytes: 1024\n"),
    )
    .await;
    s.realm("acme").await;
    let url = |k: &str| format!("{}/api/v1/realms/acme/secrets/{k}?env=dev", s.base);
    let send = |k: String, body: Vec<u8>| {
        s.http
            .put(url(&k))
            .bearer_auth(&s.root)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(&str, String, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed json",
            "k".into(),
            b"{\"value\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid JSON body: EOF",
        ),
        (
            "empty body",
            "k".into(),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "request body is empty",
        ),
        (
            "wrong type",
            "k".into(),
            br#"{"value": 5}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid type: integer `5`",
        ),
        (
            "unknown field",
            "k".into(),
            br#"{"value": "x", "ttl": 1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown field `ttl`",
        ),
        (
            "negative cas",
            "k".into(),
            br#"{"value": "x", "cas": -1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "cas must be 0 or a positive version",
        ),
        (
            "value too large",
            "k".into(),
            format!("{{\"value\": \"{}\"}}", "x".repeat(2000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "value exceeds 1024 bytes",
        ),
        (
            "body too large",
            "k".into(),
            format!("{{\"value\": \"{}\"}}", "x".repeat(100_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds 65536 bytes",
        ),
        // A URL-normalising client removes literal `..` segments; encoded slashes still
        // smuggle one through to the key validator.
        (
            "dot-dot key",
            "a%2F..%2Fb".into(),
            br#"{"value": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "key segments `.` and `..` are not allowed",
        ),
        (
            "dot segment name",
            "a/.../b".into(),
            br#"{"value": "x"}"#.to_vec(),
            StatusCode::OK,
            "",
        ),
        (
            "bad char key",
            "a%20b".into(),
            br#"{"value": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "key contains ` `",
        ),
        (
            "long key",
            "k".repeat(300),
            br#"{"value": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "key longer than 256 bytes",
        ),
        (
            "value at limit",
            "ok".into(),
            format!("{{\"value\": \"{}\"}}", "x".repeat(1024)).into_bytes(),
            StatusCode::OK,
            "",
        ),
    ];
    for (what, key, body, want, phrase) in cases {
        let res = send(key, body).await.expect("send");
        let status = res.status();
        let json: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{what}: {json}");
        if want != StatusCode::OK {
            assert!(!phrase.is_empty(), "{what}: a refusal names its reason");
            assert_refused(status, &json, want, phrase);
        }
    }
    let (st, b) = s
        .get("/api/v1/realms/acme/secrets/k?env=Not_Valid!", &s.root)
        .await;
    assert_refused(st, &b, StatusCode::BAD_REQUEST, "environment must be 1-32");
    let (st, body) = s.put(&s.root, "unknown-realm", "dev", "k", "v").await;
    assert_refused(st, &body, StatusCode::NOT_FOUND, "realm not found");
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms",
            Some(&s.root),
            Some(json!({"slug": "Bad Slug"})),
        )
        .await;
    assert_refused(st, &body, StatusCode::BAD_REQUEST, "slug must be 2-63");
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/realms",
            Some(&s.root),
            Some(json!({"slug": "acme"})),
        )
        .await;
    assert_refused(
        st,
        &body,
        StatusCode::CONFLICT,
        "a realm with this slug exists",
    );
    let (st, body) = s
        .call(
            Method::PATCH,
            "/api/v1/realms/acme/secrets/k",
            Some(&s.root),
            None,
        )
        .await;
    assert!(st.is_client_error(), "{st} {body}");
    assert!(body["error"]["code"].is_string());
}

async fn read_your_writes_under_concurrency(b: Backend) {
    let s = std::sync::Arc::new(Server::start(b).await);
    s.realm("acme").await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let key = format!("hot/k{}", i % 3);
                let value = format!("writer{t}-{i}");
                let (st, w) = s.put(&s.root, "acme", "dev", &key, &value).await;
                assert_eq!(st, StatusCode::OK, "{w}");
                let written = w["version"].as_i64().expect("version");
                let (st, r) = s
                    .get(
                        &format!("/api/v1/realms/acme/secrets/{key}?env=dev"),
                        &s.root,
                    )
                    .await;
                assert_eq!(st, StatusCode::OK);
                let read = r["version"].as_i64().expect("version");
                assert!(
                    read >= written,
                    "read v{read} after acknowledged v{written}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let mut total = 0;
    for k in 0..3 {
        let (_, h) = s
            .get(
                &format!("/api/v1/realms/acme/metadata/hot/k{k}?env=dev"),
                &s.root,
            )
            .await;
        total += h["version"].as_i64().expect("version");
        let (_, cur) = s
            .get(
                &format!("/api/v1/realms/acme/secrets/hot/k{k}?env=dev"),
                &s.root,
            )
            .await;
        assert_eq!(
            cur["version"], h["version"],
            "cached current version equals the stored one"
        );
    }
    assert_eq!(total, 8 * 25, "every write got its own version");
}

both_backends!(
    versions_and_cas,
    pagination,
    bad_input,
    read_your_writes_under_concurrency
);
