//! Each rule of the format, held and violated.

use std::path::PathBuf;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;
use crate::archive::{read_archive, write_archive};
use crate::keys;

const WASM: &[u8] = b"\0asm\x0d\0\x01\0 pretend component";

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arcan-pkg-{tag}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn plugin_dir(caps: &[&str]) -> PathBuf {
    let d = temp("src");
    let m = serde_json::json!({
        "name": "pg", "version": "1.2.3", "publisher": "tests", "description": "d",
        "wit": "arcan:plugin@0.1.0", "capabilities": caps,
    });
    std::fs::write(d.join("manifest.json"), m.to_string()).expect("manifest");
    std::fs::write(d.join("engine.wasm"), WASM).expect("wasm");
    std::fs::write(d.join("README.md"), "hello").expect("readme");
    d
}

fn signed() -> (Vec<u8>, SigningKey, PublicKey) {
    let key = keys::generate();
    let pkg = sign(&pack(&plugin_dir(&["host:sql"])).expect("pack"), &key).expect("sign");
    let pk = keys::public_key(&key);
    (pkg, key, pk)
}

/// Rewrites the files of a package without re-signing.
fn edit(pkg: &[u8], f: impl FnOnce(&mut Files)) -> Vec<u8> {
    let mut files = read_archive(pkg, &Limits::default()).expect("read");
    f(&mut files);
    write_archive(&files).expect("write")
}

/// A tar.gz with raw names and types (what a hostile archive can contain).
fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
            h.set_size(0);
            h.as_old_mut().linkname[..11].copy_from_slice(b"/etc/passwd");
        }
        h.set_cksum();
        b.append(
            &h,
            if h.size().unwrap_or(0) == 0 {
                &[][..]
            } else {
                *data
            },
        )
        .expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz")
}

#[test]
fn round_trip_verify_unpack_and_verify_dir() {
    let (pkg, _, pk) = signed();
    let v = verify(&pkg, &[pk]).expect("verify");
    assert_eq!(v.manifest.name, "pg");
    assert_eq!(v.manifest.capabilities, vec!["host:sql".to_owned()]);
    assert_eq!(v.engine_wasm(), WASM);
    assert_eq!(v.manifest.files.len(), 2, "engine.wasm and README.md");
    let root = temp("dest");
    let dest = root.join("pg");
    std::fs::create_dir_all(&dest).expect("old");
    std::fs::write(dest.join("stale"), "old version").expect("stale");
    unpack_verified(&pkg, &[pk], &dest).expect("unpack");
    assert!(!dest.join("stale").exists(), "the old version was replaced");
    assert_eq!(std::fs::read(dest.join("engine.wasm")).expect("wasm"), WASM);
    let names: Vec<_> = std::fs::read_dir(&root)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary leftovers: {names:?}");
    verify_dir(&dest, &[pk]).expect("verify_dir");
    // The installed directory is held to the same rules.
    std::fs::write(dest.join("engine.wasm"), b"evil").expect("tamper");
    let e = verify_dir(&dest, &[pk]).expect_err("tampered dir");
    assert!(
        matches!(e, Error::DigestMismatch { ref file, .. } if file == "engine.wasm"),
        "{e}"
    );
    std::fs::write(dest.join("engine.wasm"), WASM).expect("restore");
    std::os::unix::fs::symlink("/etc/passwd", dest.join("extra")).expect("link");
    let e = verify_dir(&dest, &[pk]).expect_err("symlink");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    std::fs::remove_file(dest.join("extra")).expect("unlink");
    std::fs::write(dest.join("extra"), "x").expect("extra");
    assert!(matches!(verify_dir(&dest, &[pk]), Err(Error::ExtraFile(f)) if f == "extra"));
    std::fs::remove_file(dest.join("signature")).expect("unsign");
    std::fs::remove_file(dest.join("extra")).expect("rm");
    assert!(matches!(verify_dir(&dest, &[pk]), Err(Error::Unsigned)));
}

fn refused_and_nothing_written(pkg: &[u8], trusted: &[PublicKey]) -> Error {
    let root = temp("refused");
    let e = unpack_verified(pkg, trusted, &root.join("pg")).expect_err("must refuse");
    assert_eq!(
        std::fs::read_dir(&root).expect("ls").count(),
        0,
        "nothing written"
    );
    e
}

#[test]
fn tampered_engine_is_a_digest_mismatch() {
    let (pkg, _, pk) = signed();
    let bad = edit(&pkg, |f| {
        f.insert("engine.wasm".into(), b"\0asm evil".to_vec());
    });
    let e = refused_and_nothing_written(&bad, &[pk]);
    assert!(
        e.to_string().contains("digest mismatch for `engine.wasm`"),
        "{e}"
    );
}

