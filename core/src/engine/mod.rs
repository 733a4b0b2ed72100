//! Secret engines. This build has the built-in KV engine; WASM engines come with the plugin
//! runtime.

pub mod kv;
