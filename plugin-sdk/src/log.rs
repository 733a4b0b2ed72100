//! Log lines from the engine, written by the host into its log with the plugin's name
//! (WIT import `arcan:plugin/log`; no capability needed). Lines longer than the host's
//! limit are truncated. Never log a secret.
//!
//! Text the engine prints to stdout or stderr (`println!`, a panic message) also reaches
//! the host, which decides what to do with it; these functions say the level.
//!
//! ```no_run
//! arcan_plugin_sdk::log::info("created user app_x");
//! ```

use crate::__private::arcan::plugin::log::{Level, write};

/// Writes a trace line.
pub fn trace(message: &str) {
    write(Level::Trace, message);
}

/// Writes a debug line.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes an info line.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes a warning line.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes an error line.
pub fn error(message: &str) {
    write(Level::Error, message);
}
