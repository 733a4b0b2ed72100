//! `iam_user` credentials: a new IAM user with the role's policies and one access key,
//! deleted with everything attached to it on revoke. Nothing is left half-created: when a
//! step after `CreateUser` fails, the user is deleted again before the error is returned.

use std::time::Duration;

use arcan_plugin_sdk::serde_json::{Value, json};
use arcan_plugin_sdk::{Context, Credential, Error, Result, log};

use crate::api::{Api, Failure};
use crate::config::{Lease, generate_name};

/// The name of the inline policy put on users whose role has a `policy_document`.
pub const INLINE_POLICY: &str = "arcan-inline";

/// What an `iam_user` role grants.
#[derive(Debug, Clone, Copy)]
pub struct Grants<'a> {
    /// Managed policies to attach.
    pub policy_arns: &'a [String],
    /// Inline policy document.
    pub policy_document: Option<&'a Value>,
    /// IAM path of the user.
    pub path: &'a str,
}

/// Creates the user, attaches the policies, creates an access key. Data: the key (and
/// the user name); state: the user name and key id, for revoke.
pub fn issue(
    api: Api<'_>,
    ctx: &Context,
    prefix: &str,
    grants: Grants<'_>,
    ttl: Duration,
) -> Result<Credential<Lease>> {
    let role = ctx.role.as_deref().unwrap_or_default();
    let username = generate_name(prefix, role)?;
    let tags = [
        ("Tags.member.1.Key", "arcan:realm"),
        ("Tags.member.1.Value", ctx.realm.as_str()),
        ("Tags.member.2.Key", "arcan:mount"),
        ("Tags.member.2.Value", ctx.mount.as_str()),
        ("Tags.member.3.Key", "arcan:role"),
        ("Tags.member.3.Value", role),
    ];
    let mut params = vec![("UserName", username.as_str()), ("Path", grants.path)];
    params.extend(tags);
    if let Err(e) = api.iam("CreateUser", &params) {
        // A timeout may hide a user that was created all the same: try to delete it, and
        // report the original failure either way.
        if e.effect_unknown()
            && let Err(c) = delete_user(api, &username)
        {
            log::warn(&format!(
                "CreateUser for {username} failed ({e}); it may exist: deleting it failed too: {c}"
            ));
        }
        return Err(e.into());
    }
    log::info(&format!("created IAM user {username}"));
    match grant_and_key(api, &username, grants) {
        Ok((access_key_id, secret_access_key)) => Ok(Credential::new(
            json!({
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
                "username": username,
            }),
            ttl,
        )
        .state(Lease::IamUser {
            username,
            access_key_id,
        })),
        Err(e) => Err(cleanup(api, &username, e)),
    }
}

/// Policies, then the access key: `(access key id, secret access key)`.
fn grant_and_key(
    api: Api<'_>,
    username: &str,
    grants: Grants<'_>,
) -> Result<(String, String), Failure> {
    for arn in grants.policy_arns {
        api.iam(
            "AttachUserPolicy",
            &[("UserName", username), ("PolicyArn", arn)],
        )?;
    }
    if let Some(doc) = grants.policy_document {
        api.iam(
            "PutUserPolicy",
            &[
                ("UserName", username),
                ("PolicyName", INLINE_POLICY),
                ("PolicyDocument", &doc.to_string()),
            ],
        )?;
    }
    let doc = api.iam("CreateAccessKey", &[("UserName", username)])?;
    let field = |name: &str| {
        doc.first(&["AccessKey", name])
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Malformed {
                action: "CreateAccessKey",
                why: format!("no AccessKey/{name}"),
            })
    };
    Ok((field("AccessKeyId")?, field("SecretAccessKey")?))
}

/// Deletes a user that was being created after `failure`; the error says whether the
/// cleanup worked too.
fn cleanup(api: Api<'_>, username: &str, failure: Failure) -> Error {
    let error = Error::from(failure);
    match delete_user(api, username) {
        Ok(()) => {
            log::warn(&format!(
                "issuing failed, IAM user {username} deleted again: {}",
                error.message()
            ));
            error
        }
        Err(c) => {
            log::error(&format!(
                "issuing failed and IAM user {username} could not be deleted: {c}"
            ));
            let combined = Error::new(
                error.kind(),
                format!(
                    "{}; deleting the partly created IAM user {username} also failed: {c}",
                    error.message()
                ),
            );
            // A throttled call keeps its retry hint.
            match error.retry_after() {
                Some(after) => combined.with_retry_after(after),
                None => combined,
            }
        }
    }
}

/// Revokes the credential whose lease state is `lease`.
pub fn revoke(api: Api<'_>, lease: &Lease) -> Result<()> {
    let username = match lease {
        Lease::IamUser { username, .. } if !username.is_empty() => username,
        _ => return Err(Error::internal("the lease's state names no IAM user")),
    };
    delete_user(api, username)?;
    log::info(&format!("deleted IAM user {username}"));
    Ok(())
}

/// Deletes every access key, detaches every managed policy, deletes every inline policy,
/// then deletes the user. A user (or key, or policy) that is already gone is fine.
pub fn delete_user(api: Api<'_>, username: &str) -> Result<(), Failure> {
    let user = [("UserName", username)];
    let Some(keys) = gone_is_none(api.iam_list(
        "ListAccessKeys",
        &user,
        &["AccessKeyMetadata", "member", "AccessKeyId"],
    ))?
    else {
        return Ok(());
    };
    for key in &keys {
        gone_is_none(api.iam(
            "DeleteAccessKey",
            &[("UserName", username), ("AccessKeyId", key)],
        ))?;
    }
    let Some(attached) = gone_is_none(api.iam_list(
        "ListAttachedUserPolicies",
        &user,
        &["AttachedPolicies", "member", "PolicyArn"],
    ))?
    else {
        return Ok(());
    };
    for arn in &attached {
        gone_is_none(api.iam(
            "DetachUserPolicy",
            &[("UserName", username), ("PolicyArn", arn)],
        ))?;
    }
    let Some(inline) =
        gone_is_none(api.iam_list("ListUserPolicies", &user, &["PolicyNames", "member"]))?
    else {
        return Ok(());
    };
    for name in &inline {
        gone_is_none(api.iam(
            "DeleteUserPolicy",
            &[("UserName", username), ("PolicyName", name)],
        ))?;
    }
    gone_is_none(api.iam("DeleteUser", &user))?;
    Ok(())
}

/// `NoSuchEntity` (already deleted) becomes `Ok(None)`.
fn gone_is_none<T>(r: Result<T, Failure>) -> Result<Option<T>, Failure> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_code("NoSuchEntity") => Ok(None),
        Err(e) => Err(e),
    }
}
