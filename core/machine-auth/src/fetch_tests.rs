use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::testserver::{Response, TestServer};

fn client(ca: &str, timeout_ms: u64) -> FetchClient {
    FetchClient::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .ca_pem(Some(ca))
        .build()
        .expect("client")
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

#[tokio::test]
async fn fetches_within_the_cap_and_refuses_larger_bodies() {
    let srv = TestServer::start(|req| async move {
        match req.path.as_str() {
            "/small" => Response::raw(200, vec![b'a'; 100]),
            "/big" => Response::raw(200, vec![b'a'; 2000]),
            _ => {
                let mut r = Response::raw(200, vec![b'a'; 2000]);
                r.no_length = true;
                r
            }
        }
    })
    .await;
    let c = client(&srv.ca_pem, 2000);
    assert_eq!(
        c.get(&url(&srv.url("/small")), 1000)
            .await
            .expect("small")
            .len(),
        100
    );
    // Content-Length announced over the cap.
    assert_eq!(
        c.get(&url(&srv.url("/big")), 1000).await,
        Err(FetchError::TooLarge(1000))
    );
    // No Content-Length: the chunk reader stops at the cap.
    assert_eq!(
        c.get(&url(&srv.url("/stream")), 1000).await,
        Err(FetchError::TooLarge(1000))
    );
    // Exactly at the cap is fine.
    assert_eq!(
        c.get(&url(&srv.url("/stream")), 2000)
            .await
            .expect("at cap")
            .len(),
        2000
    );
}

#[tokio::test]
async fn a_slow_server_times_out_within_the_bound() {
    let srv =
        TestServer::start(|_| async { Response::raw(200, "{}").delayed(Duration::from_secs(3)) })
            .await;
    let c = client(&srv.ca_pem, 300);
    let started = Instant::now();
    let err = c.get(&url(&srv.url("/")), 1000).await.expect_err("slow");
    assert_eq!(err, FetchError::Timeout(Duration::from_millis(300)));
    assert_eq!(err.to_string(), "timed out after 300ms");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_refused_not_followed() {
    let followed = Arc::new(AtomicU64::new(0));
    let f = followed.clone();
    let srv = TestServer::start(move |req| {
        let f = f.clone();
        async move {
            if req.path == "/target" {
                f.fetch_add(1, Ordering::SeqCst);
                return Response::raw(200, "{}");
            }
            let mut r = Response::raw(302, "");
            r.headers.push(("Location".into(), "/target".into()));
            r
        }
    })
    .await;
    let c = client(&srv.ca_pem, 2000);
    assert_eq!(
        c.get(&url(&srv.url("/jwks")), 1000).await,
        Err(FetchError::Redirect(302))
    );
    assert_eq!(followed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn non_200_is_a_status_error_without_the_body() {
    let srv = TestServer::start(|_| async { Response::raw(500, "secret upstream detail") }).await;
    let c = client(&srv.ca_pem, 2000);
    let err = c.get(&url(&srv.url("/")), 1000).await.expect_err("500");
    assert_eq!(err, FetchError::Status(500));
    assert!(!err.to_string().contains("secret"));
}

#[tokio::test]
async fn an_untrusted_ca_is_refused() {
    let srv = TestServer::start(|_| async { Response::raw(200, "{}") }).await;
    let (other_ca, _, _) = crate::testserver::pki();
    let c = client(&other_ca, 2000);
    assert_eq!(
        c.get(&url(&srv.url("/")), 1000).await,
        Err(FetchError::Tls("certificate not trusted (set ca_pem)"))
    );
    // The built-in roots do not know the test CA either.
    let webpki = FetchClient::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    assert!(matches!(
        webpki.get(&url(&srv.url("/")), 1000).await,
        Err(FetchError::Tls(_))
    ));
    // And the pinned CA works over the IP literal too.
    let ok = client(&srv.ca_pem, 2000);
    let ip_url = format!("https://127.0.0.1:{}/", srv.addr.port());
    assert!(ok.get(&url(&ip_url), 1000).await.is_ok());
}

#[tokio::test]
async fn http_metadata_and_unspecified_literals_are_refused_before_connecting() {
    let c = FetchClient::builder().build().expect("client");
    assert_eq!(
        c.get(&url("http://localhost/"), 10).await,
        Err(FetchError::NotHttps)
    );
    for u in [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:169.254.169.254]/",
        "https://2852039166/",
    ] {
        assert_eq!(
            c.get(&url(u), 10).await,
            Err(FetchError::Restricted(Restricted::Metadata)),
            "{u}"
        );
    }
    assert_eq!(
        c.get(&url("https://0.0.0.0/"), 10).await,
        Err(FetchError::Restricted(Restricted::Unspecified))
    );
}

#[test]
fn the_resolver_drops_refused_answers() {
    let a = |s: &str| -> SocketAddr { s.parse().expect("addr") };
    assert_eq!(
        keep_allowed(vec![a("169.254.169.254:0"), a("10.0.0.1:0")]).expect("one left"),
        vec![a("10.0.0.1:0")]
    );
    assert!(matches!(
        keep_allowed(vec![a("169.254.169.254:0"), a("[fe80::1]:0")]),
        Err(RestrictedAnswer(Restricted::Metadata))
    ));
    assert_eq!(
        keep_allowed(vec![a("127.0.0.1:0")]).expect("loopback"),
        vec![a("127.0.0.1:0")]
    );
}

#[tokio::test]
async fn names_go_through_the_guarded_resolver() {
    // `localhost` resolves (to loopback) through GuardedResolver and is allowed.
    let addrs: Vec<SocketAddr> = GuardedResolver
        .resolve("localhost".parse::<Name>().expect("name"))
        .await
        .expect("resolve")
        .collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
}

#[test]
fn client_configs_are_bounded() {
    assert!(matches!(
        FetchClient::builder()
            .timeout(Duration::from_secs(31))
            .build(),
        Err(FetchError::Config(_))
    ));
    assert!(matches!(
        FetchClient::builder().timeout(Duration::ZERO).build(),
        Err(FetchError::Config(_))
    ));
    assert!(matches!(
        FetchClient::builder().ca_pem(Some("not a pem")).build(),
        Err(FetchError::Config(_))
    ));
    let (ca, _, _) = crate::testserver::pki();
    let with_key = format!("{ca}-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n");
    assert!(matches!(
        FetchClient::builder().ca_pem(Some(&with_key)).build(),
        Err(FetchError::Config(_))
    ));
    assert!(FetchClient::builder().ca_pem(Some(&ca)).build().is_ok());
}

#[test]
fn the_bearer_header_is_sensitive() {
    let h = bearer_header("s3cr3t-token").expect("header");
    assert!(h.is_sensitive());
    assert_eq!(h.to_str().expect("ascii"), "Bearer s3cr3t-token");
    assert!(!format!("{h:?}").contains("s3cr3t"));
    assert!(bearer_header("bad\ntoken").is_err());
}
