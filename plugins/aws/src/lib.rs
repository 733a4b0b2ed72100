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
//! is its sealed `internal` state), and only needs `host:http`.
//!
//! It is not an AWS SDK: it speaks the few IAM and STS query-API actions it needs, reads
//! their XML answers ([`xml`]) and nothing else.

mod api;
mod config;
mod iam;
mod names;
mod sts;
mod xml;

use arcan_plugin_sdk::prelude::*;
use arcan_plugin_sdk::{http, log};

use crate::api::Api;
use crate::config::{Config, Role};

#[derive(Default)]
struct Aws;

impl Engine for Aws {
    fn describe(&self) -> Descriptor {
        Descriptor::new("aws", env!("CARGO_PKG_VERSION"))
            .config_schema(config_schema())
            .role_schema(role_schema())
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
    }

    fn configure(&self, _: &Context, config: Value) -> Result<Value> {
        Ok(Config::parse(&config)?.to_value())
    }

    fn validate_role(&self, _: &Context, config: &Value, role: Value) -> Result<Value> {
        Config::parse(config)?;
        Ok(Role::parse(&role)?.to_value())
    }

    fn issue(
        &self,
        ctx: &Context,
        config: &Value,
        role: &Value,
        ttl: Duration,
    ) -> Result<Credential> {
        let config = Config::parse(config)?;
        let api = Api::new(&config.connection);
        match Role::parse(role)? {
            Role::IamUser {
                policy_arns,
                policy_document,
                path,
            } => {
                let grants = iam::Grants {
                    policy_arns: &policy_arns,
                    policy_document: policy_document.as_ref(),
                    path: &path,
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
                &role_arn,
                session_policy.as_ref(),
                ttl,
            ),
        }
    }

    fn renew(
        &self,
        _: &Context,
        _: &Value,
        role: &Value,
        _: &Value,
        ttl: Duration,
    ) -> Result<Duration> {
        match Role::parse(role)? {
            // The user lives until revoked: renewing only moves the lease's expiry.
            Role::IamUser { .. } => Ok(ttl),
            Role::AssumedRole { .. } => Err(Error::conflict(
                "assumed_role credentials cannot be renewed: request new ones",
            )),
        }
    }

    fn revoke(&self, _: &Context, config: &Value, role: &Value, internal: &Value) -> Result<()> {
        let config = Config::parse(config)?;
        match Role::parse(role)? {
            Role::IamUser { .. } => iam::revoke(Api::new(&config.connection), internal),
            // STS sessions cannot be ended; the host never asks (revocable: false), and
            // when it does anyway (an issue it could not record) there is nothing to undo.
            Role::AssumedRole { .. } => Ok(()),
        }
    }

    fn rotate_root(&self, _: &Context, config: &Value) -> Result<()> {
        let config = Config::parse(config)?;
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

fn config_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "connection": {
                "type": "string", "default": "aws", "pattern": "^[a-z0-9-]{1,64}$",
                "description": "http connection of the mount with the aws_sigv4 auth profile",
            },
            "username_prefix": {
                "type": "string", "default": "arcan-", "pattern": "^[A-Za-z0-9+=,.@_-]{0,32}$",
                "description": "start of generated IAM user names and STS session names",
            },
        },
    })
}

fn role_schema() -> Value {
    let policy = json!({"type": ["object", "string"], "description": "IAM policy document (JSON object, or a string holding one)"});
    json!({
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["credential_type"],
                "anyOf": [{"required": ["policy_arns"]}, {"required": ["policy_document"]}],
                "properties": {
                    "credential_type": {"const": "iam_user"},
                    "policy_arns": {"type": "array", "maxItems": 20, "items": {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/.+$"}},
                    "policy_document": policy,
                    "path": {"type": "string", "default": "/", "pattern": "^/([!-~]*/)?$"},
                },
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["credential_type", "role_arn"],
                "properties": {
                    "credential_type": {"const": "assumed_role"},
                    "role_arn": {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"},
                    "session_policy": policy,
                },
            },
        ],
    })
}

arcan_plugin_sdk::export_engine!(Aws);
