//! `aws`: an Arcan engine that issues AWS credentials, built with the plugin SDK.
//!
//! Two kinds of credential, chosen by the role's `credential_type`:
//! - `iam_user` ([`iam`]): a new IAM user with managed and/or inline policies and an access
//!   key; revoke deletes the key, the policies and the user.
//! - `assumed_role` ([`sts`]): STS `AssumeRole` session credentials of an existing role;
//!   they expire by themselves (not renewable, not revocable).
//!
//! Every AWS call goes through a host-held `http` connection whose `aws_sigv4` auth
//! profile signs it ([`api`]); root rotation asks the host to replace that connection's
//! access key. The engine never sees the root keys, keeps no state (a lease's user name
//! is its sealed [`State`](arcan_plugin_sdk::Engine::State), [`config::Lease`]), and only
//! needs `host:http`.
//!
//! It is not an AWS SDK: it speaks the few IAM and STS query-API actions it needs, reads
//! their XML answers ([`xml`]) and nothing else.

mod api;
mod config;
mod iam;
mod sts;
mod xml;

use arcan_plugin_sdk::prelude::*;
use arcan_plugin_sdk::{http, log};

use crate::api::Api;
use crate::config::{Config, Lease, Role};

#[derive(Default)]
struct Aws;

impl Engine for Aws {
    type Config = Config;
    type Role = Role;
    type State = Lease;

    fn describe(&self) -> Descriptor {
        // The schemas are derived from Config and Role.
        Descriptor::new("aws", env!("CARGO_PKG_VERSION"))
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
    }

    fn configure(&self, _: &Context, config: Config) -> Result<Config> {
        config.validate()?;
        Ok(config)
    }

    fn validate_role(&self, _: &Context, _: &Config, role: Role) -> Result<Role> {
        role.normalise()
    }

    fn issue(
        &self,
        ctx: &Context,
        config: &Config,
        role: &Role,
        ttl: Duration,
    ) -> Result<Credential<Lease>> {
        let api = Api::new(&config.connection);
        match role {
            Role::IamUser {
                policy_arns,
                policy_document,
                path,
            } => {
                let grants = iam::Grants {
                    policy_arns,
                    policy_document: policy_document.as_ref(),
                    path,
                };
                iam::issue(api, ctx, &config.username_prefix, grants, ttl)
            }
            Role::AssumedRole {
                role_arn,
                session_policy,
            } => sts::assume_role(
                api,
                ctx,
                &config.username_prefix,
                role_arn,
                session_policy.as_ref(),
                ttl,
            ),
        }
    }

    fn renew(
        &self,
        _: &Context,
        _: &Config,
        role: &Role,
        _: &Lease,
        ttl: Duration,
    ) -> Result<Duration> {
        match role {
            // The user lives until revoked: renewing only moves the lease's expiry.
            Role::IamUser { .. } => Ok(ttl),
            Role::AssumedRole { .. } => Err(Error::conflict(
                "assumed_role credentials cannot be renewed: request new ones",
            )),
        }
    }

    fn revoke(&self, _: &Context, config: &Config, role: &Role, lease: &Lease) -> Result<()> {
        match role {
            Role::IamUser { .. } => iam::revoke(Api::new(&config.connection), lease),
            // STS sessions cannot be ended; the host never asks (revocable: false), and
            // when it does anyway (an issue it could not record) there is nothing to undo.
            Role::AssumedRole { .. } => Ok(()),
        }
    }

    fn rotate_root(&self, _: &Context, config: &Config) -> Result<()> {
        http::rotate_root(&config.connection).map_err(|e| {
            let message = format!(
                "rotating the access key of connection `{}`: {}",
                config.connection,
                e.message()
            );
            Error::new(Error::from(e).kind(), message)
        })?;
        log::info(&format!(
            "rotated the access key of connection {}",
            config.connection
        ));
        Ok(())
    }
}

arcan_plugin_sdk::export_engine!(Aws);
