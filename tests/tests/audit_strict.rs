//! Strict audit (issue 11), each on SQLite and PostgreSQL, against real outages:
//!
//! - `crash_loses_no_acknowledged_event`: 16 writers and 4 readers, SIGKILL mid-load;
//!   after the restart every answered request has its event and the store holds exactly
//!   the secret versions that have a `secrets.write` success event (both or neither).
//! - `store_outage_refuses_with_503`: the store fails under the server (SQLite: its tmpfs
//!   is full; PostgreSQL: a private cluster stopped with `-m immediate`); every request
//!   (KV read, KV write, realm creation) is `503 audit_unavailable`, nothing written then
//!   exists, the server serves all three again after recovery and the chain verifies.
//! - `sink_outage_does_not_block`: a webhook receiver refusing (30 s) then hanging (30 s)
//!   while KV load runs: every request succeeds, p99 latency stays within a loose bound of
//!   the baseline, and the receiver gets every stored event once it returns.
//! - `keyed_chain_catches_tampering`: links are not plain SHA-256 nor HMAC under a guessed
//!   key; a body edit with recomputed links, a deleted tail, a deleted or rewound head are
//!   all caught; an untouched chain verifies after a restart.
//! - `modes_are_reported`: strict by default, `audit.mode: async` on request, in the
//!   status and in `/metrics`.
//!
//! The faults themselves are tested without a server in `arcan_tests::faults` (unit tests),
//! so a broken fault is told apart from a server bug.
//!
//! The load-heavy tests take [`HEAVY`] so they do not skew each other's timing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arcan_tests::faults::{BlackHole, FullDisk, PrivatePg};
use arcan_tests::receivers::{WebhookReceiver, free_port, test_pki};
use arcan_tests::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Held by the load-heavy tests of this file, one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET: &str = "webhook-shared-secret-0123456789";

/// A client of one token, cheap to clone into tasks.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An answered request: the status line arrived (the body may not have, after a kill).
#[derive(Debug, Clone)]
struct Answer {
    rid: String,
    write: bool,
    status: u16,
    body: Value,
    took: Duration,
}

impl Client {
    fn of(s: &Server, token: &str) -> Self {
        Self {
            http: s.http.clone(),
            base: s.base.clone(),
            token: token.to_owned(),
        }
    }

    /// Sends with `X-Request-Id: rid`; `Err` when no status arrived within `timeout`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        rid: &str,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let start = Instant::now();
        let write = method != Method::GET;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("x-request-id", rid)
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| format!("{rid}: {e}"))?;
        let status = res.status().as_u16();
        let body = match res.text().await {
            Ok(t) if t.is_empty() => Value::Null,
            Ok(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
            Err(_) => Value::Null,
        };
        Ok(Answer {
            rid: rid.to_owned(),
            write,
            status,
            body,
            took: start.elapsed(),
        })
    }

    async fn put(&self, key: &str, rid: &str, timeout: Duration) -> Result<Answer, String> {
        let path = format!("/api/v1/realms/acme/secrets/{key}?env=dev");
        let body = json!({"value": format!("value-of-{rid}")});
        self.send(Method::PUT, &path, Some(body), rid, timeout)
            .await
    }

    async fn read(&self, key: &str, rid: &str, timeout: Duration) -> Result<Answer, String> {
        let path = format!("/api/v1/realms/acme/secrets/{key}?env=dev");
        self.send(Method::GET, &path, None, rid, timeout).await
    }
}

/// Runs `writers` + `readers` tasks until `stop`: writer `w` puts `w{w}/k{n % 8}`, reader
/// `r` reads `read/{r}` (every fourth read with `denied`'s token when given). Each request
/// has the id `{tag}-w{w}-{n}` / `{tag}-r{r}-{n}`; `pause` between requests. Returns the
/// answers and the requests that got no status.
async fn load(
    root: &Client,
    denied: Option<&Client>,
    (writers, readers): (usize, usize),
    tag: &str,
    pause: Duration,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) -> (Vec<Answer>, Vec<String>) {
    let mut tasks = Vec::new();
    for i in 0..writers + readers {
        let (root, denied, stop, tag) =
            (root.clone(), denied.cloned(), stop.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut answers, mut lost) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let out = if i < writers {
                    let rid = format!("{tag}-w{i}-{n}");
                    root.put(&format!("w{i}/k{}", n % 8), &rid, timeout).await
                } else {
                    let r = i - writers;
                    let rid = format!("{tag}-r{r}-{n}");
                    let c = match &denied {
                        Some(d) if n % 4 == 3 => d,
                        _ => &root,
                    };
                    c.read(&format!("read/{r}"), &rid, timeout).await
                };
                match out {
                    Ok(a) => answers.push(a),
                    Err(e) => lost.push(e),
                }
                n += 1;
                tokio::time::sleep(pause).await;
            }
            (answers, lost)
        }));
    }
    let (mut answers, mut lost) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, l) = t.await.expect("load task");
        answers.extend(a);
        lost.extend(l);
    }
    (answers, lost)
}

