//! The listener's limits, each held and violated: a client that never finishes its request
//! head is disconnected after `server.header_read_timeout`, and beyond
//! `server.max_connections` a connection is not served until another closes.

use std::sync::Arc;
use std::time::Duration;

use arcan_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A raw TLS client trusting the server's CA.
fn connector(s: &Server) -> TlsConnector {
    let ca = std::fs::read(s.dir.join("tls/ca.pem")).expect("ca.pem");
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// TCP connect and TLS handshake.
async fn tls(s: &Server) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let addr = s.base.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    connector(s).connect(name, tcp).await
}

/// Sends a complete `GET /health` and returns the status line of the answer.
async fn health(mut c: TlsStream<tokio::net::TcpStream>) -> String {
    c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Half a request head, then silence: the server closes the connection after the header
/// timeout (1 s here). A complete request on another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_disconnected_after_the_header_timeout() {
    let cfg = format!("{RELAXED}server:\n  header_read_timeout: 1s\n");
    let s = Server::start_with(Backend::Sqlite, &cfg).await;
    let c = tls(&s).await.expect("tls");
    assert_eq!(
        health(c).await,
        "HTTP/1.1 200 OK",
        "a prompt client is served"
    );
    let mut slow = tls(&s).await.expect("tls");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: local")
        .await
        .expect("write");
    slow.flush().await.expect("flush");
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf)).await;
    match read {
        Err(_) => panic!("the slow client was still connected after 10 s"),
        // Closed (EOF or a reset), possibly after a 408 answer: never a served request.
        Ok(Ok(n)) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(!text.contains("200 OK"), "{text}");
            if n > 0 {
                let more = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
                assert!(matches!(more, Ok(Ok(0)) | Ok(Err(_))), "{more:?}");
            }
        }
        Ok(Err(_)) => {}
    }
    // The server keeps serving.
    let c = tls(&s).await.expect("tls");
    assert_eq!(health(c).await, "HTTP/1.1 200 OK");
}

/// With `max_connections: 4`, four held connections keep a fifth from being served (its
/// TLS handshake is not even answered); once they close, the fifth is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait() {
    let cfg = format!("{RELAXED}server:\n  max_connections: 4\n  header_read_timeout: 30s\n");
    let s = Server::start_with(Backend::Sqlite, &cfg).await;
    // Under the limit: served.
    let c = tls(&s).await.expect("tls");
    assert_eq!(health(c).await, "HTTP/1.1 200 OK");
    // Let the server notice the closed connection before counting again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls(&s).await.expect("tls"));
    }
    let fifth = {
        let s_base = s.base.clone();
        let conn = connector(&s);
        tokio::spawn(async move {
            let addr = s_base.trim_start_matches("https://").to_owned();
            let tcp = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
            let name = ServerName::try_from("localhost").expect("name");
            let c = conn.connect(name, tcp).await.expect("tls");
            health(c).await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !fifth.is_finished(),
        "a fifth connection was served while four were held"
    );
    drop(held);
    let status = tokio::time::timeout(Duration::from_secs(10), fifth)
        .await
        .expect("the fifth connection was served once the others closed")
        .expect("task");
    assert_eq!(status, "HTTP/1.1 200 OK");
}
