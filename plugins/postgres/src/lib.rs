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
mod role;
mod template;

use arcan_plugin_sdk::prelude::*;
use arcan_plugin_sdk::{audit, random, sql};
use serde::{Deserialize, Serialize};

use config::{MountConfig, NAMES};
use role::RoleDef;
use template::Values;

#[derive(Default)]
struct Postgres;

/// What a lease keeps: the database user it created.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    username: String,
}

impl Lease {
    fn username(&self) -> Result<&str> {
        if self.username.is_empty() {
            return Err(Error::invalid("the lease carries no database user name"));
        }
        Ok(&self.username)
    }
}

impl Engine for Postgres {
    type Config = MountConfig;
    type Role = RoleDef;
    type State = Lease;

    fn describe(&self) -> Descriptor {
        // The schemas are derived from MountConfig and RoleDef.
        Descriptor::new("postgres", env!("CARGO_PKG_VERSION"))
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
    }

    fn configure(&self, _: &Context, config: MountConfig) -> Result<MountConfig> {
        config.validate()?;
        Ok(config)
    }

    fn validate_role(&self, _: &Context, _: &MountConfig, role: RoleDef) -> Result<RoleDef> {
        role.validate()?;
        Ok(role)
    }

    fn issue(
        &self,
        ctx: &Context,
        config: &MountConfig,
        def: &RoleDef,
        ttl: Duration,
    ) -> Result<Credential<Lease>> {
        // Stored documents outlive engine versions: check them again on every use.
        config.validate()?;
        def.validate()?;
        let role_name = ctx.role.as_deref().unwrap_or_default();
        let username = NAMES.generate(&config.username_prefix, role_name)?;
        let password = random::password(config.password_length)?;
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
                .state(Lease { username }),
        )
    }

    fn renew(
        &self,
        _: &Context,
        config: &MountConfig,
        def: &RoleDef,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Duration> {
        // Stored documents outlive engine versions: check them again on every use.
        config.validate()?;
        def.validate()?;
        let username = lease.username()?;
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

    fn revoke(
        &self,
        _: &Context,
        config: &MountConfig,
        def: &RoleDef,
        lease: &Lease,
    ) -> Result<()> {
        // Stored documents outlive engine versions: check them again on every use.
        config.validate()?;
        def.validate()?;
        let username = lease.username()?;
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

    fn rotate_root(&self, _: &Context, config: &MountConfig) -> Result<()> {
        config.validate()?;
        sql::rotate_root(&config.connection)
            .map_err(|e| db::failed("rotating the root credential failed", e, None))?;
        audit::emit("rotate-root", &config.connection, &[]);
        Ok(())
    }
}

arcan_plugin_sdk::export_engine!(Postgres);
