//! Prints the dispatch overhead of an engine call: a fresh instance of a component plus one
//! export call with no I/O (the probe's `noop` mode), measured in-process one call at a
//! time, then with several concurrent callers.
//!
//! `cargo run --release -p arcan-engine --example plugin_dispatch -- PLUGINS_DIR [CALLS]`
//! (`PLUGINS_DIR` from `scripts/build-plugins`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arcan_audit::Auditor;
use arcan_config::Config;
use arcan_crypto::{FileKeyProvider, Keyring, generate_master_key_file};
use arcan_engine::registry::{Engines, MountHandle};
use arcan_plugin_host::CallInfo;
use arcan_store::prelude::*;
use arcan_store::{MountRecord, SqliteStore};

/// One `issue` in the probe's `noop` mode: an instance and an export call, no I/O.
async fn noop(
    engines: &Engines,
    handle: &MountHandle,
    info: &CallInfo,
) -> Result<arcan_plugin_host::Credential, arcan_plugin_host::CallError> {
    engines
        .call(handle, info.clone())
        .issue("{}".into(), r#"{"mode":"noop"}"#.into(), 60)
        .await
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let plugins = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: plugin_dispatch PLUGINS_DIR [CALLS]"))?;
    let calls: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let tmp = std::env::temp_dir().join(format!("arcan-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&tmp.join("db"), false).await?);
    generate_master_key_file(&tmp.join("master.key"))?;
    let keyring = Arc::new(Keyring::new(Arc::new(FileKeyProvider::load(
        &tmp.join("master.key"),
    )?)));
    let mut config = Config::default();
    config.plugins.dir = Some(plugins.into());
    config.plugins.cache_dir = Some(tmp.join("cache"));
    config.plugins.allow_unsigned = true;
    // Audit appends need the chain key; a bench has no system key, so any fixed one does.
    store.set_chain_key(arcan_crypto::ChainKey::derive(&[7; 32]));
    let lifecycle = arcan_lifecycle::Lifecycle::new();
    let audit = Auditor::start(
        store.clone(),
        1024,
        arcan_audit::AuditMode::Async,
        std::time::Duration::from_secs(5),
        &lifecycle,
    );
    let engines = Engines::new(&config, store, keyring, audit)?;
    let plugin = engines.load("probe")?;
    let record = MountRecord {
        id: "bench".into(),
        realm_id: "bench".into(),
        name: "bench".into(),
        plugin: "probe".into(),
        plugin_version: plugin.manifest.version.clone(),
        digest: plugin.digest.clone(),
        config: "{}".into(),
        grants: ["host:sql", "host:http", "host:store", "host:audit"]
            .map(String::from)
            .to_vec(),
        connections: "{}".into(),
        connections_sealed: Vec::new(),
        created_at: 0,
        created_by: "bench".into(),
        updated_at: 0,
    };
    let handle = Arc::new(engines.build("bench", record, plugin, BTreeMap::new())?);
    let engines = Arc::new(engines);
    let info = CallInfo {
        request_id: "bench".into(),
        ..CallInfo::default()
    };
    for _ in 0..1000 {
        noop(&engines, &handle, &info).await?;
    }
    let mut times = Vec::with_capacity(calls);
    let started = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        noop(&engines, &handle, &info).await?;
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    println!(
        "instantiate+call (noop, 1 caller): {calls} calls, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, {:.0} calls/s",
        pct(&times, 0.5),
        pct(&times, 0.9),
        pct(&times, 0.99),
        calls as f64 / total.as_secs_f64()
    );
    let workers = 4;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (engines, handle, info) = (engines.clone(), handle.clone(), info.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..calls / workers {
                noop(&engines, &handle, &info).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "instantiate+call (noop, {workers} concurrent callers): {:.0} calls/s",
        calls as f64 / started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
