//! The smallest engine: greets the role it is asked a credential for.
//! Build it: `cargo build --release --target wasm32-wasip2 -p arcan-plugin-sdk --example hello`.
use arcan_plugin_sdk::prelude::*;

/// Keeps no state: the host makes a fresh one for every call.
#[derive(Default)]
struct Hello;

impl Engine for Hello {
    type Config = NoConfig; // mounted with `{}`, nothing else
    type Role = NoRole; // roles are `{}`: the role's name is in the context
    type State = (); // nothing to remember per lease

    fn describe(&self) -> Descriptor {
        Descriptor::new("hello", "0.1.0").capability(Capability::DynamicCredentials)
    }

    fn issue(&self, ctx: &Context, _: &NoConfig, _: &NoRole, ttl: Duration) -> Result<Credential> {
        let role = ctx.role.as_deref().unwrap_or("stranger");
        Ok(Credential::new(
            json!({ "greeting": format!("hello {role}") }),
            ttl,
        ))
    }
}

arcan_plugin_sdk::export_engine!(Hello);
