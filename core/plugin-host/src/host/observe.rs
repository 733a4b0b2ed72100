//! `log` and `audit`: what a plugin says, tagged by the host with who said it.

use serde_json::{Map, Value};

use super::HostState;
use super::wit::latest::arcan::plugin::{audit, log};
use arcan_audit::{Actor, Event, Outcome};
use arcan_util::{new_id, now_ms, rfc3339};

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
    /// Emits a plugin event. Over the call's quota (events or bytes) the event is refused
    /// with a host error, which fails the call: the contract's `emit` returns nothing, so
    /// the refusal cannot be a value the plugin might ignore. The refusal is audited once.
    /// In strict mode the request that made the call is answered only once the plugin's
    /// events are durable.
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
        let quotas = s.services.limits.quotas;
        let mut fields = Map::new();
        let mut bytes = action.len().min(64) + target.len().min(MAX_DETAIL_BYTES);
        for (k, v) in detail.iter().take(MAX_DETAIL) {
            let (k, v) = (truncate(k, MAX_DETAIL_BYTES), truncate(v, MAX_DETAIL_BYTES));
            bytes += k.len() + v.len();
            fields.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let total = self.used.audit_bytes.saturating_add(bytes);
        if self.used.audit_events >= quotas.audit_events_per_call
            || total > quotas.audit_bytes_per_call
        {
            if !self.used.audit_refused {
                self.used.audit_refused = true;
                tracing::warn!(plugin = %s.plugin, mount = %s.mount, realm = %s.realm,
                    request_id = %self.call.request_id,
                    "plugin exceeded its audit quota of {} events / {} bytes per call; the call fails",
                    quotas.audit_events_per_call, quotas.audit_bytes_per_call);
                let mut f = Map::new();
                f.insert(
                    "max_events".into(),
                    Value::from(quotas.audit_events_per_call),
                );
                f.insert("max_bytes".into(), Value::from(quotas.audit_bytes_per_call));
                // Best effort: the call fails whether or not this report can be queued.
                let _ = self.emit_event(
                    "plugin.audit_quota_exceeded".into(),
                    s.plugin.clone(),
                    Outcome::Failure,
                    f,
                );
            }
            return Err(wasmtime::Error::msg(format!(
                "audit quota exceeded: at most {} events and {} bytes per call",
                quotas.audit_events_per_call, quotas.audit_bytes_per_call
            )));
        }
        self.used.audit_events += 1;
        self.used.audit_bytes = total;
        fields.insert("source".into(), Value::String("plugin".into()));
        self.emit_event(
            format!("plugin.{}.{}", s.plugin, action_name(&action)),
            truncate(&target, MAX_DETAIL_BYTES).to_owned(),
            Outcome::Success,
            fields,
        )
        .map_err(|e| wasmtime::Error::msg(format!("audit event refused: {e}")))
    }
}

impl HostState {
    /// Hands an event of this call to the audit pipeline, tagged with the mount; in strict
    /// mode its receipt goes to the request's change scope, which the request waits on.
    fn emit_event(
        &self,
        action: String,
        target: String,
        outcome: Outcome,
        mut fields: Map<String, Value>,
    ) -> Result<(), arcan_audit::NotDurable> {
        let s = &self.scope;
        // The host's tags win over anything the plugin put in its detail.
        fields.insert("plugin".into(), Value::String(s.plugin.clone()));
        fields.insert("mount".into(), Value::String(s.mount.clone()));
        fields
            .entry("source")
            .or_insert_with(|| Value::String("host".into()));
        let now = now_ms();
        let receipt = s.services.audit.side_event(Event {
            id: new_id(),
            time: rfc3339(now),
            time_ms: now,
            request_id: Some(self.call.request_id.clone()),
            actor: self.call.actor(),
            realm_id: Some(s.realm_id.to_string()),
            realm: Some(s.realm.clone()),
            action,
            target,
            outcome,
            status: None,
            detail: Some(Value::Object(fields)),
        })?;
        if let Some(r) = receipt {
            match arcan_store::change::ChangeScope::current() {
                Some(scope) => scope.add_receipt(r),
                // A call outside a request (the reaper's): nothing waits on it.
                None => drop(r),
            }
        }
        Ok(())
    }
}

impl crate::CallInfo {
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
            identity: None,
        }
    }
}
