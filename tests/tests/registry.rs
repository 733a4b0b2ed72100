//! Signed packages through a real `arcan registry serve` and the real CLI over HTTPS:
//! the happy path into a running server, and every refusal (clear message, nothing installed).

use std::path::{Path, PathBuf};

use arcan_registry_client::package::{Limits, read_archive, sha256_hex, write_archive};
use arcan_tests::registry::Registry;
use arcan_tests::*;

/// The engine under test: the SDK's `hello` (needs no external service).
const PLUGIN: &str = "hello";

struct Work {
    dir: PathBuf,
    reg: Registry,
}

impl Work {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("arcan-pkg-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("work dir");
        Self {
            dir,
            reg: Registry::start(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A fresh, empty plugins directory.
    fn plugins(&self, tag: &str) -> PathBuf {
        let p = self.dir.join(format!("home-{tag}/plugins"));
        std::fs::create_dir_all(&p).expect("plugins dir");
        p
    }

    fn arcan(&self, args: &[&str]) -> String {
        self.reg.ok(&self.path("home-cli/plugins"), args)
    }

    fn fails(&self, args: &[&str]) -> String {
        self.reg.fails(&self.path("home-cli/plugins"), args)
    }

    /// `arcan plugin keygen`; returns (key file, public key string).
    fn keygen(&self, name: &str) -> (String, String) {
        let file = self.path(name).display().to_string();
        let out = self.arcan(&["plugin", "keygen", "--out", &file]);
        let key = out
            .lines()
            .find_map(|l| l.strip_prefix("public key: "))
            .expect("public key printed")
            .to_owned();
        assert!(out.contains("fingerprint: "), "{out}");
        (file, key)
    }

    /// A plugin directory from the built `hello`, with manifest fields overridden.
    fn source(&self, tag: &str, name: &str, version: &str) -> PathBuf {
        let built = plugins_dir().join(PLUGIN);
        let src = self.path(&format!("src-{tag}"));
        std::fs::create_dir_all(&src).expect("src");
        std::fs::copy(built.join("engine.wasm"), src.join("engine.wasm")).expect("wasm");
        let mut m: Value =
            serde_json::from_slice(&std::fs::read(built.join("manifest.json")).expect("manifest"))
                .expect("json");
        m["name"] = json!(name);
        m["version"] = json!(version);
        std::fs::write(src.join("manifest.json"), m.to_string()).expect("write manifest");
        std::fs::write(src.join("README.md"), "# hello\n").expect("readme");
        src
    }

    /// pack + sign with the CLI; returns the package path.
    fn package(&self, tag: &str, name: &str, version: &str, key: &str) -> String {
        let src = self.source(tag, name, version);
        let pkg = self.path(&format!("{tag}.arcanpkg")).display().to_string();
        self.arcan(&["plugin", "pack", &src.display().to_string(), "--out", &pkg]);
        self.arcan(&["plugin", "sign", &pkg, "--key", key]);
        pkg
    }

    fn publish(&self, pkg: &str, extra: &[&str]) -> String {
        let mut args = vec!["plugin", "publish", pkg, "--token", &self.reg.token];
        args.extend_from_slice(extra);
        self.arcan(&args)
    }

    fn index_path(&self, name: &str) -> PathBuf {
        self.reg.dir.join(format!("index/{name}.json"))
    }

    /// Edits the registry's stored index of `name` (what a compromised mirror could serve).
    fn edit_index(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let p = self.index_path(name);
        let mut idx: Value =
            serde_json::from_slice(&std::fs::read(&p).expect("index")).expect("json");
        f(&mut idx);
        std::fs::write(&p, idx.to_string()).expect("write index");
    }

    /// Serves `blob` as the newest version of `name`, with a consistent index entry (so only
    /// the package checks can refuse it).
    fn replace_blob(&self, name: &str, blob: &[u8]) {
        let sha = sha256_hex(blob);
        std::fs::write(self.reg.dir.join(format!("blobs/{sha}.arcanpkg")), blob).expect("blob");
        self.edit_index(name, |idx| {
            let v = idx["versions"]
                .as_array_mut()
                .and_then(|v| v.last_mut())
                .expect("a version");
            v["sha256"] = json!(sha);
            v["size"] = json!(blob.len());
            v["url"] = json!(format!("v1/blobs/{sha}"));
        });
    }

    /// Installs and expects a refusal containing `want`, with nothing installed.
    fn refused(&self, tag: &str, spec: &str, key: &str, want: &str) {
        let plugins = self.plugins(tag);
        let err = self
            .reg
            .fails(&plugins, &["plugin", "install", spec, "--trusted-key", key]);
        assert!(err.contains(want), "{tag}: expected `{want}` in:\n{err}");
        assert!(err.contains("was not installed"), "{tag}: {err}");
        let left: Vec<_> = std::fs::read_dir(&plugins)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{tag}: nothing may be installed, found {left:?}"
        );
        assert!(!self.dir.join("evil").exists() && !plugins.join("../evil").exists());
    }
}

fn package_bytes(pkg: &str) -> Vec<u8> {
    std::fs::read(pkg).expect("package")
}

/// Rewrites the files of a package, keeping its signature.
fn edit_package(pkg: &[u8], f: impl FnOnce(&mut arcan_registry_client::package::Files)) -> Vec<u8> {
    let mut files = read_archive(pkg, &Limits::default()).expect("read");
    f(&mut files);
    write_archive(&files).expect("write")
}

fn installed_version(plugins: &Path, name: &str) -> String {
    let m: Value = serde_json::from_slice(
        &std::fs::read(plugins.join(name).join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    m["version"].as_str().expect("version").to_owned()
}

#[tokio::test]
async fn publish_install_and_issue_through_a_running_server() {
    let w = Work::new();
    let (keyfile, key) = w.keygen("publisher.pem");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&keyfile)
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "private key is 0600");
    let pkg = w.package("v1", PLUGIN, "0.1.0", &keyfile);
    let out = w.arcan(&["plugin", "verify", &pkg, "--trusted-key", &key]);
    assert!(out.contains("ok: hello 0.1.0"), "{out}");
    w.publish(&pkg, &[]);
    // Re-publishing a version is refused; publishing without a valid token too.
    assert!(
        w.fails(&["plugin", "publish", &pkg, "--token", &w.reg.token])
            .contains("409")
    );
    assert!(
        w.fails(&["plugin", "publish", &pkg, "--token", "wrong"])
            .contains("403")
    );
    let found = w.arcan(&["plugin", "search", "hell"]);
    assert!(
        found.contains("hello") && found.contains("0.1.0"),
        "{found}"
    );

    let plugins = w.plugins("server");
    let out = w.reg.ok(
        &plugins,
        &["plugin", "install", "hello", "--trusted-key", &key],
    );
    assert!(out.contains("installed hello 0.1.0"), "{out}");
    assert!(
        out.contains("engine:dynamic_credentials"),
        "capabilities printed: {out}"
    );
    let listed = w.reg.ok(&plugins, &["plugin", "list"]);
    assert!(
        listed.contains("hello") && listed.contains("signed by"),
        "{listed}"
    );
    arcan_registry_client::package::verify_dir(
        &plugins.join("hello"),
        &[key.parse().expect("key")],
    )
    .expect("installed directory verifies");

    // A server trusting the key loads the installed package; mount, issue, revoke.
    let cache = w.path("plugin-cache");
    let config = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  trusted_keys: [\"{key}\"]\n",
        plugins.display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &config).await;
    s.realm("acme").await;
    let (st, m) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{m}\n{}", s.log());
    s.engine_role(
        "acme",
        "hi",
        "dev",
        json!({"definition": {}, "default_ttl": "5m", "max_ttl": "10m"}),
    )
    .await;
    let (st, c) = s.creds("acme", "hi", "dev", None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let id = c["lease_id"].as_str().expect("lease id").to_owned();
    let (st, l) = s
        .call(
            Method::POST,
            "/api/v1/realms/acme/leases/revoke",
            Some(&s.root),
            Some(json!({"lease_id": id})),
        )
        .await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("revoked")),
        "{l}"
    );

    drop(s);

    // Load-time enforcement by the server itself (the pipeline's verify step).
    // A server that does not trust the publisher refuses the same installed package.
    let (_, other) = w.keygen("other.pem");
    let untrusting = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  trusted_keys: [\"{other}\"]\n",
        plugins.display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &untrusting).await;
    s.realm("acme").await;
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b.to_string().contains("not trusted") || b.to_string().contains("untrusted"),
        "{b}"
    );
    drop(s);
    // An installed engine.wasm changed after install no longer loads.
    let tampered = w.plugins("tampered");
    copy_dir(&plugins.join("hello"), &tampered.join("hello"));
    let mut wasm = std::fs::read(tampered.join("hello/engine.wasm")).expect("wasm");
    let last = wasm.len() - 1;
    wasm[last] ^= 0xff;
    std::fs::write(tampered.join("hello/engine.wasm"), wasm).expect("write");
    let cfg = format!(
        "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  trusted_keys: [\"{key}\"]\n",
        tampered.display(),
        cache.display()
    );
    let s = Server::start_with(Backend::Sqlite, &cfg).await;
    s.realm("acme").await;
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(
        b.to_string().contains("digest mismatch for `engine.wasm`"),
        "{b}"
    );
    drop(s);
    // Unsigned plugins load only with the explicit development override.
    let unsigned = w.plugins("unsigned");
    for f in ["manifest.json", "engine.wasm"] {
        std::fs::create_dir_all(unsigned.join("hello")).expect("dir");
        std::fs::copy(
            plugins_dir().join("hello").join(f),
            unsigned.join("hello").join(f),
        )
        .expect("copy");
    }
    let cfg = |allow: bool| {
        format!(
            "{RELAXED}plugins:\n  dir: {}\n  cache_dir: {}\n  trusted_keys: [\"{key}\"]\n  allow_unsigned: {allow}\n",
            unsigned.display(),
            cache.display()
        )
    };
    let s = Server::start_with(Backend::Sqlite, &cfg(false)).await;
    s.realm("acme").await;
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b.to_string().contains("no signature"), "{b}");
    drop(s);
    let s = Server::start_with(Backend::Sqlite, &cfg(true)).await;
    s.realm("acme").await;
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    assert!(
        s.log().contains("UNSIGNED plugin"),
        "the override is loud in the log"
    );
    drop(s);

    // Remove.
    w.reg.ok(&plugins, &["plugin", "remove", "hello"]);
    assert!(!plugins.join("hello").exists());
}

