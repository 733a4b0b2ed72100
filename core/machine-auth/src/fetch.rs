//! The HTTPS client every upstream call goes through (discovery, JWKS, TokenReview).
//!
//! Rules: `https` only; no redirects (a 3xx is an error); no proxy (nothing taken from the
//! server's environment); one total timeout (1–30 s in method configs); an optional CA that
//! becomes the *only* trust root; a resolver that drops link-local/metadata/unspecified
//! answers (rebinding-safe: the check applies to the addresses actually connected to) plus
//! the same check for IP-literal hosts, which reqwest does not resolve; bodies read with a
//! cap (`Content-Length` first, then chunk by chunk).
//!
//! Errors ([`FetchError`]) name what failed with fixed phrases: never the URL, never the
//! response body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use url::Url;

use crate::ip::{self, Restricted};
use crate::upstream::humanize;

/// The longest timeout a client may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The default timeout of method configs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest CA bundle accepted.
pub const MAX_CA_PEM_BYTES: usize = 64 * 1024;

/// Why a fetch failed. `Display` is fit for a client message (no URL, no body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The client configuration is unusable (bad CA, bad timeout).
    #[error("client: {0}")]
    Config(String),
    /// The URL does not parse or has no host.
    #[error("not a valid URL: {0}")]
    InvalidUrl(&'static str),
    /// The URL is not `https`.
    #[error("only https URLs are allowed")]
    NotHttps,
    /// The host is, or resolves only to, a refused address.
    #[error("the host is {0}")]
    Restricted(Restricted),
    /// No answer within the timeout.
    #[error("timed out after {}", humanize(*.0))]
    Timeout(Duration),
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(&'static str),
    /// The connection could not be made (refused, unreachable, DNS).
    #[error("connection failed")]
    Connect,
    /// A redirect, which is never followed.
    #[error("redirect refused (HTTP {0})")]
    Redirect(u16),
    /// A status other than the one expected.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body is larger than the cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The connection broke while reading.
    #[error("reading the response failed")]
    Body,
}

/// A response read in full (within its cap).
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Builds a [`FetchClient`].
#[derive(Debug, Clone)]
pub struct FetchClientBuilder {
    timeout: Duration,
    ca_pem: Option<String>,
}

/// The HTTPS client of one method. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FetchClient {
    client: reqwest::Client,
    timeout: Duration,
}

impl FetchClientBuilder {
    /// The total timeout of one request, body included (more than zero, at most 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A PEM CA bundle that becomes the only trust root (the built-in roots are dropped).
    pub fn ca_pem(mut self, pem: Option<&str>) -> Self {
        self.ca_pem = pem.map(str::to_owned);
        self
    }

    /// The client.
    pub fn build(self) -> Result<FetchClient, FetchError> {
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(FetchError::Config(format!(
                "timeout must be more than 0 and at most {}",
                humanize(MAX_TIMEOUT)
            )));
        }
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("arcan/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver));
        if let Some(pem) = &self.ca_pem {
            for cert in parse_ca_pem(pem)? {
                b = b.add_root_certificate(cert);
            }
            b = b.tls_built_in_root_certs(false);
        }
        let client = b
            .build()
            .map_err(|_| FetchError::Config("the TLS client cannot be built".into()))?;
        Ok(FetchClient {
            client,
            timeout: self.timeout,
        })
    }
}

/// The certificates of a PEM bundle (at least one, nothing but certificates).
pub fn parse_ca_pem(pem: &str) -> Result<Vec<reqwest::Certificate>, FetchError> {
    if pem.len() > MAX_CA_PEM_BYTES {
        return Err(FetchError::Config(format!(
            "ca_pem is larger than {MAX_CA_PEM_BYTES} bytes"
        )));
    }
    let begins = pem.matches("-----BEGIN ").count();
    let certs = pem.matches("-----BEGIN CERTIFICATE-----").count();
    if certs == 0 || begins != certs {
        return Err(FetchError::Config(
            "ca_pem must hold PEM certificates only".into(),
        ));
    }
    let bundle = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|_| FetchError::Config("ca_pem does not parse".into()))?;
    if bundle.len() != certs {
        return Err(FetchError::Config("ca_pem does not parse".into()));
    }
    Ok(bundle)
}

impl FetchClient {
    /// A builder with the default timeout and the built-in (webpki) roots.
    pub fn builder() -> FetchClientBuilder {
        FetchClientBuilder {
            timeout: DEFAULT_TIMEOUT,
            ca_pem: None,
        }
    }

    /// The total timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET` expecting `200` with a body of at most `cap` bytes.
    pub async fn get(&self, url: &Url, cap: usize) -> Result<Vec<u8>, FetchError> {
        check_url(url)?;
        let req = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json");
        let res = self.send(req, cap).await?;
        if res.status != 200 {
            return Err(FetchError::Status(res.status));
        }
        Ok(res.body)
    }

