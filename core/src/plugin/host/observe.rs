//! `log` and `audit`: what a plugin says, tagged by the host with who said it.

use serde_json::{Map, Value};

use super::HostState;
use super::bindings::arcan::plugin::{audit, log};
use crate::audit::{Actor, Event};
use crate::util::{new_id, now_ms, rfc3339};

/// Longest log line kept.
const MAX_LOG_BYTES: usize = 4096;
/// Most detail entries per audit event, and the longest key or value.
const MAX_DETAIL: usize = 32;
const MAX_DETAIL_BYTES: usize = 1024;

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An action name made safe: `[a-z0-9._-]`, at most 64 bytes.
fn action_name(s: &str) -> String {
    let cleaned: String = truncate(s, 64)
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "event".into()
    } else {
        cleaned
    }
}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let s = &self.scope;
        let msg = truncate(&message, MAX_LOG_BYTES);
        let (plugin, mount, realm, rid) = (&s.plugin, &s.mount, &s.realm, &self.call.request_id);
        match level {
            log::Level::Trace => {
                tracing::trace!(plugin = %plugin, mount = %mount, realm = %realm, request_id = %rid, "plugin: {msg}")
            }
            log::Level::Debug => {
                tracing::debug!(plugin = %plugin, mount = %mount, realm = %realm, request_id = %rid, "plugin: {msg}")
            }
            log::Level::Info => {
                tracing::info!(plugin = %plugin, mount = %mount, realm = %realm, request_id = %rid, "plugin: {msg}")
            }
            log::Level::Warn => {
                tracing::warn!(plugin = %plugin, mount = %mount, realm = %realm, request_id = %rid, "plugin: {msg}")
            }
            log::Level::Error => {
                tracing::error!(plugin = %plugin, mount = %mount, realm = %realm, request_id = %rid, "plugin: {msg}")
            }
        }
        Ok(())
    }
}

impl audit::Host for HostState {
    async fn emit(
        &mut self,
        action: String,
        target: String,
        detail: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let s = self.scope.clone();
        if !s.services.audit_enabled {
            return Ok(());
        }
        let quota = s.services.limits.quotas.audit_events_per_call;
        if self.used.audit_events >= quota {
            // `emit` has no error to return: the excess is dropped, and the drop itself is
            // logged and audited once per call, so the trail says that it is incomplete.
            self.used.audit_dropped += 1;
            if self.used.audit_dropped == 1 {
                tracing::warn!(plugin = %s.plugin, mount = %s.mount, realm = %s.realm,
                    request_id = %self.call.request_id,
                    "plugin exceeded its quota of {quota} audit events per call; the rest of this call's events are dropped");
                let mut fields = Map::new();
                fields.insert("limit".into(), Value::from(quota));
                self.emit_event(
                    "plugin.audit_quota_exceeded".into(),
                    s.plugin.clone(),
                    "failure",
                    fields,
                );
            }
            return Ok(());
        }
        self.used.audit_events += 1;
        let mut fields = Map::new();
        for (k, v) in detail.iter().take(MAX_DETAIL) {
            fields.insert(
                truncate(k, MAX_DETAIL_BYTES).to_owned(),
                Value::String(truncate(v, MAX_DETAIL_BYTES).to_owned()),
            );
        }
        fields.insert("source".into(), Value::String("plugin".into()));
        self.emit_event(
            format!("plugin.{}.{}", s.plugin, action_name(&action)),
            truncate(&target, MAX_DETAIL_BYTES).to_owned(),
            "success",
            fields,
        );
        Ok(())
    }
}

impl HostState {
    /// Hands an event of this call to the audit pipeline, tagged with the mount.
    fn emit_event(
        &self,
        action: String,
        target: String,
        outcome: &str,
        mut fields: Map<String, Value>,
    ) {
        let s = &self.scope;
        // The host's tags win over anything the plugin put in its detail.
        fields.insert("plugin".into(), Value::String(s.plugin.clone()));
        fields.insert("mount".into(), Value::String(s.mount.clone()));
        fields
            .entry("source")
            .or_insert_with(|| Value::String("host".into()));
        let now = now_ms();
        s.services.audit.emit(Event {
            id: new_id(),
            time: rfc3339(now),
            time_ms: now,
            request_id: Some(self.call.request_id.clone()),
            actor: self.call.actor(),
            realm_id: Some(s.realm_id.clone()),
            realm: Some(s.realm.clone()),
            action,
            target,
            outcome: outcome.into(),
            status: None,
            detail: Some(Value::Object(fields)),
        });
    }
}

impl crate::plugin::CallInfo {
    /// The audit actor of the call.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id.clone(),
            token_id: self.token_id.clone(),
            auth_method: if self.token_id.is_some() {
                "token"
            } else {
                "system"
            }
            .into(),
            ip: self.ip.clone(),
        }
    }
}
