//! The documentation does not call a feature the server has "not implemented" or future work.
//! No server needed: it reads the Markdown files of the repository.
//!
//! Each paragraph (a heading joins the paragraph after it) that speaks of work to come is
//! checked against a small list of features the server has; add to `SHIPPED` when a feature
//! lands, so its stale "not implemented yet" fails here.

use std::path::{Path, PathBuf};

/// Features the server has, as the docs name them (lower case).
const SHIPPED: &[&str] = &[
    "dynamic-credential engines",
    "wasm plugins",
    "leases and the reaper",
    "signed plugin packages",
    "signed packages",
    "sample engines",
];

/// Phrases that say something does not exist yet (lower case).
const FUTURE: &[&str] = &[
    "not implemented",
    "not yet",
    "will live",
    "will be added",
    "will come",
    "open issue",
    "the packaging issue",
    "sample engines issue",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

/// Every Markdown file of the repository outside build output and hidden folders.
fn markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("read dir")
        .map_while(Result::ok)
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            markdown(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Paragraphs of `text`; a heading is joined with the paragraph that follows it.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut heading = false;
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        match out.last_mut() {
            Some(last) if heading => {
                last.push('\n');
                last.push_str(block);
            }
            _ => out.push(block.to_owned()),
        }
        heading = block.starts_with('#') && !block.contains('\n');
    }
    out
}

/// The stale statements in `text`: paragraphs that call a shipped feature future work.
fn stale(text: &str) -> Vec<String> {
    paragraphs(text)
        .into_iter()
        .filter(|p| {
            let l = p.to_lowercase();
            FUTURE.iter().any(|f| l.contains(f)) && SHIPPED.iter().any(|s| l.contains(s))
        })
        .collect()
}

#[test]
fn docs_do_not_call_shipped_features_unimplemented() {
    let mut files = Vec::new();
    markdown(&root(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("docs/server.md")),
        "the docs were not found under {}",
        root().display()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for p in stale(&text) {
            found.push(format!("{}:\n{p}", f.display()));
        }
    }
    assert!(
        found.is_empty(),
        "docs call shipped features future work:\n\n{}",
        found.join("\n\n")
    );
}

/// The check finds the statements this suite once had to fix, and lets real ones stand.
#[test]
fn the_check_finds_stale_statements() {
    let old_server_md = "## Not implemented yet\n\nDynamic-credential engines (WASM plugins), \
                         leases and the reaper, KMS key providers.\n";
    assert_eq!(stale(old_server_md).len(), 1);
    let old_readme = "Sample engines (`postgres`, `aws`) will live beside `fixtures/`.";
    assert_eq!(stale(old_readme).len(), 1);
    let old_sdk = "Signed packages (the packaging issue) add the digests of the files.";
    assert_eq!(stale(old_sdk).len(), 1);
    let current = "## Not implemented yet\n\nKMS key providers, OIDC and Kubernetes auth.\n";
    assert!(stale(current).is_empty());
}
