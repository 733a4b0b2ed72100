//! The registry client: index, resolve, bounded and retried download, cache, verify,
//! install, publish, search, yank.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use semver::{Version, VersionReq};

use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::manifest::valid_name;
use crate::package::{self, Verified, sha256_hex};
use crate::protocol::{
    ACTIVATION_HEADER, DEFAULT_REGISTRY, ErrorBody, Index, SearchResults, VersionEntry,
};

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, e.g. `https://registry.getarcan.dev`.
    pub base: String,
    /// Extra CA certificate (PEM) to trust, e.g. a self-hosted registry's.
    pub ca_pem: Option<Vec<u8>>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (a download included).
    pub timeout: Duration,
    /// Attempts after the first on connect errors, timeouts and 5xx.
    pub retries: u32,
    /// First backoff; doubled each retry.
    pub backoff: Duration,
    /// Download cache (files named by sha256), re-verified on use.
    pub cache_dir: Option<PathBuf>,
    /// Largest package accepted.
    pub max_package_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            base: DEFAULT_REGISTRY.into(),
            ca_pem: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            retries: 3,
            backoff: Duration::from_millis(250),
            cache_dir: None,
            max_package_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    /// Plugin name.
    pub name: &'a str,
    /// Version requirement (`*` for the newest).
    pub req: &'a VersionReq,
    /// Trusted publisher keys.
    pub trusted: &'a [PublicKey],
    /// The plugins directory; the plugin goes to `<plugins_dir>/<name>`.
    pub plugins_dir: &'a Path,
    /// The version installed now, if any.
    pub installed: Option<Version>,
    /// Allow installing an older version than `installed`.
    pub allow_downgrade: bool,
    /// Activation token for enterprise packages.
    pub activation: Option<&'a str>,
}

/// A registry client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
}

