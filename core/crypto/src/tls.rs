//! TLS material: a self-signed CA and a server certificate for first start, generated
//! with `rcgen`, and loading of operator-supplied PEM files.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

use super::CryptoError;

/// Paths of generated TLS material inside the data directory.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// CA certificate (give it to clients).
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
}

impl TlsPaths {
    /// The layout under `<data-dir>/tls`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }
}

fn write_private(path: &Path, data: &str) -> Result<(), CryptoError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Generates a CA and a server certificate for localhost, 127.0.0.1, ::1 and `extra_names`
/// unless they exist. Returns true when it generated them.
pub fn ensure_self_signed(paths: &TlsPaths, extra_names: &[String]) -> Result<bool, CryptoError> {
    if paths.cert.exists() && paths.key.exists() && paths.ca_cert.exists() {
        return Ok(false);
    }
    let err = |e: rcgen::Error| CryptoError::Tls(e.to_string());
    if let Some(dir) = paths.cert.parent() {
        fs::create_dir_all(dir)?;
    }
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(DnType::CommonName, "Arcan local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let mut names = vec!["localhost".to_owned()];
    names.extend(extra_names.iter().cloned());
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(addr) = ip.parse() {
            leaf.subject_alt_names.push(SanType::IpAddress(addr));
        }
    }
    leaf.distinguished_name.push(DnType::CommonName, "arcan");
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(err)?;

    write_private(&paths.ca_key, &ca_key.serialize_pem())?;
    write_private(&paths.key, &leaf_key.serialize_pem())?;
    fs::write(&paths.cert, leaf_cert.pem())?;
    fs::write(&paths.ca_cert, ca_cert.pem())?;
    Ok(true)
}
