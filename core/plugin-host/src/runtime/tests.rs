//! The load pipeline's inspection of crafted components: which contract version's
//! exports and imports are accepted under which manifest, before anything is compiled.

use super::*;

fn manifest(wit: &str, caps: &[&str]) -> Manifest {
    let json = serde_json::json!({
        "name": "crafted", "version": "1.0.0", "publisher": "tests",
        "wit": wit, "capabilities": caps,
    });
    parse_unsigned(json.to_string().as_bytes()).expect("manifest")
}

/// A component with these top-level imports and exports (each an empty instance).
fn component(imports: &[&str], exports: &[&str]) -> Vec<u8> {
    let mut text = String::from("(component\n");
    for i in imports {
        text.push_str(&format!("  (import \"{i}\" (instance))\n"));
    }
    for (n, e) in exports.iter().enumerate() {
        text.push_str(&format!(
            "  (instance $e{n})\n  (export \"{e}\" (instance $e{n}))\n"
        ));
    }
    text.push(')');
    wat::parse_str(&text).expect("valid component text")
}

fn inspect(wit: &str, caps: &[&str], wasm: &[u8]) -> Result<Vec<String>, String> {
    let m = manifest(wit, caps);
    let contract = check_for_host(&m).map_err(|e| e.to_string())?;
    inspect_imports(&m, contract, wasm)
        .map(|imports| imports.into_iter().map(|(name, _)| name).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn each_version_loads_under_its_own_manifest() {
    for v in ["0.1.0", "0.2.0"] {
        let wasm = component(
            &[
                &format!("arcan:plugin/types@{v}"),
                &format!("arcan:plugin/sql@{v}"),
                "wasi:io/streams@0.2.6",
            ],
            &[&format!("arcan:plugin/engine@{v}")],
        );
        let imports = inspect(&format!("arcan:plugin@{v}"), &["host:sql"], &wasm);
        assert_eq!(imports.map(|i| i.len()), Ok(3), "{v}");
    }
}

#[test]
fn exports_must_be_one_engine_of_the_manifests_version() {
    let both = component(
        &[],
        &["arcan:plugin/engine@0.1.0", "arcan:plugin/engine@0.2.0"],
    );
    for wit in ["arcan:plugin@0.1.0", "arcan:plugin@0.2.0"] {
        let e = inspect(wit, &[], &both).expect_err("two engine exports");
        assert!(e.contains("exactly one is allowed"), "{e}");
    }
    let none = component(&["arcan:plugin/types@0.2.0"], &[]);
    let e = inspect("arcan:plugin@0.2.0", &[], &none).expect_err("no engine export");
    assert!(e.contains("does not export `arcan:plugin/engine`"), "{e}");
    let newer = component(&[], &["arcan:plugin/engine@0.2.0"]);
    let e = inspect("arcan:plugin@0.1.0", &[], &newer).expect_err("export of another version");
    assert!(
        e.contains(
            "exports `arcan:plugin/engine@0.2.0` but its manifest declares `arcan:plugin@0.1.0`"
        ),
        "{e}"
    );
    let extra = component(
        &[],
        &[
            "arcan:plugin/engine@0.2.0",
            "arcan:plugin/static-roles@0.2.0",
        ],
    );
    let e = inspect("arcan:plugin@0.2.0", &[], &extra).expect_err("unknown contract export");
    assert!(
        e.contains("exports `arcan:plugin/static-roles@0.2.0`"),
        "{e}"
    );
}

#[test]
fn imports_must_be_of_the_manifests_version() {
    let mixed = component(&["arcan:plugin/sql@0.1.0"], &["arcan:plugin/engine@0.2.0"]);
    let e = inspect("arcan:plugin@0.2.0", &["host:sql"], &mixed).expect_err("0.1.0 import");
    assert!(
        e.contains(
            "imports `arcan:plugin/sql@0.1.0` but its manifest declares `arcan:plugin@0.2.0`"
        ),
        "{e}"
    );
    for odd in [
        "arcan:plugin/sql@0.2.0+build",
        "arcan:plugin/sql@0.2.1",
        "arcan:plugin/sql",
        "arcan:plugin/fs@0.2.0",
        "arcan:other/sql@0.2.0",
        "wasi:http/types@0.2.0",
    ] {
        let wasm = component(&[odd], &["arcan:plugin/engine@0.2.0"]);
        assert!(
            inspect("arcan:plugin@0.2.0", &["host:sql"], &wasm).is_err(),
            "{odd} must be refused"
        );
    }
    // A capability interface its manifest does not declare.
    let wasm = component(&["arcan:plugin/http@0.2.0"], &["arcan:plugin/engine@0.2.0"]);
    let e = inspect("arcan:plugin@0.2.0", &["host:sql"], &wasm).expect_err("undeclared");
    assert!(e.contains("does not declare `host:http`"), "{e}");
}

#[test]
fn only_top_level_imports_are_linked() {
    // A nested component's imports are satisfied inside the component, not by the host.
    let text = r#"(component
        (component $inner (import "arcan:plugin/sql@0.1.0" (instance)))
        (instance $e)
        (export "arcan:plugin/engine@0.2.0" (instance $e)))"#;
    let wasm = wat::parse_str(text).expect("valid component text");
    assert_eq!(inspect("arcan:plugin@0.2.0", &[], &wasm), Ok(vec![]));
}

#[test]
fn a_core_module_is_not_a_component() {
    let wasm = wat::parse_str("(module)").expect("valid module text");
    let e = inspect("arcan:plugin@0.2.0", &[], &wasm).expect_err("module");
    assert!(e.contains("is not a WebAssembly component"), "{e}");
}
