//! Real receivers for audit delivery: an HTTPS webhook endpoint that checks signatures, and
//! an rsyslog daemon on loopback ports.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use salvo::conn::rustls::{Keycert, RustlsConfig};
use salvo::prelude::*;
use serde_json::Value;

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Self-signed CA + `localhost` certificate for a test receiver; returns (ca path, cert pem, key pem).
pub fn test_pki(dir: &Path) -> (PathBuf, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL-based clients (Python's ssl) take a leaf whose issuer equals
    // its subject for a self-signed certificate.
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Arcan test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).expect("leaf");
    let ca_path = dir.join("receiver-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write ca");
    (ca_path, leaf_cert.pem(), leaf_key.serialize_pem())
}

/// Serves `router` over HTTPS on `127.0.0.1:port` with the given certificate, in a task of
/// its own; `what` names the server in the panic when the port cannot be bound.
pub async fn serve_https(
    port: u16,
    cert: String,
    key: String,
    router: Router,
    what: &str,
) -> salvo::server::ServerHandle {
    let tls = RustlsConfig::new(Keycert::new().cert(cert.into_bytes()).key(key.into_bytes()));
    let acceptor = TcpListener::new(format!("127.0.0.1:{port}"))
        .rustls(tls)
        .try_bind()
        .await
        .unwrap_or_else(|e| panic!("bind {what} on 127.0.0.1:{port}: {e}"));
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(server.serve(router));
    handle
}

/// What the webhook receiver saw.
#[derive(Debug, Default)]
pub struct Received {
    /// Every event of every accepted delivery, in arrival order (duplicates kept).
    pub events: Vec<Value>,
    /// Raw accepted bodies.
    pub bodies: Vec<String>,
    /// Deliveries refused for a bad or stale signature.
    pub rejected: u64,
}

#[derive(Clone)]
struct Hook {
    secret: String,
    seen: Arc<Mutex<Received>>,
}

#[async_trait]
impl Handler for Hook {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let ts = req
            .header::<String>("x-arcan-timestamp")
            .unwrap_or_default();
        let sig = req
            .header::<String>("x-arcan-signature")
            .unwrap_or_default();
        // A catching-up sink posts up to 1000 events at once: far above salvo's default cap.
        let body = req
            .payload_with_max_size(64 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.secret.as_bytes()).expect("hmac");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&body);
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let fresh = ts.parse::<u64>().is_ok_and(|t| now.abs_diff(t) <= 300);
        let mut seen = self.seen.lock().expect("lock");
        if sig != expected || !fresh {
            seen.rejected += 1;
            res.status_code(StatusCode::UNAUTHORIZED);
            return;
        }
        let json: Value = serde_json::from_slice(&body).expect("json body");
        seen.events
            .extend(json["events"].as_array().expect("events").iter().cloned());
        seen.bodies
            .push(String::from_utf8_lossy(&body).into_owned());
        res.status_code(StatusCode::NO_CONTENT);
    }
}

/// An HTTPS webhook receiver.
pub struct WebhookReceiver {
    /// What arrived.
    pub seen: Arc<Mutex<Received>>,
    handle: salvo::server::ServerHandle,
}

impl WebhookReceiver {
    /// Serves `POST /hook` on `127.0.0.1:port` with the given certificate.
    pub async fn start(port: u16, cert: &str, key: &str, secret: &str) -> Self {
        let seen = Arc::new(Mutex::new(Received::default()));
        let hook = Hook {
            secret: secret.to_owned(),
            seen: seen.clone(),
        };
        let tls = RustlsConfig::new(
            Keycert::new()
                .cert(cert.as_bytes().to_vec())
                .key(key.as_bytes().to_vec()),
        );
        // The port was chosen while the receiver was down; if something else holds it for a
        // moment, retry on the same port (the sink's URL names it) instead of failing at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let acceptor = loop {
            match TcpListener::new(format!("127.0.0.1:{port}"))
                .rustls(tls.clone())
                .try_bind()
                .await
            {
                Ok(a) => break a,
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("webhook receiver cannot bind 127.0.0.1:{port} within 10 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let server = Server::new(acceptor);
        let handle = server.handle();
        tokio::spawn(server.serve(Router::with_path("hook").post(hook)));
        Self { seen, handle }
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.handle.stop_forceful();
    }
}

/// A real rsyslog daemon listening on loopback TCP, TLS (RFC 5425, OpenSSL driver) and UDP
/// ports, writing what it parses as `protocol-version|app-name|msgid|facility|severity|msg`
/// lines.
pub struct Rsyslog {
    child: Child,
    /// TCP port.
    pub tcp_port: u16,
    /// TLS port (certificate for `localhost`, signed by [`Rsyslog::ca`]).
    pub tls_port: u16,
    /// UDP port.
    pub udp_port: u16,
    /// CA of the TLS listener.
    pub ca: PathBuf,
    /// Output file.
    pub out: PathBuf,
}

impl Rsyslog {
    /// Starts `rsyslogd -n` with its own config in `dir`.
    pub fn start(dir: &Path) -> Self {
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("rsyslogd not found: install it with `apt-get install rsyslog` (./scripts/test does)"));
        let ossl = [
            "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so",
            "/usr/lib/rsyslog/lmnsd_ossl.so",
        ];
        assert!(
            ossl.iter().any(|p| Path::new(p).exists()),
            "rsyslog's OpenSSL driver is missing: `apt-get install rsyslog-openssl` (./scripts/test does)"
        );
        let (tcp_port, udp_port, tls_port) = (free_port(), free_port(), free_port());
        let (ca, cert, key) = test_pki(dir);
        let (cert_path, key_path) = (dir.join("syslog-cert.pem"), dir.join("syslog-key.pem"));
        std::fs::write(&cert_path, cert).expect("cert");
        std::fs::write(&key_path, key).expect("key");
        let out = dir.join("syslog-out.log");
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).expect("work dir");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp")
module(load="imudp")
template(name="fields" type="string" string="%protocol-version%|%app-name%|%msgid%|%syslogfacility%|%syslogseverity%|%msg%\n")
ruleset(name="arcan") {{ action(type="omfile" file="{out}" template="fields") }}
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="arcan")
input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="arcan" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="arcan")
"#,
                work = work.display(),
                out = out.display(),
                ca = ca.display(),
                cert = cert_path.display(),
                key = key_path.display(),
            ),
        )
        .expect("conf");
        let mut child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rsyslogd");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_ok() {
                return Self {
                    child,
                    tcp_port,
                    tls_port,
                    udp_port,
                    ca,
                    out,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("rsyslogd did not open 127.0.0.1:{tcp_port}");
    }

    /// Lines written so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