/// Runs [`load`] for `secs` seconds.
async fn load_for(
    root: &Client,
    denied: Option<&Client>,
    shape: (usize, usize),
    tag: &str,
    secs: u64,
) -> (Vec<Answer>, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::SeqCst);
        })
    };
    let out = load(
        root,
        denied,
        shape,
        tag,
        Duration::from_millis(20),
        stop,
        Duration::from_secs(30),
    )
    .await;
    timer.await.expect("timer");
    out
}

/// Every stored event, by request id (read from the store, so it adds no events).
async fn events_by_request(s: &Server) -> HashMap<String, Vec<Value>> {
    let mut by = HashMap::<String, Vec<Value>>::new();
    for body in s.query_strings("SELECT body FROM audit_events").await {
        let e: Value = serde_json::from_str(&body).expect("event body is JSON");
        if let Some(rid) = e["request_id"].as_str() {
            by.entry(rid.to_owned()).or_default().push(e);
        }
    }
    by
}

/// Every answer except 503 (an event that could not be stored) has its event, with the
/// status the client saw.
fn assert_answers_have_events(answers: &[Answer], by_rid: &HashMap<String, Vec<Value>>) {
    let missing: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 503)
        .filter(|a| {
            !by_rid
                .get(&a.rid)
                .is_some_and(|es| es.iter().any(|e| e["status"] == a.status))
        })
        .map(|a| format!("{} answered {} {}", a.rid, a.status, a.body))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no event with their status, e.g. {:?}",
        missing.len(),
        answers.len(),
        &missing[..missing.len().min(10)]
    );
}

async fn verify(s: &Server, realm: &str) -> Value {
    let (st, v) = s
        .get(&format!("/api/v1/realms/{realm}/audit/verify"), &s.root)
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "GET /api/v1/realms/{realm}/audit/verify: expected 200 and the verification, got {v}"
    );
    v
}

async fn realm_id(s: &Server, slug: &str) -> String {
    s.query_strings(&format!("SELECT id FROM realms WHERE slug = '{slug}'"))
        .await
        .pop()
        .unwrap_or_else(|| panic!("no realm {slug}"))
}

