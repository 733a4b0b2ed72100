//! JWT/OIDC identities: the test OIDC issuer (`arcan_tests::oidc`) checked with PyJWT, an
//! implementation independent of the one the issuer signs with, so that the discovery
//! document, the key set and the tokens Arcan is tested against are standard.

use std::io::Write;
use std::process::{Command, Stdio};

use arcan_tests::oidc::{Issuer, TestKey, github_actions, gitlab_ci};
use serde_json::Value;

/// Verifies `tokens` with PyJWT against the issuer's discovery document and key set.
async fn pyjwt(issuer: &Issuer, audience: &str, tokens: &[String]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/oidc_verify.py");
    let mut cmd = Command::new(arcan_tests::reference_python());
    cmd.arg(script)
        .env("OIDC_ISSUER", &issuer.url)
        .env("OIDC_CA", &issuer.ca_path)
        .env("OIDC_AUDIENCE", audience)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = tokens.join("\n");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("run PyJWT");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write tokens");
        child.wait_with_output().expect("PyJWT output")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "PyJWT failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test]
async fn oidc_issuer_is_standard_for_pyjwt() {
    let dir = std::env::temp_dir().join(format!("arcan-oidc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rsa = TestKey::rs256("gh-1");
    let ec = TestKey::es256("gl-1");
    let ed = TestKey::ed25519("ed-1");
    let issuer = Issuer::start(&dir, &[&rsa, &ec]).await;
    let aud = "https://arcan.example";

    let gh = github_actions(&issuer.url, "acme/api", "refs/heads/main", aud);
    let gl = gitlab_ci(&issuer.url, "acme/api", "main", aud);
    let unpublished = ed.sign(&gh);
    let tokens = vec![
        rsa.sign(&gh),
        ec.sign(&gl),
        unpublished.clone(),
        rsa.sign(&github_actions(
            &issuer.url,
            "acme/api",
            "refs/heads/main",
            "sts.amazonaws.com",
        )),
    ];
    let got = pyjwt(&issuer, aud, &tokens).await;
    assert_eq!(got[0]["ok"], true, "RS256 GitHub-shaped token: {}", got[0]);
    assert_eq!(got[0]["sub"], "repo:acme/api:ref:refs/heads/main");
    assert_eq!(got[0]["alg"], "RS256");
    assert_eq!(got[1]["ok"], true, "ES256 GitLab-shaped token: {}", got[1]);
    assert_eq!(
        got[1]["sub"],
        "project_path:acme/api:ref_type:branch:ref:main"
    );
    assert_eq!(
        got[2]["ok"], false,
        "a key the issuer does not publish: {}",
        got[2]
    );
    assert_eq!(got[3]["error"], "InvalidAudienceError", "{}", got[3]);
    let fetches = issuer.with(|s| (s.discovery_fetches, s.jwks_fetches));
    assert_eq!(fetches.0, 1, "one discovery document");
    assert!(fetches.1 >= 1, "the key set was fetched");

    // Rotation: the EdDSA key is published next to the others, then the RSA key retired.
    issuer.publish(&ed);
    issuer.retire("gh-1");
    let got = pyjwt(&issuer, aud, &[unpublished, rsa.sign(&gh)]).await;
    assert_eq!(got[0]["ok"], true, "EdDSA after rotation: {}", got[0]);
    assert_eq!(got[0]["alg"], "EdDSA");
    assert_eq!(got[1]["ok"], false, "the retired key: {}", got[1]);

    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
