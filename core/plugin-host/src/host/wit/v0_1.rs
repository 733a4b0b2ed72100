//! `arcan:plugin@0.1.0`, the first released contract. Its host traits convert to the
//! newest bindings ([`latest`](super::latest)) and call their implementation, so a fix or a
//! limit in a host function holds for 0.1.0 components too. Its engine values convert to
//! the version-neutral model: capability strings are parsed (unknown ones are dropped with
//! a warning), and errors carry no retry hint.

use std::collections::BTreeSet;

use wasmtime::component::{HasSelf, Linker};

use super::latest;
use crate::host::{HostState, truncate};
use crate::manifest::HostCapability;
use crate::model::{self, HostFault};

wasmtime::component::bindgen!({
    path: "../../wit/arcan-plugin-0.1.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "arcan:plugin/types.host-error" => crate::model::HostFault,
    },
});

use self::arcan::plugin::{audit, http, log, plugin_data, sql, types};
use self::exports::arcan::plugin::engine;

super::same_in_every_version!();

/// Links `types`, `log` and the granted interfaces.
pub fn link(
    linker: &mut Linker<HostState>,
    grants: &BTreeSet<HostCapability>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    log::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    for cap in grants {
        match cap {
            HostCapability::Sql => sql::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?,
            HostCapability::Http => http::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?,
            HostCapability::Store => {
                plugin_data::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?
            }
            HostCapability::Audit => audit::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?,
        }
    }
    Ok(())
}

// Host functions: convert, then run the newest implementation.

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        use latest::arcan::plugin::log::Level as L;
        let level = match level {
            log::Level::Trace => L::Trace,
            log::Level::Debug => L::Debug,
            log::Level::Info => L::Info,
            log::Level::Warn => L::Warn,
            log::Level::Error => L::Error,
        };
        latest::arcan::plugin::log::Host::write(self, level, message).await
    }
}

impl audit::Host for HostState {
    async fn emit(
        &mut self,
        action: String,
        target: String,
        detail: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        latest::arcan::plugin::audit::Host::emit(self, action, target, detail).await
    }
}

impl plugin_data::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostFault> {
        latest::arcan::plugin::plugin_data::Host::get(self, key).await
    }

    async fn put(&mut self, key: String, value: Vec<u8>) -> Result<(), HostFault> {
        latest::arcan::plugin::plugin_data::Host::put(self, key, value).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, HostFault> {
        latest::arcan::plugin::plugin_data::Host::delete(self, key).await
    }

    async fn list(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, HostFault> {
        latest::arcan::plugin::plugin_data::Host::list(self, prefix, limit).await
    }
}

type LatestValue = latest::arcan::plugin::sql::Value;

fn value_to_latest(v: sql::Value) -> LatestValue {
    match v {
        sql::Value::Null => LatestValue::Null,
        sql::Value::Boolean(b) => LatestValue::Boolean(b),
        sql::Value::Int(i) => LatestValue::Int(i),
        sql::Value::Float(f) => LatestValue::Float(f),
        sql::Value::Text(s) => LatestValue::Text(s),
        sql::Value::Bytes(b) => LatestValue::Bytes(b),
    }
}

fn value_from_latest(v: LatestValue) -> sql::Value {
    match v {
        LatestValue::Null => sql::Value::Null,
        LatestValue::Boolean(b) => sql::Value::Boolean(b),
        LatestValue::Int(i) => sql::Value::Int(i),
        LatestValue::Float(f) => sql::Value::Float(f),
        LatestValue::Text(s) => sql::Value::Text(s),
        LatestValue::Bytes(b) => sql::Value::Bytes(b),
    }
}

fn values_to_latest(params: Vec<sql::Value>) -> Vec<LatestValue> {
    params.into_iter().map(value_to_latest).collect()
}

impl sql::Host for HostState {
    async fn query(
        &mut self,
        connection: String,
        sql_text: String,
        params: Vec<sql::Value>,
    ) -> Result<sql::Rows, HostFault> {
        let rows = latest::arcan::plugin::sql::Host::query(
            self,
            connection,
            sql_text,
            values_to_latest(params),
        )
        .await?;
        Ok(sql::Rows {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(value_from_latest).collect())
                .collect(),
        })
    }

    async fn execute(
        &mut self,
        connection: String,
        sql_text: String,
        params: Vec<sql::Value>,
    ) -> Result<u64, HostFault> {
        latest::arcan::plugin::sql::Host::execute(
            self,
            connection,
            sql_text,
            values_to_latest(params),
        )
        .await
    }

    async fn transaction(
        &mut self,
        connection: String,
        statements: Vec<sql::Statement>,
    ) -> Result<Vec<u64>, HostFault> {
        let statements = statements
            .into_iter()
            .map(|s| latest::arcan::plugin::sql::Statement {
                sql: s.sql,
                params: values_to_latest(s.params),
            })
            .collect();
        latest::arcan::plugin::sql::Host::transaction(self, connection, statements).await
    }

    async fn rotate_root(&mut self, connection: String) -> Result<(), HostFault> {
        latest::arcan::plugin::sql::Host::rotate_root(self, connection).await
    }
}

impl http::Host for HostState {
    async fn send(
        &mut self,
        connection: String,
        request: http::Request,
    ) -> Result<http::Response, HostFault> {
        let request = latest::arcan::plugin::http::Request {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
        };
        let r = latest::arcan::plugin::http::Host::send(self, connection, request).await?;
        Ok(http::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }

    async fn rotate_root(&mut self, connection: String) -> Result<(), HostFault> {
        latest::arcan::plugin::http::Host::rotate_root(self, connection).await
    }
}

// Engine values: to the version-neutral model.

impl From<types::EngineError> for model::EngineFailure {
    fn from(e: types::EngineError) -> Self {
        use model::ErrorKind as K;
        use types::ErrorKind as W;
        let kind = match e.kind {
            W::InvalidInput => K::InvalidInput,
            W::NotFound => K::NotFound,
            W::Conflict => K::Conflict,
            W::Denied => K::Denied,
            W::Unsupported => K::Unsupported,
            W::Upstream => K::Upstream,
            W::Internal => K::Internal,
        };
        model::EngineFailure {
            kind,
            message: e.message,
            retry_after: None,
        }
    }
}

impl From<engine::Descriptor> for model::Descriptor {
    fn from(d: engine::Descriptor) -> Self {
        // At most one of each, in a fixed order; unknown strings are counted and logged
        // once, with one of them (bounded), however many the guest sent.
        let mut capabilities = BTreeSet::new();
        let (mut unknown, mut sample) = (0usize, None);
        for s in &d.capabilities {
            match model::EngineCapability::parse(s) {
                Some(c) => {
                    capabilities.insert(c);
                }
                None => {
                    unknown += 1;
                    sample.get_or_insert(s);
                }
            }
        }
        if let Some(s) = sample {
            tracing::warn!(engine = ?truncate(&d.name, 64), unknown, example = ?truncate(s, 64),
                "an arcan:plugin@0.1.0 engine describes capabilities this host does not know; ignored");
        }
        let capabilities = capabilities.into_iter().collect();
        model::Descriptor {
            config_schema: super::parse_schema(&d.config_schema),
            role_schema: super::parse_schema(&d.role_schema),
            name: d.name,
            version: d.version,
            capabilities,
        }
    }
}
