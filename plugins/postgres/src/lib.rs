//! `postgres`: an Arcan engine that issues PostgreSQL dynamic credentials. Every lease is a
//! database role of its own, created from the role's templates with a generated name and
//! password and an expiration (`VALID UNTIL`); renewing moves the expiration, revoking ends
//! the user's sessions and drops it. Root rotation asks the host to change the password of
//! the connection's own user, which the engine never sees.
//!
//! It talks to the database only through the host's `sql` functions on a named connection
//! (capability `host:sql`) and records what it creates and drops in the audit log
//! (`host:audit`). It is not a static-role engine: it does not manage or rotate the
//! passwords of existing users. See `README.md` for configuration and roles.

mod clock;
mod config;
mod db;
mod names;
mod role;
mod template;

use arcan_plugin_sdk::prelude::*;
use arcan_plugin_sdk::{audit, sql};

use config::MountConfig;
use role::RoleDef;
use template::Values;

#[derive(Default)]
struct Postgres;

fn username_of(internal: &Value) -> Result<&str> {
    internal
        .get("username")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::invalid("the lease carries no database user name"))
}

impl Engine for Postgres {
    fn describe(&self) -> Descriptor {
        let statements = json!({"type": "array", "minItems": 1, "items": {"type": "string"}});
        Descriptor::new("postgres", env!("CARGO_PKG_VERSION"))
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "connection": {"type": "string", "default": "db"},
                    "username_prefix": {"type": "string", "pattern": "^[a-z0-9_]{0,16}$", "default": "arcan_"},
                    "password_length": {"type": "integer", "minimum": 16, "maximum": 128, "default": 32},
                },
            }))
            .role_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "creation_statements": statements,
                    "grants": {"type": "array", "items": {"type": "string"}},
                    "revocation_statements": statements,
                    "renew_statements": statements,
                },
            }))
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
    }

    fn configure(&self, _: &Context, config: Value) -> Result<Value> {
        Ok(MountConfig::parse(&config)?.to_json())
    }

    fn validate_role(&self, _: &Context, config: &Value, role: Value) -> Result<Value> {
        MountConfig::parse(config)?;
        Ok(RoleDef::parse(&role)?.to_json())
    }

    fn issue(
        &self,
        ctx: &Context,
        config: &Value,
        role: &Value,
        ttl: Duration,
    ) -> Result<Credential> {
        let config = MountConfig::parse(config)?;
        let def = RoleDef::parse(role)?;
        let role_name = ctx.role.as_deref().unwrap_or_default();
        let username = names::username(&config.username_prefix, role_name)?;
        let password = names::password(config.password_length)?;
        let expiration = clock::expiration(ttl)?;
        let statements = def.creation(&Values {
            name: &username,
            password: Some(&password),
            expiration: Some(&expiration),
        })?;
        db::run(&config.connection, statements)
            .map_err(|e| db::failed("creating the database user failed", e, Some(&password)))?;
        audit::emit(
            "issue",
            &username,
            &[("role", role_name), ("valid_until", &expiration)],
        );
        Ok(
            Credential::new(json!({"username": username, "password": password}), ttl)
                .internal(json!({"username": username})),
        )
    }

    fn renew(
        &self,
        _: &Context,
        config: &Value,
        role: &Value,
        internal: &Value,
        ttl: Duration,
    ) -> Result<Duration> {
        let config = MountConfig::parse(config)?;
        let def = RoleDef::parse(role)?;
        let username = username_of(internal)?;
        let expiration = clock::expiration(ttl)?;
        let statements = def.renewal(&Values {
            name: username,
            password: None,
            expiration: Some(&expiration),
        })?;
        if let Err(e) = db::run(&config.connection, statements) {
            if !db::role_exists(&config.connection, username)? {
                return Err(Error::conflict(format!(
                    "the database user {username} no longer exists"
                )));
            }
            return Err(db::failed("renewing the database user failed", e, None));
        }
        Ok(ttl)
    }

    fn revoke(&self, _: &Context, config: &Value, role: &Value, internal: &Value) -> Result<()> {
        let config = MountConfig::parse(config)?;
        let def = RoleDef::parse(role)?;
        let username = username_of(internal)?;
        // Dropped by hand already: nothing left to revoke.
        if !db::role_exists(&config.connection, username)? {
            audit::emit("revoke", username, &[("already_gone", "true")]);
            return Ok(());
        }
        let statements = def.revocation(&Values {
            name: username,
            ..Values::default()
        })?;
        if let Err(e) = db::run(&config.connection, statements) {
            // Dropped concurrently: the revocation is done all the same.
            if db::role_exists(&config.connection, username)? {
                return Err(db::failed("revoking the database user failed", e, None));
            }
        }
        audit::emit("revoke", username, &[]);
        Ok(())
    }

    fn rotate_root(&self, _: &Context, config: &Value) -> Result<()> {
        let config = MountConfig::parse(config)?;
        sql::rotate_root(&config.connection)
            .map_err(|e| db::failed("rotating the root credential failed", e, None))?;
        audit::emit("rotate-root", &config.connection, &[]);
        Ok(())
    }
}

arcan_plugin_sdk::export_engine!(Postgres);
