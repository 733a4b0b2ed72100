//! Audit events from the engine (capability `host:audit`, WIT import
//! `arcan:plugin/audit`).
//!
//! The host adds the plugin name, mount, realm, request id and actor, namespaces the
//! action under `plugin.<name>.`, and hands the event to the audit pipeline. Never put a
//! secret (a password, a key) in an event.

use crate::__private::arcan::plugin::audit as wit;

/// Emits one event: `action` (e.g. `create-user`), its `target` (e.g. the user name) and
/// key-value details.
///
/// ```no_run
/// arcan_plugin_sdk::audit::emit("create-user", "app_x", &[("role", "reader")]);
/// ```
pub fn emit(action: &str, target: &str, detail: &[(&str, &str)]) {
    let detail: Vec<(String, String)> = detail
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wit::emit(action, target, &detail);
}