impl Client {
    /// Builds a client; HTTPS only.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        if !opts.base.starts_with("https://") {
            return Err(Error::Transport(format!(
                "registry URL `{}` must start with https://",
                opts.base
            )));
        }
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .user_agent(concat!("arcan-registry-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &opts.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Transport(format!("registry CA certificate: {e}")))?;
            b = b.add_root_certificate(ca);
        }
        let http = b.build().map_err(|e| Error::Transport(e.to_string()))?;
        Ok(Self { http, opts })
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.opts.base.trim_end_matches('/')
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }

    /// Sends with retries on connect errors, timeouts and 5xx; 4xx become [`Error::Http`].
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Response> {
        let mut attempt = 0;
        loop {
            match build().send().await {
                Ok(r) if r.status().is_server_error() => {
                    let e = http_error(r).await;
                    if attempt >= self.opts.retries {
                        return Err(e);
                    }
                }
                Ok(r) if !r.status().is_success() => return Err(http_error(r).await),
                Ok(r) => return Ok(r),
                Err(e) if (e.is_connect() || e.is_timeout()) && attempt < self.opts.retries => {}
                Err(e) => return Err(Error::Transport(transport_message(&e))),
            }
            tokio::time::sleep(self.opts.backoff * 2u32.saturating_pow(attempt)).await;
            attempt += 1;
        }
    }

    /// `GET /v1/packages/{name}`.
    pub async fn index(&self, name: &str) -> Result<Index> {
        if !valid_name(name) {
            return Err(Error::Resolve(format!(
                "`{name}` is not a valid plugin name"
            )));
        }
        let r = self
            .send(|| self.http.get(self.url(&format!("v1/packages/{name}"))))
            .await
            .map_err(|e| match e {
                Error::Http { status: 404, .. } => {
                    Error::Resolve(format!("no plugin named `{name}` in {}", self.base()))
                }
                e => e,
            })?;
        let index: Index = read_json(r).await?;
        if index.name != name {
            return Err(Error::Mismatch(format!(
                "asked for `{name}`, the registry answered for `{}`",
                index.name
            )));
        }
        Ok(index)
    }

    /// The highest non-yanked version of `name` matching `req`.
    pub async fn resolve(&self, name: &str, req: &VersionReq) -> Result<VersionEntry> {
        resolve_in(&self.index(name).await?, req)
    }

    /// Downloads the blob of `entry`: refuses more than `max_bytes` (announced or received),
    /// retries transient failures, and checks size and sha256 against the index. Uses and
    /// fills the cache. `progress(done, total)` is called as bytes arrive.
    pub async fn download(
        &self,
        entry: &VersionEntry,
        activation: Option<&str>,
        max_bytes: u64,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Vec<u8>> {
        if entry.size > max_bytes {
            return Err(Error::Limit(format!(
                "package is {} bytes; the limit is {max_bytes}",
                entry.size
            )));
        }
        if let Some(data) = self.cached(entry) {
            progress(entry.size, entry.size);
            return Ok(data);
        }
        let url = if entry.url.starts_with("https://") {
            entry.url.clone()
        } else if entry.url.contains("://") {
            return Err(Error::Mismatch(format!(
                "download URL `{}` is not HTTPS",
                entry.url
            )));
        } else {
            self.url(&entry.url)
        };
        let mut attempt = 0;
        let data = loop {
            let req = || {
                let mut b = self.http.request(Method::GET, &url);
                if let Some(token) = activation {
                    b = b.header(ACTIVATION_HEADER, token);
                }
                b
            };
            let result = match self.send(req).await {
                Ok(r) => read_body(r, entry.size, max_bytes, &mut progress).await,
                Err(Error::Http {
                    status: 403,
                    message,
                }) if entry.enterprise => {
                    return Err(Error::Http {
                        status: 403,
                        message: format!(
                            "{message} (enterprise package: pass an activation token)"
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
            match result {
                Err(Error::Transport(_)) if attempt < self.opts.retries => {
                    tokio::time::sleep(self.opts.backoff * 2u32.saturating_pow(attempt)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        };
        if data.len() as u64 != entry.size {
            return Err(Error::Mismatch(format!(
                "truncated download: received {} of {} bytes",
                data.len(),
                entry.size
            )));
        }
        let actual = sha256_hex(&data);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Error::Mismatch(format!(
                "digest mismatch: the index says sha256 {}, the download has {actual}",
                entry.sha256
            )));
        }
        self.store_cache(entry, &data);
        Ok(data)
    }

    fn cached(&self, entry: &VersionEntry) -> Option<Vec<u8>> {
        let path = self
            .opts
            .cache_dir
            .as_ref()?
            .join(cache_name(&entry.sha256)?);
        let data = std::fs::read(&path).ok()?;
        if data.len() as u64 == entry.size && sha256_hex(&data).eq_ignore_ascii_case(&entry.sha256)
        {
            Some(data)
        } else {
            let _ = std::fs::remove_file(&path);
            None
        }
    }

    fn store_cache(&self, entry: &VersionEntry, data: &[u8]) {
        let (Some(dir), Some(name)) = (self.opts.cache_dir.as_ref(), cache_name(&entry.sha256))
        else {
            return;
        };
        let tmp = dir.join(format!(".{name}.{:016x}", rand::random::<u64>()));
        let ok = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
        if ok.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Resolve → refuse downgrade → download → verify digest and signature → check the
    /// manifest's name and version against the index → unpack into `<plugins_dir>/<name>`
    /// (replacing an older version). Nothing is written unless every check passed.
    pub async fn install(
        &self,
        req: &InstallRequest<'_>,
        progress: impl FnMut(u64, u64),
    ) -> Result<Verified> {
        let entry = self.resolve(req.name, req.req).await?;
        let candidate = Version::parse(&entry.version).map_err(|_| {
            Error::Mismatch(format!("index version `{}` is not semver", entry.version))
        })?;
        if let Some(installed) = &req.installed
            && *installed > candidate
            && !req.allow_downgrade
        {
            return Err(Error::Downgrade {
                name: req.name.into(),
                installed: installed.to_string(),
                candidate: candidate.to_string(),
            });
        }
        let pkg = self
            .download(
                &entry,
                req.activation,
                self.opts.max_package_bytes,
                progress,
            )
            .await?;
        let verified = package::verify(&pkg, req.trusted)?;
        let m = &verified.manifest;
        if m.name != req.name || m.semver()? != candidate {
            return Err(Error::Mismatch(format!(
                "the index announced {}@{} but the signed manifest says {}@{}",
                req.name, entry.version, m.name, m.version
            )));
        }
        package::install(&verified, &req.plugins_dir.join(req.name))?;
        Ok(verified)
    }

    /// `PUT /v1/packages/{name}/{version}` with the publisher token. The name and version
    /// come from the package's manifest (which must be validly signed).
    pub async fn publish(&self, pkg: &[u8], token: &str, enterprise: bool) -> Result<VersionEntry> {
        let v = package::verify_self_signed(pkg, &package::Limits::default())?;
        let url = self.url(&format!(
            "v1/packages/{}/{}{}",
            v.manifest.name,
            v.manifest.version,
            if enterprise { "?enterprise=true" } else { "" }
        ));
        let body = bytes::Bytes::copy_from_slice(pkg);
        let r = self
            .send(|| {
                self.http
                    .put(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        read_json(r).await
    }

    /// `GET /v1/search?q=`.
    pub async fn search(&self, q: &str) -> Result<SearchResults> {
        let url = self.url("v1/search");
        let r = self.send(|| self.http.get(&url).query(&[("q", q)])).await?;
        read_json(r).await
    }

    /// `POST /v1/packages/{name}/{version}/yank` with the publisher token.
    pub async fn yank(&self, name: &str, version: &str, token: &str) -> Result<()> {
        let url = self.url(&format!("v1/packages/{name}/{version}/yank"));
        self.send(|| self.http.post(&url).bearer_auth(token))
            .await?;
        Ok(())
    }
}

/// The highest non-yanked version in `index` matching `req`.
pub fn resolve_in(index: &Index, req: &VersionReq) -> Result<VersionEntry> {
    let matching = index
        .versions
        .iter()
        .filter_map(|e| Version::parse(&e.version).ok().map(|v| (v, e)))
        .filter(|(v, _)| req.matches(v));
    let mut best: Option<(Version, &VersionEntry)> = None;
    let mut yanked = Vec::new();
    for (v, e) in matching {
        if e.yanked {
            yanked.push(v.to_string());
        } else if best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, e));
        }
    }
    match best {
        Some((_, e)) => Ok(e.clone()),
        None if !yanked.is_empty() => Err(Error::Resolve(format!(
            "{}@{req}: only yanked versions match ({}); yanked versions are not installed",
            index.name,
            yanked.join(", ")
        ))),
        None => Err(Error::Resolve(format!(
            "{}@{req}: no published version matches (available: {})",
            index.name,
            index
                .versions
                .iter()
                .map(|e| e.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn cache_name(sha: &str) -> Option<String> {
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{}.arcanpkg", sha.to_ascii_lowercase()))
}

async fn read_body(
    mut r: Response,
    announced: u64,
    max_bytes: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Vec<u8>> {
    let limit = announced.min(max_bytes);
    if let Some(len) = r.content_length()
        && len > limit
    {
        return Err(Error::Limit(format!(
            "the registry sends {len} bytes; expected at most {limit}"
        )));
    }
    let mut data = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(8 << 20));
    progress(0, announced);
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| Error::Transport(transport_message(&e)))?
    {
        if (data.len() + chunk.len()) as u64 > limit {
            return Err(Error::Limit(format!(
                "download exceeds the announced {announced} bytes (limit {max_bytes})"
            )));
        }
        data.extend_from_slice(&chunk);
        progress(data.len() as u64, announced);
    }
    Ok(data)
}

async fn http_error(r: Response) -> Error {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| {
            let t: String = text.chars().take(200).collect();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("").to_owned()
            } else {
                t
            }
        });
    Error::Http {
        status: status.as_u16(),
        message,
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

async fn read_json<T: serde::de::DeserializeOwned>(r: Response) -> Result<T> {
    let status: StatusCode = r.status();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| Error::Transport(transport_message(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Http {
        status: status.as_u16(),
        message: format!("unexpected response body: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, yanked: bool) -> VersionEntry {
        VersionEntry {
            version: v.into(),
            sha256: "0".repeat(64),
            size: 1,
            signature: serde_json::Value::Null,
            url: "v1/blobs/x".into(),
            yanked,
            enterprise: false,
            publisher: "p".into(),
        }
    }

    #[test]
    fn resolves_highest_non_yanked() {
        let idx = Index {
            name: "pg".into(),
            versions: vec![
                entry("1.0.0", false),
                entry("1.2.0", true),
                entry("1.1.0", false),
            ],
        };
        let any = VersionReq::STAR;
        assert_eq!(resolve_in(&idx, &any).expect("any").version, "1.1.0");
        let only_yanked = VersionReq::parse("=1.2.0").expect("req");
        let e = resolve_in(&idx, &only_yanked).expect_err("yanked");
        assert!(e.to_string().contains("only yanked"), "{e}");
        let none = VersionReq::parse(">=2").expect("req");
        assert!(
            resolve_in(&idx, &none)
                .expect_err("none")
                .to_string()
                .contains("no published")
        );
    }
}