#[tokio::test]
async fn refusals_leave_nothing_installed() {
    let w = Work::new();
    let (keyfile, key) = w.keygen("publisher.pem");
    let (other_file, _other_key) = w.keygen("other.pem");
    let pkg = w.package("good", PLUGIN, "0.1.0", &keyfile);
    let good = package_bytes(&pkg);
    w.publish(&pkg, &[]);
    let fingerprint = |k: &str| {
        k.parse::<arcan_registry_client::PublicKey>()
            .expect("key")
            .fingerprint()
    };

    // The registry itself refuses unsigned and tampered uploads.
    let src = w.source("unsigned", PLUGIN, "0.1.1");
    let unsigned = w.path("unsigned.arcanpkg").display().to_string();
    w.arcan(&[
        "plugin",
        "pack",
        &src.display().to_string(),
        "--out",
        &unsigned,
    ]);
    let err = w.fails(&["plugin", "publish", &unsigned, "--token", &w.reg.token]);
    assert!(err.contains("no signature"), "{err}");

    // Tampered engine.wasm (signature still valid, digest not).
    let tampered = edit_package(&good, |f| {
        let wasm = f.get_mut("engine.wasm").expect("wasm");
        let last = wasm.len() - 1;
        wasm[last] ^= 0xff;
    });
    w.replace_blob(PLUGIN, &tampered);
    w.refused(
        "tampered",
        "hello",
        &key,
        "digest mismatch for `engine.wasm`",
    );

    // An added capability: the signature no longer matches the manifest.
    let widened = edit_package(&good, |f| {
        let mut m: Value = serde_json::from_slice(&f["manifest.json"]).expect("json");
        m["capabilities"]
            .as_array_mut()
            .expect("caps")
            .push(json!("host:http"));
        f.insert("manifest.json".into(), m.to_string().into_bytes());
    });
    w.replace_blob(PLUGIN, &widened);
    w.refused("capability", "hello", &key, "signature invalid");

    // Unsigned.
    w.replace_blob(PLUGIN, &package_bytes(&unsigned));
    w.refused("unsigned", "hello", &key, "no signature");

    // Signed by a key that is not trusted: the message names its fingerprint.
    let foreign = w.package("foreign", PLUGIN, "0.1.0", &other_file);
    w.replace_blob(PLUGIN, &package_bytes(&foreign));
    let other_pub = {
        let files = read_archive(&package_bytes(&foreign), &Limits::default()).expect("read");
        let sig: Value = serde_json::from_slice(&files["signature"]).expect("sig");
        sig["key"].as_str().expect("key").to_owned()
    };
    w.refused("untrusted", "hello", &key, &fingerprint(&other_pub));

    // Path traversal inside the archive.
    let traversal = {
        use flate2::{Compression, write::GzEncoder};
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (name, data) in [("manifest.json", &b"{}"[..]), ("../evil", &b"owned"[..])] {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, data).expect("append");
        }
        b.into_inner().expect("tar").finish().expect("gz")
    };
    w.replace_blob(PLUGIN, &traversal);
    w.refused("traversal", "hello", &key, "unsafe package");

    // Back to the good blob, then break the transport checks.
    w.replace_blob(PLUGIN, &good);
    let good_sha = sha256_hex(&good);
    // Digest mismatch: the index announces another digest than the blob has.
    w.edit_index(PLUGIN, |idx| {
        idx["versions"][0]["sha256"] = json!("ab".repeat(32))
    });
    w.refused("digest", "hello", &key, "digest mismatch: the index says");
    w.edit_index(PLUGIN, |idx| idx["versions"][0]["sha256"] = json!(good_sha));
    // Truncated download.
    let blob = w.reg.dir.join(format!("blobs/{good_sha}.arcanpkg"));
    std::fs::write(&blob, &good[..good.len() / 2]).expect("truncate");
    w.refused("truncated", "hello", &key, "truncated download");
    std::fs::write(&blob, &good).expect("restore");
    // Oversized package.
    w.edit_index(PLUGIN, |idx| {
        idx["versions"][0]["size"] = json!(200u64 << 20)
    });
    w.refused("oversized", "hello", &key, "limit exceeded");
    w.edit_index(PLUGIN, |idx| idx["versions"][0]["size"] = json!(good.len()));
    // A valid signature, but the manifest is another version than the index announced.
    let newer = w.package("newer", PLUGIN, "0.9.0", &keyfile);
    w.replace_blob(PLUGIN, &package_bytes(&newer));
    w.refused("mismatch", "hello", &key, "package mismatch");
    w.replace_blob(PLUGIN, &good);

    // Downgrade, and yanked versions.
    let v2 = w.package("v2", PLUGIN, "0.2.0", &keyfile);
    w.publish(&v2, &[]);
    let plugins = w.plugins("upgrade");
    w.reg.ok(
        &plugins,
        &["plugin", "install", "hello", "--trusted-key", &key],
    );
    assert_eq!(installed_version(&plugins, PLUGIN), "0.2.0");
    let err = w.reg.fails(
        &plugins,
        &["plugin", "install", "hello@=0.1.0", "--trusted-key", &key],
    );
    assert!(err.contains("refusing to downgrade"), "{err}");
    assert_eq!(
        installed_version(&plugins, PLUGIN),
        "0.2.0",
        "nothing changed"
    );
    w.reg.ok(
        &plugins,
        &[
            "plugin",
            "install",
            "hello@=0.1.0",
            "--allow-downgrade",
            "--trusted-key",
            &key,
        ],
    );
    assert_eq!(installed_version(&plugins, PLUGIN), "0.1.0");
    let out = w.reg.ok(
        &plugins,
        &["plugin", "update", "hello", "--trusted-key", &key],
    );
    assert!(out.contains("installed hello 0.2.0"), "{out}");
    w.arcan(&["plugin", "yank", "hello@0.2.0", "--token", &w.reg.token]);
    w.refused("yanked", "hello@=0.2.0", &key, "only yanked versions match");
    let plugins = w.plugins("after-yank");
    let out = w.reg.ok(
        &plugins,
        &["plugin", "install", "hello", "--trusted-key", &key],
    );
    assert!(
        out.contains("installed hello 0.1.0"),
        "newest non-yanked: {out}"
    );

    // Enterprise: the download needs an activation token.
    let ent = w.package("ent", "hello-enterprise", "1.0.0", &keyfile);
    w.publish(&ent, &["--enterprise"]);
    w.refused("enterprise", "hello-enterprise", &key, "activation");
    std::fs::write(w.reg.dir.join("activation-tokens"), "act_123\n").expect("tokens");
    let plugins = w.plugins("enterprise-ok");
    let err = w.reg.fails(
        &plugins,
        &[
            "plugin",
            "install",
            "hello-enterprise",
            "--activation",
            "wrong",
            "--trusted-key",
            &key,
        ],
    );
    assert!(err.contains("403"), "{err}");
    w.reg.ok(
        &plugins,
        &[
            "plugin",
            "install",
            "hello-enterprise",
            "--activation",
            "act_123",
            "--trusted-key",
            &key,
        ],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}
