//! The registry's files: blobs by sha256, one index per package, tokens.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use arcan_registry_client::package::{Limits, sha256_hex, verify_self_signed};
use arcan_registry_client::protocol::{SearchHit, VersionEntry};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A refusal with its HTTP status and code.
#[derive(Debug)]
pub struct Refusal(pub u16, pub &'static str, pub String);

/// The stored index: the protocol's fields plus what search shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIndex {
    pub name: String,
    pub versions: Vec<StoredVersion>,
}

/// One stored version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredVersion {
    #[serde(flatten)]
    pub entry: VersionEntry,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub published_by: String,
}

/// The registry directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    publishers: Vec<(String, String)>,
    write: Mutex<()>,
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_tokens(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tokens: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((t, n)) => (t.to_owned(), n.trim().to_owned()),
            None => (l.to_owned(), "publisher".to_owned()),
        })
        .collect();
    if tokens.is_empty() {
        bail!("{} holds no publisher tokens", path.display());
    }
    Ok(tokens)
}

impl Store {
    /// Opens (creating) the directory and loads or generates the publisher tokens.
    pub fn open(dir: &Path, token_file: Option<&Path>) -> anyhow::Result<Self> {
        for sub in ["blobs", "index"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let default = dir.join("publisher-tokens");
        let path = token_file.unwrap_or(&default);
        if token_file.is_none() && !default.exists() {
            let token = format!("arcpub_{}", hex::encode(rand::random::<[u8; 24]>()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&default)
                .with_context(|| format!("creating {}", default.display()))?;
            f.write_all(format!("{token} default\n").as_bytes())?;
            eprintln!(
                "generated publisher token (saved to {}): {token}",
                default.display()
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            publishers: read_tokens(path)?,
            write: Mutex::new(()),
        })
    }

    /// The publisher a token belongs to.
    pub fn publisher(&self, token: &str) -> Option<&str> {
        self.publishers
            .iter()
            .find(|(t, _)| bool::from(t.as_bytes().ct_eq(token.as_bytes())))
            .map(|(_, n)| n.as_str())
    }

    /// Whether an activation token is listed in `activation-tokens` (re-read each time).
    pub fn activation_ok(&self, token: &str) -> bool {
        let text = std::fs::read_to_string(self.dir.join("activation-tokens")).unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .any(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())))
    }

    fn index_path(&self, name: &str) -> PathBuf {
        self.dir.join("index").join(format!("{name}.json"))
    }

    fn blob_path(&self, sha: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{sha}.arcanpkg"))
    }

    /// The index of `name` (the caller validated the name).
    pub fn index(&self, name: &str) -> Result<Option<StoredIndex>, Refusal> {
        match std::fs::read(self.index_path(name)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Refusal(500, "internal", format!("index of {name} is corrupt: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Refusal(500, "internal", format!("reading index: {e}"))),
        }
    }

    fn save(&self, idx: &StoredIndex) -> Result<(), Refusal> {
        let bytes =
            serde_json::to_vec_pretty(idx).map_err(|e| Refusal(500, "internal", e.to_string()))?;
        write_atomic(&self.index_path(&idx.name), &bytes)
            .map_err(|e| Refusal(500, "internal", format!("writing index: {e}")))
    }

    /// Stores a new version after checking the package.
    pub fn publish(
        &self,
        name: &str,
        version: &str,
        pkg: &[u8],
        enterprise: bool,
        publisher: &str,
    ) -> Result<StoredVersion, Refusal> {
        let bad = |m: String| Refusal(400, "invalid_package", m);
        let v = verify_self_signed(pkg, &Limits::default()).map_err(|e| bad(e.to_string()))?;
        let m = &v.manifest;
        if m.name != name || m.version != version {
            return Err(bad(format!(
                "the package is {}@{} but was uploaded as {name}@{version}",
                m.name, m.version
            )));
        }
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.index(name)?.unwrap_or(StoredIndex {
            name: name.to_owned(),
            versions: Vec::new(),
        });
        if idx.versions.iter().any(|x| x.entry.version == version) {
            return Err(Refusal(
                409,
                "conflict",
                format!("{name}@{version} is already published; publish a new version"),
            ));
        }
        let sha = sha256_hex(pkg);
        write_atomic(&self.blob_path(&sha), pkg)
            .map_err(|e| Refusal(500, "internal", format!("writing blob: {e}")))?;
        let signature = v
            .files
            .get("signature")
            .and_then(|s| serde_json::from_slice(s).ok())
            .unwrap_or_default();
        let stored = StoredVersion {
            entry: VersionEntry {
                version: version.to_owned(),
                sha256: sha.clone(),
                size: pkg.len() as u64,
                signature,
                url: format!("v1/blobs/{sha}"),
                yanked: false,
                enterprise,
                publisher: m.publisher.clone(),
            },
            description: m.description.clone(),
            capabilities: m.capabilities.clone(),
            published_by: publisher.to_owned(),
        };
        idx.versions.push(stored.clone());
        self.save(&idx)?;
        Ok(stored)
    }

    /// Marks a version yanked.
    pub fn yank(&self, name: &str, version: &str) -> Result<(), Refusal> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let missing = || {
            Refusal(
                404,
                "not_found",
                format!("{name}@{version} is not published"),
            )
        };
        let mut idx = self.index(name)?.ok_or_else(missing)?;
        let v = idx
            .versions
            .iter_mut()
            .find(|x| x.entry.version == version)
            .ok_or_else(missing)?;
        v.entry.yanked = true;
        self.save(&idx)
    }

    fn all(&self) -> Vec<StoredIndex> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("index")) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect()
    }

    /// A blob (the caller validated the digest) and whether an enterprise version uses it.
    pub fn blob(&self, sha: &str) -> Option<(Vec<u8>, bool)> {
        let data = std::fs::read(self.blob_path(sha)).ok()?;
        let suffix = format!("/{sha}");
        let enterprise = self.all().iter().any(|i| {
            i.versions.iter().any(|v| {
                v.entry.enterprise && (v.entry.sha256 == sha || v.entry.url.ends_with(&suffix))
            })
        });
        Some((data, enterprise))
    }

    /// Packages whose name or description contains `q` (case-insensitive).
    pub fn search(&self, q: &str) -> Vec<SearchHit> {
        let q = q.to_lowercase();
        let mut hits: Vec<SearchHit> = self
            .all()
            .into_iter()
            .filter_map(|i| {
                let best = i
                    .versions
                    .iter()
                    .filter(|v| !v.entry.yanked)
                    .filter_map(|v| Some((semver::Version::parse(&v.entry.version).ok()?, v)))
                    .max_by(|a, b| a.0.cmp(&b.0))?
                    .1;
                let matches = i.name.contains(&q) || best.description.to_lowercase().contains(&q);
                matches.then(|| SearchHit {
                    name: i.name.clone(),
                    version: best.entry.version.clone(),
                    description: best.description.clone(),
                    publisher: best.entry.publisher.clone(),
                    capabilities: best.capabilities.clone(),
                    enterprise: best.entry.enterprise,
                })
            })
            .collect();
        hits.sort_by(|a, b| a.name.cmp(&b.name));
        hits
    }
}