    /// `POST` of a JSON body with a bearer token; any non-redirect status is returned with
    /// its body (at most `cap` bytes) for the caller to classify.
    pub async fn post_json(
        &self,
        url: &Url,
        bearer: &str,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<FetchResponse, FetchError> {
        check_url(url)?;
        let auth = bearer_header(bearer)?;
        let req = self
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, auth)
            .body(body);
        self.send(req, cap).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        cap: usize,
    ) -> Result<FetchResponse, FetchError> {
        let timeout = self.timeout;
        let work = async {
            let res = req.send().await.map_err(|e| classify(&e, timeout))?;
            let status = res.status().as_u16();
            if res.status().is_redirection() {
                return Err(FetchError::Redirect(status));
            }
            let body = read_capped(res, cap, timeout).await?;
            Ok(FetchResponse { status, body })
        };
        // reqwest's timeout covers the body too; this one also bounds our own reading.
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }
}

/// Scheme and IP-literal checks (names are checked by the resolver).
pub fn check_url(url: &Url) -> Result<(), FetchError> {
    if url.scheme() != "https" {
        return Err(FetchError::NotHttps);
    }
    match url.host() {
        None => Err(FetchError::InvalidUrl("no host")),
        Some(url::Host::Ipv4(a)) => {
            ip::restricted(a.into()).map_or(Ok(()), |r| Err(FetchError::Restricted(r)))
        }
        Some(url::Host::Ipv6(a)) => {
            ip::restricted(a.into()).map_or(Ok(()), |r| Err(FetchError::Restricted(r)))
        }
        Some(url::Host::Domain(_)) => Ok(()),
    }
}

async fn read_capped(
    mut res: reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    if res.content_length().is_some_and(|n| n > cap as u64) {
        return Err(FetchError::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| classify_body(&e, timeout))? {
        if body.len() + chunk.len() > cap {
            return Err(FetchError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify_body(e: &reqwest::Error, timeout: Duration) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout(timeout)
    } else {
        FetchError::Body
    }
}

/// Maps a reqwest error to a fixed phrase by walking its source chain.
fn classify(e: &reqwest::Error, timeout: Duration) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout(timeout);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<RestrictedAnswer>() {
            return FetchError::Restricted(r.0);
        }
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return FetchError::Tls(tls_reason(t));
        }
        // io::Error hides its inner error from `source()`; unwrap nested ones by hand.
        let mut inner: &(dyn std::error::Error + 'static) = err;
        while let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return FetchError::Timeout(timeout);
            }
            match io.get_ref() {
                Some(next) => inner = next,
                None => break,
            }
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return FetchError::Tls(tls_reason(t));
            }
            if let Some(r) = inner.downcast_ref::<RestrictedAnswer>() {
                return FetchError::Restricted(r.0);
            }
        }
        cur = err.source();
    }
    if e.is_connect() {
        FetchError::Connect
    } else if e.is_body() || e.is_decode() {
        FetchError::Body
    } else {
        FetchError::Connect
    }
}

/// `Authorization: Bearer …`, marked sensitive: never HPACK-indexed, never shown by `Debug`.
fn bearer_header(bearer: &str) -> Result<reqwest::header::HeaderValue, FetchError> {
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {bearer}"))
        .map_err(|_| FetchError::Config("the bearer token is not a valid header value".into()))?;
    auth.set_sensitive(true);
    Ok(auth)
}

fn tls_reason(e: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => "certificate not trusted (set ca_pem)",
            C::Expired | C::ExpiredContext { .. } => "certificate expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not yet valid",
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for the host name"
            }
            C::Revoked => "certificate revoked",
            _ => "certificate refused",
        },
        rustls::Error::NoCertificatesPresented => "no certificate presented",
        _ => "handshake failed",
    }
}

/// The resolver's refusal when every answer is a refused address.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves only to {0}")]
struct RestrictedAnswer(Restricted);

/// Drops refused addresses from DNS answers; fails when none is left.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let answers: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = keep_allowed(answers).map_err(Box::new)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The allowed addresses of a DNS answer, or why none is.
fn keep_allowed(answers: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, RestrictedAnswer> {
    let mut refused = None;
    let kept: Vec<SocketAddr> = answers
        .into_iter()
        .filter(|a| match ip::restricted(a.ip()) {
            Some(r) => {
                refused = Some(r);
                false
            }
            None => true,
        })
        .collect();
    match (kept.is_empty(), refused) {
        (true, Some(r)) => Err(RestrictedAnswer(r)),
        _ => Ok(kept),
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
