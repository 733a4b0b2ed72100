//! The documentation is true to the server.
//!
//! The Markdown files of the repository (no server needed) do not call a feature the server
//! has "not implemented" or future work: each paragraph (a heading joins the paragraph after
//! it) that speaks of work to come is checked against a small list of features the server
//! has; add to `SHIPPED` when a feature lands, so its stale "not implemented yet" fails here.
//!
//! The OpenAPI document a running server serves names a schema with properties for every
//! JSON body an operation answers with on success, so no response is a bare object.

use std::path::{Path, PathBuf};

use arcan_tests::{Backend, Method, Server, StatusCode};
use serde_json::{Value, json};

/// Features the server has, as the docs name them (lower case).
const SHIPPED: &[&str] = &[
    "dynamic-credential engines",
    "wasm plugins",
    "leases and the reaper",
    "signed plugin packages",
    "signed packages",
    "sample engines",
    "oidc and kubernetes auth",
    "machine-identity login",
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
/// Whitespace is normalised first, so a phrase wrapped across lines is still found.
fn stale(text: &str) -> Vec<String> {
    paragraphs(text)
        .into_iter()
        .filter(|p| {
            let l = p
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
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
    // Wrapped as docs/server.md had it before machine-identity login shipped.
    let old_server_md_auth = "## Not implemented yet\n\nKMS key providers (this build ships \
                              the `file` master-key provider), OIDC and Kubernetes\nauth. \
                              These are open issues; no endpoint pretends to offer them.\n";
    assert_eq!(stale(old_server_md_auth).len(), 1);
    let current = "## Not implemented yet\n\nKMS key providers (this build ships the `file` \
                   master-key provider). This is an open issue.\n";
    assert!(stale(current).is_empty());
}

/// The keys of a path item that are operations.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The 2xx JSON responses of `doc` that do not describe their body, one line each.
fn undescribed_responses(doc: &Value) -> Vec<String> {
    let schemas = &doc["components"]["schemas"];
    let mut found = Vec::new();
    let Some(paths) = doc["paths"].as_object() else {
        return vec!["the document has no paths".into()];
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item.iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
            let at = format!("{} {path}", method.to_uppercase());
            let Some(responses) = op["responses"].as_object() else {
                found.push(format!("{at}: no responses"));
                continue;
            };
            let ok: Vec<_> = responses
                .iter()
                .filter(|(code, _)| code.starts_with('2'))
                .collect();
            if ok.is_empty() {
                found.push(format!("{at}: no success response"));
            }
            for (code, response) in ok {
                // A body-less answer (204) or another media type has no JSON to describe.
                let Some(media) = response
                    .get("content")
                    .and_then(|c| c.get("application/json"))
                else {
                    continue;
                };
                match media.get("schema") {
                    None => found.push(format!("{at} {code}: no schema")),
                    Some(schema) => {
                        if let Err(why) = described(schema, schemas, 0) {
                            found.push(format!("{at} {code}: {why}"));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Whether `schema` says what its value holds: a reference to a described component, a
/// composition of described schemas, an array of described items, an object with
/// properties, or a scalar.
fn described(schema: &Value, schemas: &Value, depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err("references nest too deep".into());
    }
    if let Some(r) = schema.get("$ref") {
        let r = r.as_str().unwrap_or_default();
        let name = r
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("`{r}` is not a component reference"))?;
        let target = schemas
            .get(name)
            .ok_or_else(|| format!("`{r}` is not among the components"))?;
        return described(target, schemas, depth + 1).map_err(|why| format!("{name}: {why}"));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema.get(key) {
            let parts = parts.as_array().filter(|p| !p.is_empty());
            let parts = parts.ok_or_else(|| format!("an empty {key}"))?;
            // salvo describes a referenced field as `allOf: [{$ref}, {description}]`: a member
            // of annotations only adds nothing to what the value holds.
            let shaping: Vec<&Value> = parts
                .iter()
                .filter(|p| key != "allOf" || !annotations_only(p))
                .collect();
            if shaping.is_empty() {
                return Err(format!("an {key} of annotations only"));
            }
            return shaping
                .into_iter()
                .try_for_each(|p| described(p, schemas, depth + 1));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"array") {
        return match schema.get("items") {
            Some(items) => described(items, schemas, depth + 1),
            None => Err("an array without items".into()),
        };
    }
    if types.is_empty() || types.contains(&"object") {
        let has_properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        return if has_properties {
            Ok(())
        } else {
            Err(format!("a bare object schema {schema}"))
        };
    }
    Ok(())
}

/// Schema keywords that annotate a value without saying what it holds.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Whether `schema` carries annotations only.
fn annotations_only(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|m| m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_json_response() {
    let s = Server::start(Backend::Sqlite).await;
    let (st, doc) = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    let paths = doc["paths"].as_object().map(|p| p.len()).unwrap_or(0);
    assert!(paths > 20, "the document lists only {paths} paths");
    // The routes this check was written for are in the document.
    for p in [
        "/api/v1/realms/{slug}/engines",
        "/api/v1/realms/{slug}/leases",
        "/api/v1/plugins",
        "/api/v1/audit/sinks",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from the document");
    }
    let found = undescribed_responses(&doc);
    assert!(
        found.is_empty(),
        "success responses without a described JSON schema:\n{}",
        found.join("\n")
    );
}

/// The check finds the undescribed responses a handler returning `Json<Value>` produced,
/// and lets described ones stand.
#[test]
fn the_openapi_check_finds_undescribed_responses() {
    let ok = |schema: Value| json!({"description": "ok", "content": {"application/json": {"schema": schema}}});
    let doc = json!({
        "paths": {
            "/bare": {"get": {"responses": {"200": ok(json!({"type": "object"}))}}},
            "/empty": {"get": {"responses": {"200": ok(json!({}))}}},
            "/none": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {}}}}}},
            "/dangling": {"get": {"responses": {"200": ok(json!({"$ref": "#/components/schemas/Gone"}))}}},
            "/to-bare": {"get": {"responses": {"200": ok(json!({"$ref": "#/components/schemas/Bare"}))}}},
            "/bare-items": {"get": {"responses": {"200": ok(json!({"type": "array", "items": {"type": "object"}}))}}},
            "/bare-variant": {"get": {"responses": {"200": ok(json!({"oneOf": [{"$ref": "#/components/schemas/Item"}, {"type": "object"}]}))}}},
            "/errors-only": {"get": {"responses": {"400": ok(json!({"type": "object"}))}}},
            "/typed": {
                "parameters": [],
                "get": {"responses": {"200": ok(json!({"$ref": "#/components/schemas/Item"}))}},
                "post": {"responses": {"201": ok(json!({"allOf": [{"$ref": "#/components/schemas/Item"}, {"type": "object", "properties": {"x": {}}}]}))}},
                "delete": {"responses": {"204": {"description": "gone"}}},
            },
            "/text": {"get": {"responses": {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/annotated": {"get": {"responses": {"200": ok(json!({"allOf": [{"$ref": "#/components/schemas/Item"}, {"description": "An item."}]}))}}},
            "/annotations-only": {"get": {"responses": {"200": ok(json!({"allOf": [{"description": "An item."}]}))}}},
            "/free-field": {"get": {"responses": {"200": ok(json!({"type": "object", "properties": {"data": {}}}))}}},
        },
        "components": {"schemas": {
            "Bare": {"type": "object"},
            "Item": {"type": "object", "properties": {"id": {"type": "string"}}},
        }},
    });
    let mut found = undescribed_responses(&doc);
    found.sort();
    assert_eq!(
        found,
        [
            "GET /annotations-only 200: an allOf of annotations only",
            "GET /bare 200: a bare object schema {\"type\":\"object\"}",
            "GET /bare-items 200: a bare object schema {\"type\":\"object\"}",
            "GET /bare-variant 200: a bare object schema {\"type\":\"object\"}",
            "GET /dangling 200: `#/components/schemas/Gone` is not among the components",
            "GET /empty 200: a bare object schema {}",
            "GET /errors-only: no success response",
            "GET /none 200: no schema",
            "GET /to-bare 200: Bare: a bare object schema {\"type\":\"object\"}",
        ]
    );
}