#[test]
fn added_capability_breaks_the_signature() {
    let (pkg, _, pk) = signed();
    let bad = edit(&pkg, |f| {
        let mut m: serde_json::Value = serde_json::from_slice(&f["manifest.json"]).expect("json");
        m["capabilities"]
            .as_array_mut()
            .expect("caps")
            .push("host:http".into());
        f.insert("manifest.json".into(), m.to_string().into_bytes());
    });
    let e = refused_and_nothing_written(&bad, &[pk]);
    assert!(matches!(e, Error::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("signature invalid"), "{e}");
}

#[test]
fn reformatted_manifest_keeps_a_valid_signature() {
    let (pkg, _, pk) = signed();
    let same = edit(&pkg, |f| {
        let m: serde_json::Value = serde_json::from_slice(&f["manifest.json"]).expect("json");
        f.insert(
            "manifest.json".into(),
            serde_json::to_vec_pretty(&m).expect("pretty"),
        );
    });
    verify(&same, &[pk]).expect("canonical bytes do not depend on formatting");
}

#[test]
fn untrusted_key_is_named_by_fingerprint() {
    let (pkg, _, pk) = signed();
    let other = keys::public_key(&keys::generate());
    let e = refused_and_nothing_written(&pkg, &[other]);
    assert!(e.to_string().contains(&pk.fingerprint()), "{e}");
    assert!(matches!(e, Error::UntrustedKey { .. }));
    verify_self_signed(&pkg, &Limits::default()).expect("well-formed for a registry");
}

#[test]
fn unsigned_is_refused() {
    let pkg = pack(&plugin_dir(&[])).expect("pack");
    let pk = keys::public_key(&keys::generate());
    let e = refused_and_nothing_written(&pkg, &[pk]);
    assert!(e.to_string().contains("no signature"), "{e}");
}

#[test]
fn truncated_is_refused() {
    let (pkg, _, pk) = signed();
    for cut in [10, pkg.len() / 2, pkg.len() - 4] {
        let e = refused_and_nothing_written(&pkg[..cut], &[pk]);
        assert!(matches!(e, Error::Corrupt(_)), "cut at {cut}: {e}");
    }
}

#[test]
fn missing_and_extra_files_are_refused() {
    let (pkg, _, pk) = signed();
    let missing = edit(&pkg, |f| {
        f.remove("README.md");
    });
    assert!(matches!(verify(&missing, &[pk]), Err(Error::MissingFile(f)) if f == "README.md"));
    let extra = edit(&pkg, |f| {
        f.insert("payload.sh".into(), b"rm -rf /".to_vec());
    });
    assert!(matches!(verify(&extra, &[pk]), Err(Error::ExtraFile(f)) if f == "payload.sh"));
}

#[test]
fn unsafe_entries_are_refused() {
    let pk = keys::public_key(&keys::generate());
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    for (name, kind, want) in [
        ("../evil", Regular, "not allowed"),
        ("/etc/cron.d/evil", Regular, "not allowed"),
        ("sub/engine.wasm", Regular, "not allowed"),
        (".hidden", Regular, "not allowed"),
        ("link", Symlink, "symbolic link"),
        ("hard", Link, "hard link"),
        ("dir", Directory, "directory"),
    ] {
        let pkg = raw_tar(&[("manifest.json", Regular, b"{}"), (name, kind, b"x")]);
        let e = refused_and_nothing_written(&pkg, &[pk]);
        assert!(matches!(e, Error::Unsafe(_)), "{name}: {e}");
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
    let dup = raw_tar(&[("a", Regular, b"1"), ("a", Regular, b"2")]);
    assert!(
        refused_and_nothing_written(&dup, &[pk])
            .to_string()
            .contains("twice")
    );
}

#[test]
fn size_and_count_limits_hold_and_are_enforced() {
    let (pkg, _, pk) = signed();
    let largest = read_archive(&pkg, &Limits::default())
        .expect("read")
        .iter()
        .filter(|(n, _)| n.as_str() != "manifest.json")
        .map(|(_, d)| d.len() as u64)
        .max()
        .expect("files");
    let tight = Limits {
        max_file_bytes: largest,
        ..Limits::default()
    };
    verify_with(&pkg, &[pk], &tight).expect("a file exactly at the limit");
    let tighter = Limits {
        max_file_bytes: largest - 1,
        ..Limits::default()
    };
    let e = verify_with(&pkg, &[pk], &tighter).expect_err("per file");
    assert!(matches!(e, Error::Limit(_)), "{e}");
    let total = Limits {
        max_total_bytes: 64,
        ..Limits::default()
    };
    assert!(matches!(
        verify_with(&pkg, &[pk], &total),
        Err(Error::Limit(_))
    ));
    // A highly compressible bomb stops at the total limit, not after inflating it all.
    let bomb = raw_tar(&[("engine.wasm", tar::EntryType::Regular, &vec![0u8; 4 << 20])]);
    let small = Limits {
        max_total_bytes: 1 << 20,
        max_file_bytes: 8 << 20,
        ..Limits::default()
    };
    let e = verify_with(&bomb, &[pk], &small).expect_err("bomb");
    assert!(matches!(e, Error::Limit(_)), "{e}");
    // Entry count: 64 held, 65 refused.
    let names: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
    let many = |n: usize| {
        let entries: Vec<_> = names[..n]
            .iter()
            .map(|s| (s.as_str(), tar::EntryType::Regular, &b"x"[..]))
            .collect();
        raw_tar(&entries)
    };
    let e = verify(&many(64), &[pk]).expect_err("no manifest");
    assert!(
        !matches!(e, Error::Limit(_)),
        "64 entries are within the limit: {e}"
    );
    let e = verify(&many(65), &[pk]).expect_err("65 entries");
    assert!(e.to_string().contains("more than 64 files"), "{e}");
}

#[test]
fn pack_refuses_links_and_subdirectories() {
    let d = plugin_dir(&[]);
    std::os::unix::fs::symlink("/etc/passwd", d.join("passwd")).expect("link");
    assert!(
        pack(&d)
            .expect_err("link")
            .to_string()
            .contains("symbolic link")
    );
    std::fs::remove_file(d.join("passwd")).expect("rm");
    std::fs::create_dir(d.join("templates")).expect("dir");
    assert!(pack(&d).expect_err("dir").to_string().contains("directory"));
    std::fs::remove_dir(d.join("templates")).expect("rmdir");
    pack(&d).expect("clean dir packs");
}