/// SIGKILL mid-load loses no acknowledged event, and no change exists without its event.
async fn crash_loses_no_acknowledged_event(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let t0 = Instant::now();
    let mut s = Server::start(b).await;
    s.realm("acme").await;
    let (_, outsider) = s.user("outsider@example.com").await;
    for r in 0..4 {
        let (st, body) = s
            .put(&s.root, "acme", "dev", &format!("read/{r}"), "v")
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let (root, denied) = (Client::of(&s, &s.root), Client::of(&s, &outsider));
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let (root, denied, stop) = (root.clone(), denied.clone(), stop.clone());
        tokio::spawn(async move {
            let pause = Duration::from_millis(0);
            let timeout = Duration::from_secs(10);
            load(&root, Some(&denied), (16, 4), "crash", pause, stop, timeout).await
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.kill9();
    stop.store(true, Ordering::SeqCst);
    let (answers, lost) = running.await.expect("load");
    s.restart().await;
    let by_rid = events_by_request(&s).await;
    let ok = |w: bool| {
        answers
            .iter()
            .filter(|a| a.write == w && a.status < 300)
            .count()
    };
    let refused: Vec<_> = answers.iter().filter(|a| a.status >= 300).collect();
    println!(
        "crash ({b:?}): {} writes and {} reads acknowledged, {} refused, {} cut off by the kill",
        ok(true),
        ok(false),
        refused.len(),
        lost.len()
    );
    assert!(ok(true) >= 16 && ok(false) >= 4, "hardly any load ran");
    for a in &refused {
        let denied_read = !a.write && matches!(a.status, 403 | 404);
        assert!(denied_read, "only the outsider's reads are refused: {a:?}");
    }
    assert_answers_have_events(&answers, &by_rid);
    // An acknowledged write's event names the version it answered.
    for a in answers.iter().filter(|a| a.write && a.status == 200) {
        if let Some(v) = a.body["version"].as_i64() {
            let e = &by_rid[&a.rid];
            assert!(
                e.iter().any(|e| e["detail"]["version"] == v),
                "{a:?}: {e:?}"
            );
        }
    }
    // Both or neither: the versions stored are exactly those with a success event.
    let acme = realm_id(&s, "acme").await;
    let stored: BTreeSet<String> = s
        .query_strings(&format!(
            "SELECT key || '?env=' || env || '#' || CAST(version AS TEXT) FROM secret_versions \
             WHERE realm_id = '{acme}'"
        ))
        .await
        .into_iter()
        .collect();
    let prefix = "/api/v1/realms/acme/secrets/";
    let events: Vec<String> = by_rid
        .values()
        .flatten()
        .chain(unattributed_writes(&s).await.iter())
        .filter(|e| e["action"] == "secrets.write" && e["outcome"] == "success")
        .map(|e| {
            let target = e["target"].as_str().expect("target");
            let key = target.strip_prefix(prefix).expect("acme target");
            format!("{key}#{}", e["detail"]["version"])
        })
        .collect();
    let evented: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(events.len(), evented.len(), "one success event per version");
    assert_eq!(
        stored.len(),
        events.len(),
        "versions stored vs secrets.write success events; without event: {:?}; without version: {:?}",
        stored.difference(&evented).take(10).collect::<Vec<_>>(),
        evented.difference(&stored).take(10).collect::<Vec<_>>()
    );
    assert_eq!(stored, evented);
    let v = verify(&s, "acme").await;
    assert_eq!(v["ok"], true, "the chain after a kill -9: {v}");
    println!("crash ({b:?}) took {:?}", t0.elapsed());
}

/// `secrets.write` success events without a request id (none expected; counted so that
/// the version check covers every event, not only those found by request id).
async fn unattributed_writes(s: &Server) -> Vec<Value> {
    s.query_strings("SELECT body FROM audit_events WHERE action = 'secrets.write'")
        .await
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).expect("JSON"))
        .filter(|e| e["request_id"].as_str().is_none())
        .collect()
}

/// A store that fails under the running server.
enum Outage {
    Disk(FullDisk),
    Pg(PrivatePg),
}

impl Outage {
    fn new(b: Backend) -> Self {
        match b {
            Backend::Sqlite => Outage::Disk(FullDisk::mount(64)),
            Backend::Postgres => Outage::Pg(PrivatePg::start()),
        }
    }

    async fn server(&self, config: &str) -> Server {
        match self {
            Outage::Disk(d) => {
                let s = Server::start_in(Backend::Sqlite, config, d.data_dir()).await;
                assert!(d.wal().exists(), "SQLite did not put its WAL on the tmpfs");
                s
            }
            Outage::Pg(pg) => Server::start_on(&pg.url(), config).await,
        }
    }

    async fn begin(&self) {
        match self {
            Outage::Disk(d) => d.fill().await,
            Outage::Pg(pg) => tokio::task::block_in_place(|| pg.stop_immediate()),
        }
    }

    async fn end(&self) {
        match self {
            Outage::Disk(d) => d.free(),
            Outage::Pg(pg) => tokio::task::block_in_place(|| pg.start_again()),
        }
    }

    /// How long requests run during the outage: on PostgreSQL past the pool's 10 s acquire
    /// timeout and the 2 s token cache.
    fn secs(&self) -> u64 {
        match self {
            Outage::Disk(_) => 4,
            Outage::Pg(_) => 15,
        }
    }
}

/// Creates realms `{tag}0`, `{tag}1`, … one after another for `secs` seconds.
async fn create_realms(c: Client, tag: &'static str, secs: u64) -> Vec<Answer> {
    let (start, mut out) = (Instant::now(), Vec::new());
    while start.elapsed() < Duration::from_secs(secs) {
        let n = out.len();
        let body = json!({"slug": format!("{tag}{n}")});
        let rid = format!("{tag}-c-{n}");
        let t = Duration::from_secs(30);
        let a = c
            .send(Method::POST, "/api/v1/realms", Some(body), &rid, t)
            .await;
        out.push(a.unwrap_or_else(|e| panic!("no answer: {e}")));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

/// How a request during the outage answered, when that is wrong: every request, read or
/// write, is refused because its event cannot be stored (a failed change's or read's own
/// store error is replaced by that refusal, since its event cannot be stored either).
fn outage_violation(a: &Answer) -> Option<String> {
    let code = a.body["error"]["code"].as_str().unwrap_or_default();
    let msg = a.body["error"]["message"].as_str().unwrap_or_default();
    let fine =
        a.status == 503 && code == "audit_unavailable" && msg.starts_with("audit unavailable");
    (!fine).then(|| {
        let kind = if a.write { "PUT" } else { "GET" };
        format!("{kind} {} answered {} {}", a.rid, a.status, a.body)
    })
}

/// While the store fails: 503 `audit_unavailable` for writes and reads, nothing written;
/// afterwards 200 again within a bounded wait and an intact chain.
async fn store_outage_refuses_with_503(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let t0 = Instant::now();
    let outage = Outage::new(b);
    let s = outage.server(RELAXED).await;
    s.realm("acme").await;
    for r in 0..2 {
        let (st, body) = s
            .put(&s.root, "acme", "dev", &format!("read/{r}"), "v")
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let root = Client::of(&s, &s.root);
    let (before, lost) = load_for(&root, None, (2, 2), "before", 1).await;
    assert!(lost.is_empty(), "{lost:?}");
    outage.begin().await;
    let realms = tokio::spawn(create_realms(root.clone(), "outage", outage.secs()));
    let (mut during, lost) = load_for(&root, None, (2, 2), "fault", outage.secs()).await;
    during.extend(realms.await.expect("realm task"));
    outage.end().await;
    let t_heal = Instant::now();
    println!(
        "outage ({b:?}): {} requests during the outage, {} without an answer, slowest {:?}",
        during.len(),
        lost.len(),
        during.iter().map(|a| a.took).max()
    );
    let wrong: Vec<String> = during.iter().filter_map(outage_violation).collect();
    assert!(
        lost.is_empty() && wrong.is_empty() && during.len() >= 4,
        "during the outage every request must answer 503 audit_unavailable; {} of {} did \
         not, e.g. {:?}; no answer within 30 s: {:?}",
        wrong.len(),
        during.len(),
        &wrong[..wrong.len().min(10)],
        &lost[..lost.len().min(5)]
    );
    // Recovery: a write and a read answer 200 within 30 s; meanwhile only 503s.
    let mut after = Vec::new();
    let mut n = 0;
    let healed = loop {
        let w = root
            .put("after", &format!("heal-w-{n}"), Duration::from_secs(30))
            .await
            .expect("an answer after the outage");
        let r = root
            .read("read/0", &format!("heal-r-{n}"), Duration::from_secs(30))
            .await
            .expect("an answer after the outage");
        // A change outside the KV writer (realms go through the store's pool).
        let c = root
            .send(
                Method::POST,
                "/api/v1/realms",
                Some(json!({"slug": format!("healed{n}")})),
                &format!("heal-c-{n}"),
                Duration::from_secs(30),
            )
            .await
            .expect("an answer after the outage");
        let done = w.status == 200 && r.status == 200 && c.status == 201;
        after.extend([w, r, c]);
        if done || t_heal.elapsed() > Duration::from_secs(30) {
            break done;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(healed, "not serving 30 s after the outage ended: {after:?}");
    let bad: Vec<_> = after
        .iter()
        .filter(|a| !matches!(a.status, 200 | 201 | 503))
        .collect();
    assert!(bad.is_empty(), "while recovering: {bad:?}");
    println!(
        "outage ({b:?}): serving {:?} after the store came back",
        t_heal.elapsed()
    );
    // Nothing written during the outage exists; every answer has its event.
    let acme = realm_id(&s, "acme").await;
    let written = s
        .query_strings(&format!(
            "SELECT key FROM secret_versions WHERE realm_id = '{acme}' AND key LIKE 'w%'"
        ))
        .await;
    let outage_realms = s
        .query_strings("SELECT slug FROM realms WHERE slug LIKE 'outage%'")
        .await;
    assert!(
        outage_realms.is_empty(),
        "created during the outage: {outage_realms:?}"
    );
    let acked = before.iter().filter(|a| a.write && a.status == 200).count();
    assert_eq!(
        written.len(),
        acked,
        "versions of the load's keys vs writes acknowledged before the outage"
    );
    let refused = during.iter().filter(|a| a.status == 503).count() as u64;
    let all: Vec<Answer> = before.into_iter().chain(during).chain(after).collect();
    assert_answers_have_events(&all, &events_by_request(&s).await);
    let v = verify(&s, "acme").await;
    assert_eq!(v["ok"], true, "the chain after the outage: {v}");
    let (_, status) = s.get("/api/v1/audit/status", &s.root).await;
    assert!(
        status["refused"].as_u64().is_some_and(|n| n >= refused),
        "{refused} requests were refused: {status}"
    );
    println!("outage ({b:?}) took {:?}", t0.elapsed());
}

fn p99(answers: &[Answer]) -> Duration {
    let mut t: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    t.sort();
    assert!(!t.is_empty(), "no requests to measure");
    t[(t.len() * 99).div_ceil(100) - 1]
}

/// Every request of a load phase succeeded.
fn assert_all_ok(phase: &str, (answers, lost): &(Vec<Answer>, Vec<String>)) {
    let bad: Vec<_> = answers.iter().filter(|a| a.status >= 300).collect();
    assert!(
        bad.is_empty() && lost.is_empty() && !answers.is_empty(),
        "{phase}: {} of {} refused, e.g. {:?}; unanswered {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)],
        &lost[..lost.len().min(5)]
    );
}

/// A webhook down for 60 s (refusing, then hanging) neither fails nor slows requests,
/// and receives every stored event once it returns.
async fn sink_outage_does_not_block(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let t0 = Instant::now();
    let dir = Server::fresh_dir();
    let port = free_port();
    let (ca, cert, key) = test_pki(&dir);
    let config = format!(
        "{RELAXED}audit:\n  sinks:\n    - name: siem\n      kind: webhook\n      url: https://localhost:{port}/hook\n      secret: {SECRET}\n      ca_cert: {}\n",
        ca.display()
    );
    let first = WebhookReceiver::start(port, &cert, &key, SECRET).await;
    let s = Server::start_in(b, &config, dir).await;
    s.realm("acme").await;
    for r in 0..2 {
        let (st, body) = s
            .put(&s.root, "acme", "dev", &format!("read/{r}"), "v")
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let root = Client::of(&s, &s.root);
    let up = load_for(&root, None, (2, 2), "up", 10).await;
    first.stop();
    let refused = load_for(&root, None, (2, 2), "refused", 30).await;
    let hole = BlackHole::start(port).await;
    let hung = load_for(&root, None, (2, 2), "hung", 30).await;
    drop(hole);
    let second = WebhookReceiver::start(port, &cert, &key, SECRET).await;
    for (phase, out) in [("up", &up), ("refused", &refused), ("hung", &hung)] {
        assert_all_ok(phase, out);
    }
    let down: Vec<Answer> = refused.0.iter().chain(&hung.0).cloned().collect();
    let (p_up, p_down) = (p99(&up.0), p99(&down));
    println!(
        "sink outage ({b:?}): p99 up {p_up:?} ({} requests), down {p_down:?} ({} requests; \
         refusing {:?}, hanging {:?})",
        up.0.len(),
        down.len(),
        p99(&refused.0),
        p99(&hung.0)
    );
    assert!(
        p_down <= p_up * 5 + Duration::from_millis(100),
        "requests slowed down while the sink was down: p99 {p_down:?} vs {p_up:?}"
    );
    let all: Vec<Answer> = up.0.into_iter().chain(down).collect();
    assert_answers_have_events(&all, &events_by_request(&s).await);
    // 0 lost: every stored event reaches the receiver (ids read from the store add none).
    let stored: BTreeSet<String> = s
        .query_strings("SELECT id FROM audit_events")
        .await
        .into_iter()
        .collect();
    let delivered = || {
        let mut ids = BTreeSet::new();
        for rx in [&first, &second] {
            let seen = rx.seen.lock().expect("lock");
            ids.extend(
                seen.events
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_owned)),
            );
        }
        ids
    };
    let t_back = Instant::now();
    let caught_up = Server::wait_for(120, || async { stored.is_subset(&delivered()) }).await;
    let missing: Vec<_> = stored.difference(&delivered()).take(10).cloned().collect();
    assert!(
        caught_up,
        "{} of {} stored events never reached the receiver within 120 s, e.g. {missing:?}",
        stored.difference(&delivered()).count(),
        stored.len()
    );
    for rx in [&first, &second] {
        let rejected = rx.seen.lock().expect("lock").rejected;
        assert_eq!(
            rejected, 0,
            "deliveries with a bad signature or stale timestamp"
        );
    }
    println!(
        "sink outage ({b:?}): {} events delivered {:?} after the receiver returned; took {:?}",
        stored.len(),
        t_back.elapsed(),
        t0.elapsed()
    );
    second.stop();
}

/// One link of a chain as stored.
#[derive(Debug, Clone)]
struct Link {
    seq: i64,
    prev: String,
    hash: String,
    body: String,
}

async fn links(s: &Server, chain: &str) -> Vec<Link> {
    s.query_strings(&format!(
        "SELECT CAST(seq AS TEXT) || '|' || prev_hash || '|' || hash || '|' || body \
         FROM audit_events WHERE chain = '{chain}' ORDER BY seq"
    ))
    .await
    .iter()
    .map(|row| {
        let mut p = row.splitn(4, '|');
        let mut next = || p.next().expect("four fields").to_owned();
        Link {
            seq: next().parse().expect("seq"),
            prev: next(),
            hash: next(),
            body: next(),
        }
    })
    .collect()
}

/// Today's unkeyed link: `sha256(prev ‖ "\n" ‖ body)`.
fn sha256_link(prev: &str, body: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(format!("{prev}\n{body}"))
            .finalize(),
    )
}

/// A keyed link under a guessed key.
fn hmac_link(key: &[u8], prev: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac");
    mac.update(format!("{prev}\n{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An event in the middle of the chain (two or more after it) that answered 200.
fn editable(links: &[Link]) -> usize {
    (2..links.len() - 2)
        .find(|&i| links[i].body.contains("\"status\":200"))
        .expect("a 200 event in the middle of the chain")
}

/// Rewrites `chain` from `links[from]` on as an attacker without the chain key would:
/// that event's body edited, its link and every later one recomputed with `link`.
async fn forge(
    s: &Server,
    chain: &str,
    links: &[Link],
    from: usize,
    link: &dyn Fn(&str, &str) -> String,
) {
    let mut prev = links[from - 1].hash.clone();
    for (i, l) in links.iter().enumerate().skip(from) {
        let body = if i == from {
            assert!(l.body.contains("\"status\":200"), "{}", l.body);
            l.body.replacen("\"status\":200", "\"status\":201", 1)
        } else {
            l.body.clone()
        };
        let hash = link(&prev, &body);
        let n = s
            .exec_sql(&format!(
                "UPDATE audit_events SET body = '{}', prev_hash = '{prev}', hash = '{hash}' \
                 WHERE chain = '{chain}' AND seq = {}",
                body.replace('\'', "''"),
                l.seq
            ))
            .await;
        assert_eq!(n, 1);
        prev = hash;
    }
}

/// `None` when verification of `realm` answers ok=false with a problem mentioning
/// `phrase`; otherwise what it answered.
async fn missed(s: &Server, realm: &str, what: &str, phrase: &str) -> Option<String> {
    let (st, v) = s
        .get(&format!("/api/v1/realms/{realm}/audit/verify"), &s.root)
        .await;
    let problem = v["problem"].as_str().unwrap_or_default();
    let caught = st == StatusCode::OK && v["ok"] == false && problem.contains(phrase);
    (!caught).then(|| {
        format!(
            "{what}: GET /api/v1/realms/{realm}/audit/verify expected 200 with ok=false and a \
             problem mentioning {phrase:?}, got {st} {v}"
        )
    })
}

/// The keyed chain and its signed head catch what an unkeyed chain could not.
async fn keyed_chain_catches_tampering(b: Backend) {
    let t0 = Instant::now();
    let mut s = Server::start(b).await;
    let realms = [
        "intact",
        "edited",
        "guessed",
        "truncated",
        "headless",
        "rewound",
    ];
    for r in realms {
        s.realm(r).await;
        for i in 0..8 {
            let (st, body) = s.put(&s.root, r, "dev", &format!("k{i}"), "v").await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }
        let v = verify(&s, r).await;
        assert_eq!(v["ok"], true, "{r} before any tampering: {v}");
    }
    let master = std::fs::read_to_string(s.dir.join("master.key")).expect("master.key");
    let master_bytes = hex::decode(master.trim()).expect("hex master key");
    let guesses: [&[u8]; 3] = [&master_bytes, master.trim().as_bytes(), b""];
    let mut chains = HashMap::new();
    for r in realms {
        let id = realm_id(&s, r).await;
        let l = links(&s, &id).await;
        assert!(l.len() >= 9, "{r}: {} events", l.len());
        chains.insert(r, (id, l));
    }
    // No link is today's SHA-256 or an HMAC under the master key (or an empty key).
    for l in &chains["intact"].1 {
        assert_ne!(
            l.hash,
            sha256_link(&l.prev, &l.body),
            "#{} is unkeyed",
            l.seq
        );
        for g in guesses {
            assert_ne!(
                l.hash,
                hmac_link(g, &l.prev, &l.body),
                "#{} key guessed",
                l.seq
            );
        }
    }
    // (a) A body edited, its link and all later ones recomputed with SHA-256 / a guess.
    let (id, l) = &chains["edited"];
    let at = editable(l);
    forge(&s, id, l, at, &sha256_link).await;
    let seq = l[at].seq;
    let mut misses = Vec::new();
    misses.extend(missed(&s, "edited", "SHA-256 relinked", &format!("#{seq}")).await);
    let (id, l) = &chains["guessed"];
    let at = editable(l);
    forge(&s, id, l, at, &|p, b| hmac_link(&master_bytes, p, b)).await;
    let seq = l[at].seq;
    let what = "relinked with the master key";
    misses.extend(missed(&s, "guessed", what, &format!("#{seq}")).await);
    // (b) The last three events deleted.
    let (id, l) = &chains["truncated"];
    let last = l.last().expect("events").seq;
    let cut = format!(
        "DELETE FROM audit_events WHERE chain = '{id}' AND seq > {}",
        last - 3
    );
    assert_eq!(s.exec_sql(&cut).await, 3);
    misses.extend(missed(&s, "truncated", "tail deleted", "truncated").await);
    // (c) The head checkpoint deleted.
    let (id, _) = &chains["headless"];
    let n = s
        .exec_sql(&format!("DELETE FROM audit_heads WHERE chain = '{id}'"))
        .await;
    assert_eq!(n, 1, "one head row per chain");
    misses.extend(missed(&s, "headless", "head deleted", "head").await);
    // (d) The last event deleted and the head rewound onto the new tail (its MAC kept).
    let (id, l) = &chains["rewound"];
    let (tail, prev) = (&l[l.len() - 1], &l[l.len() - 2]);
    let del = format!(
        "DELETE FROM audit_events WHERE chain = '{id}' AND seq = {}",
        tail.seq
    );
    assert_eq!(s.exec_sql(&del).await, 1);
    let rewind = format!(
        "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE chain = '{id}'",
        prev.seq, prev.hash
    );
    assert_eq!(s.exec_sql(&rewind).await, 1);
    misses.extend(missed(&s, "rewound", "head rewound", "head").await);
    // Held: the untouched chain verifies after a restart, every event checked.
    s.restart().await;
    let v = verify(&s, "intact").await;
    assert_eq!(v["ok"], true, "intact after a restart: {v}");
    let checked = v["checked"].as_u64().expect("checked");
    assert!(checked >= chains["intact"].1.len() as u64, "{v}");
    assert!(
        misses.is_empty(),
        "tampering not reported:\n{}",
        misses.join("\n")
    );
    println!("tamper ({b:?}) took {:?}", t0.elapsed());
}

async fn metrics(s: &Server) -> String {
    let res = s.http.get(format!("{}/metrics", s.base)).send().await;
    res.expect("metrics").text().await.expect("text")
}

/// Strict is the default; `audit.mode: async` is reported as such and still serves.
async fn modes_are_reported(b: Backend) {
    let t0 = Instant::now();
    for (config, mode) in [
        (RELAXED.to_owned(), "strict"),
        (format!("{RELAXED}audit:\n  mode: async\n"), "async"),
    ] {
        let s = Server::start_with(b, &config).await;
        let (st, status) = s.get("/api/v1/audit/status", &s.root).await;
        assert_eq!(
            (st, status["mode"].clone()),
            (StatusCode::OK, json!(mode)),
            "{status}"
        );
        let m = metrics(&s).await;
        let line = format!("arcan_audit_mode{{mode=\"{mode}\"}} 1");
        assert!(
            m.lines().any(|l| l == line),
            "{line} missing from /metrics:\n{m}"
        );
        let other = if mode == "strict" { "async" } else { "strict" };
        let wrong = format!("arcan_audit_mode{{mode=\"{other}\"}} 1");
        assert!(!m.lines().any(|l| l == wrong), "{wrong} in /metrics");
        s.realm("acme").await;
        let c = Client::of(&s, &s.root);
        let t = Duration::from_secs(10);
        let w = c.put("k", &format!("{mode}-w"), t).await.expect("put");
        let r = c.read("k", &format!("{mode}-r"), t).await.expect("read");
        assert_eq!((w.status, r.status), (200, 200), "{w:?} {r:?}");
        let stored = Server::wait_for(10, || async {
            let by = events_by_request(&s).await;
            by.contains_key(&w.rid) && by.contains_key(&r.rid)
        })
        .await;
        assert!(stored, "{mode}: the events were never stored");
    }
    println!("modes ({b:?}) took {:?}", t0.elapsed());
}

/// The events of changes, read from the store: a KV write's event carries the version the
/// store assigned (a fact only its transaction knew); a check-and-set the store refused
/// (412) changed nothing and still has its failure event, exactly one; a token revocation
/// names how many tokens it reached; a user registered through closed registration names
/// the operator who registered it.
async fn change_events_carry_their_facts(b: Backend) {
    let s = Server::start_production(b, "").await;
    s.realm("facts").await;
    let events = |action: &'static str| {
        let s = &s;
        async move {
            s.query_strings(&format!(
                "SELECT body FROM audit_events WHERE action = '{action}' ORDER BY gseq"
            ))
            .await
            .iter()
            .map(|b| serde_json::from_str::<Value>(b).expect("body"))
            .collect::<Vec<_>>()
        }
    };
    for v in ["one", "two"] {
        assert_eq!(
            s.put(&s.root, "facts", "prod", "k", v).await.0,
            StatusCode::OK
        );
    }
    let (st, body) = s
        .call(
            Method::PUT,
            "/api/v1/realms/facts/secrets/k?env=prod",
            Some(&s.root),
            Some(json!({"value": "three", "cas": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED, "{body}");
    let writes = events("secrets.write").await;
    let outcomes: Vec<(Value, Value, Value)> = writes
        .iter()
        .map(|e| {
            (
                e["status"].clone(),
                e["outcome"].clone(),
                e["detail"]["version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (json!(200), json!("success"), json!(1)),
            (json!(200), json!("success"), json!(2)),
            (json!(412), json!("failure"), Value::Null),
        ],
        "{writes:?}"
    );
    assert!(
        writes.iter().all(|e| e["detail"]["value_hmac"].is_string()),
        "{writes:?}"
    );

    // A token with a child, revoked: the event counts both.
    let (st, parent) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"name": "p", "ttl": "2h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{parent}");
    let ptoken = parent["token"].as_str().expect("token");
    let (st, child) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(ptoken),
            Some(json!({"name": "c", "ttl": "1h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{child}");
    let pid = parent["id"].as_str().expect("id");
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{pid}"),
            Some(&s.root),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let revokes = events("tokens.revoke").await;
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_eq!(revokes[0]["detail"]["revoked"], 2, "{revokes:?}");
    assert_eq!(revokes[0]["detail"]["token_id"], pid, "{revokes:?}");

    // Closed registration: the operator's identity is in the user's creation event.
    let (st, u) = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            Some(&s.root),
            Some(json!({"email": "new@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{u}");
    let regs = events("auth.register").await;
    let reg = regs.last().expect("a registration event");
    assert_eq!(reg["status"], 201, "{reg}");
    assert_eq!(reg["actor"]["auth_method"], "token", "{reg}");
    assert!(reg["actor"]["user_id"].is_string(), "{reg}");
}

both_backends!(
    change_events_carry_their_facts,
    crash_loses_no_acknowledged_event,
    store_outage_refuses_with_503,
    sink_outage_does_not_block,
    keyed_chain_catches_tampering,
    modes_are_reported
);
