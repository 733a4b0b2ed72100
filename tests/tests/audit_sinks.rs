//! Audit delivery to real receivers: an HTTPS webhook that checks signatures (down for a
//! while, then up) and an rsyslog daemon over TCP, TLS and UDP.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use arcan_tests::receivers::{Rsyslog, WebhookReceiver, free_port, test_pki};
use arcan_tests::*;

const SECRET: &str = "webhook-shared-secret-0123456789";

async fn status(s: &Server) -> Value {
    s.get("/api/v1/audit/status", &s.root).await.1
}

/// Adds the webhook sink `siem` for a receiver that is not up yet; returns its port, the
/// receiver's certificate and key, and the creation response.
async fn webhook_sink(s: &Server) -> (u16, String, String, Value) {
    let port = free_port();
    let (ca, cert, key) = test_pki(&s.dir);
    let sink = json!({"name": "siem", "kind": "webhook", "url": format!("https://localhost:{port}/hook"), "secret": SECRET, "ca_cert": ca});
    let (st, body) = s
        .call(
            Method::POST,
            "/api/v1/audit/sinks",
            Some(&s.root),
            Some(sink),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    (port, cert, key, body)
}

async fn webhook_catches_up_exactly_once(b: Backend) {
    let s = Server::start(b).await;
    let (port, cert, key, body) = webhook_sink(&s).await;
    assert!(
        !body.to_string().contains(SECRET),
        "the secret is never echoed"
    );
    let (_, list) = s.get("/api/v1/audit/sinks", &s.root).await;
    assert!(!list.to_string().contains(SECRET), "{list}");
    // Events while the receiver is down, including denied requests outside any realm.
    s.realm("acme").await;
    let canary = "WEBHOOK-CANARY-51aa";
    s.put(&s.root, "acme", "prod", "app/db", canary).await;
    assert_eq!(
        s.call(
            Method::GET,
            "/api/v1/realms/acme/secrets/app/db?env=prod",
            None,
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get("/api/v1/realms/acme/secrets/app/db?env=prod", "arc_bogus")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    for i in 0..20 {
        s.put(&s.root, "acme", "dev", &format!("k{i}"), "v").await;
    }
    let failing = Server::wait_for(10, || async {
        status(&s).await["sinks"][0]["failed"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(
        failing,
        "delivery to a down receiver must fail and be counted"
    );
    assert!(status(&s).await["sinks"][0]["lag"].as_i64().expect("lag") > 0);
    // Receiver up: the sink catches up.
    let rx = WebhookReceiver::start(port, &cert, &key, SECRET).await;
    let caught_up = Server::wait_for(60, || async {
        let st = status(&s).await;
        st["sinks"][0]["lag"] == 0 && st["stored"] == st["emitted"]
    })
    .await;
    assert!(caught_up, "{}", status(&s).await);
    let head = status(&s).await["head"].as_i64().expect("head");
    let (events, bodies, rejected) = {
        let seen = rx.seen.lock().expect("lock");
        (seen.events.clone(), seen.bodies.clone(), seen.rejected)
    };
    assert_eq!(rejected, 0, "every delivery was signed correctly");
    let mut unique = BTreeMap::new();
    for e in &events {
        unique
            .entry(e["id"].as_str().expect("id").to_owned())
            .or_insert_with(|| e.clone());
    }
    assert!(
        unique.len() as i64 >= head - 2,
        "every stored event arrived: {} of {head}",
        unique.len()
    );
    // Ordered per chain, no gaps after de-duplication.
    let mut per_chain: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut firsts = HashSet::new();
    for e in &events {
        if firsts.insert(e["id"].as_str().expect("id").to_owned()) {
            per_chain
                .entry(e["chain"].as_str().expect("chain").to_owned())
                .or_default()
                .push(e["seq"].as_i64().expect("seq"));
        }
    }
    for (chain, seqs) in &per_chain {
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, &expected,
            "chain {chain} arrives in order, exactly once"
        );
    }
    let denied: Vec<_> = unique.values().filter(|e| e["status"] == 401).collect();
    assert!(denied.len() >= 2, "401s are delivered too");
    let all = bodies.join("\n");
    for needle in [canary, s.root.as_str(), SECRET, "arc_bogus"] {
        assert!(!all.contains(needle), "webhook output holds {needle:?}");
    }
    rx.stop();
    // Removing the sink stops it.
    let (st, _) = s
        .call(
            Method::DELETE,
            "/api/v1/audit/sinks/siem",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(
            Method::DELETE,
            "/api/v1/audit/sinks/siem",
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("arcan_audit_events_total{stage=\"dropped\"} 0"),
        "{metrics}"
    );
}

async fn bad_sinks_refused(b: Backend) {
    let s = Server::start(b).await;
    for (what, sink, phrase) in [
        (
            "plain http",
            json!({"name": "a", "kind": "webhook", "url": "http://x/hook", "secret": SECRET}),
            "webhook url must be https://",
        ),
        (
            "short secret",
            json!({"name": "a", "kind": "webhook", "url": "https://x/hook", "secret": "short"}),
            "webhook secret must be at least 16 characters",
        ),
        (
            "unknown kind",
            json!({"name": "a", "kind": "kafka"}),
            "unknown variant `kafka`",
        ),
        (
            "unknown field",
            json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "tcp", "colour": 1}),
            "unknown field `colour`",
        ),
        (
            "bad protocol",
            json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "sctp"}),
            "unknown variant `sctp`",
        ),
        (
            "bad address",
            json!({"name": "a", "kind": "syslog", "address": "nowhere", "protocol": "udp"}),
            "address must be host:port",
        ),
        (
            "bad name",
            json!({"name": "a b", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "udp"}),
            "sink name must be 1-64",
        ),
        (
            "tls over udp",
            json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "udp", "tls": true}),
            "tls needs protocol tcp",
        ),
        (
            "missing ca file",
            json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "tcp", "tls": true, "ca_cert": "/nonexistent.pem"}),
            "ca_cert /nonexistent.pem",
        ),
        (
            "ca without tls",
            json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "tcp", "ca_cert": "/etc/hostname"}),
            "ca_cert goes with tls: true",
        ),
    ] {
        let (st, body) = s
            .call(
                Method::POST,
                "/api/v1/audit/sinks",
                Some(&s.root),
                Some(sink),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_refused(st, &body, StatusCode::BAD_REQUEST, phrase);
    }
    let (_, user) = s.user("u@example.com").await;
    let sink = json!({"name": "a", "kind": "syslog", "address": "127.0.0.1:1", "protocol": "udp"});
    assert_eq!(
        s.call(Method::POST, "/api/v1/audit/sinks", Some(&user), Some(sink))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

async fn rsyslog_receives_rfc5424(b: Backend) {
    let dir = std::env::temp_dir().join(format!("arcan-rsyslog-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let syslog = Rsyslog::start(&dir);
    let config = format!(
        "{RELAXED}audit:\n  sinks:\n    - name: syslog-tcp\n      kind: syslog\n      address: 127.0.0.1:{}\n      protocol: tcp\n    - name: syslog-udp\n      kind: syslog\n      address: 127.0.0.1:{}\n      protocol: udp\n      app_name: arcan-udp\n    - name: syslog-tls\n      kind: syslog\n      address: localhost:{}\n      protocol: tcp\n      tls: true\n      ca_cert: {}\n      app_name: arcan-tls\n",
        syslog.tcp_port,
        syslog.udp_port,
        syslog.tls_port,
        syslog.ca.display()
    );
    let s = Server::start_with(b, &config).await;
    s.realm("acme").await;
    let canary = "SYSLOG-CANARY-7d2e";
    s.put(&s.root, "acme", "prod", "app/db", canary).await;
    assert_eq!(
        s.get("/api/v1/realms/acme/secrets/app/db?env=prod", "arc_bogus")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let delivered = Server::wait_for(30, || async {
        let st = status(&s).await;
        st["stored"] == st["emitted"]
            && st["sinks"]
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|k| k["lag"] == 0))
    })
    .await;
    assert!(delivered, "{}", status(&s).await);
    let head = status(&s).await["head"].as_i64().expect("head") as usize;
    // Each sink on its own: the three deliver at their own pace (TLS last, after its
    // handshake), so a total of 3 × head lines does not yet mean each has them all.
    let per_sink = |lines: &[String], app: &str| {
        lines
            .iter()
            .filter(|l| l.split('|').nth(1) == Some(app))
            .count()
    };
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = syslog.lines();
        if ["arcan", "arcan-udp", "arcan-tls"]
            .iter()
            .all(|app| per_sink(&lines, app) >= head)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lines.len() >= 3 * head,
        "rsyslog wrote {} lines for {head} events on three sinks",
        lines.len()
    );
    let (mut tcp, mut udp, mut tls) = (0, 0, 0);
    for line in &lines {
        let parts: Vec<&str> = line.splitn(6, '|').collect();
        assert_eq!(parts.len(), 6, "{line}");
        assert_eq!(parts[0], "1", "RFC 5424 version: {line}");
        assert_eq!(parts[2], "audit", "MSGID: {line}");
        assert_eq!(parts[3], "13", "facility 13 (log audit): {line}");
        let event: Value =
            serde_json::from_str(parts[5].trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["id"].is_string() && event["hash"].is_string());
        match parts[1] {
            "arcan" => tcp += 1,
            "arcan-udp" => udp += 1,
            "arcan-tls" => tls += 1,
            other => panic!("unexpected APP-NAME {other}"),
        }
        if event["outcome"] == "success" {
            assert_eq!(parts[4], "6", "successes are informational: {line}");
        }
        if event["status"] == 401 {
            assert_eq!(parts[4], "5", "denied events are notices: {line}");
        }
    }
    assert!(
        tcp >= head && udp >= head && tls >= head,
        "tcp {tcp}, udp {udp}, tls {tls}, events {head}"
    );
    let all = lines.join("\n");
    for needle in [canary, s.root.as_str(), "arc_bogus"] {
        assert!(!all.contains(needle), "syslog output holds {needle:?}");
    }
    drop(syslog);
    let _ = std::fs::remove_dir_all(dir);
}

/// Sinks stop last at shutdown, after every event is stored, and deliver what they hold.
/// Held: a webhook sink whose receiver was down (so the sink is in its retry backoff) comes
/// back just before SIGTERM; the process exits only after every stored event reached it.
/// Violated before sinks had their own last stage: the sink was dropped at the signal and
/// the events stayed undelivered until a later start.
async fn sink_drains_at_shutdown(b: Backend) {
    let mut s = Server::start(b).await;
    let (port, cert, key, _) = webhook_sink(&s).await;
    s.realm("acme").await;
    for i in 0..20 {
        let (st, body) = s.put(&s.root, "acme", "dev", &format!("k{i}"), "v").await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let failing = Server::wait_for(10, || async {
        status(&s).await["sinks"][0]["failed"].as_u64().unwrap_or(0) > 1
    })
    .await;
    assert!(
        failing,
        "the sink must be failing first: {}",
        status(&s).await
    );
    let rx = WebhookReceiver::start(port, &cert, &key, SECRET).await;
    s.signal_term();
    assert!(s.wait_exit(), "clean exit: {}", s.log());
    let stored: HashSet<String> = s
        .query_strings("SELECT id FROM audit_events")
        .await
        .into_iter()
        .collect();
    let delivered: HashSet<String> = rx
        .seen
        .lock()
        .expect("lock")
        .events
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = stored.difference(&delivered).collect();
    assert!(
        missing.is_empty() && stored.len() > 20,
        "{} of {} stored events undelivered at exit: {missing:?}",
        missing.len(),
        stored.len()
    );
}

both_backends!(
    sink_drains_at_shutdown,
    webhook_catches_up_exactly_once,
    bad_sinks_refused,
    rsyslog_receives_rfc5424
);
