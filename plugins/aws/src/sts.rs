//! `assumed_role` credentials: STS `AssumeRole` on an existing IAM role. The session
//! lasts the lease's ttl (900 s to 12 h); AWS offers no way to end it early, so the
//! credential is neither renewable nor revocable: it expires by itself.

use std::time::Duration;

use arcan_plugin_sdk::serde_json::{Value, json};
use arcan_plugin_sdk::{Context, Credential, Error, Result, log};

use crate::api::{Api, Failure, Service};
use crate::config::{Lease, generate_name};

/// Shortest session STS grants.
pub const MIN_SESSION: u64 = 900;
/// Longest session STS grants (the role's `MaxSessionDuration` may be lower).
pub const MAX_SESSION: u64 = 43_200;

/// The session length for a requested ttl: at most [`MAX_SESSION`]; a ttl below
/// [`MIN_SESSION`] is refused.
pub fn session_seconds(ttl: Duration) -> Result<u64> {
    let secs = ttl.as_secs();
    if secs < MIN_SESSION {
        return Err(Error::invalid(format!(
            "assumed_role credentials live at least {MIN_SESSION}s (15m), the shortest STS session; \
             ask for a ttl of 15m or more (or raise the role's default_ttl)"
        )));
    }
    Ok(secs.min(MAX_SESSION))
}

/// Assumes `role_arn` for the ttl (clamped), narrowed by `session_policy` when given.
pub fn assume_role(
    api: Api<'_>,
    ctx: &Context,
    prefix: &str,
    role_arn: &str,
    session_policy: Option<&Value>,
    ttl: Duration,
) -> Result<Credential<Lease>> {
    let seconds = session_seconds(ttl)?;
    let session = generate_name(prefix, ctx.role.as_deref().unwrap_or_default())?;
    let duration = seconds.to_string();
    let policy = session_policy.map(Value::to_string);
    let mut params = vec![
        ("RoleArn", role_arn),
        ("RoleSessionName", session.as_str()),
        ("DurationSeconds", duration.as_str()),
    ];
    if let Some(p) = policy.as_deref() {
        params.push(("Policy", p));
    }
    let doc = api.call(Service::Sts, "AssumeRole", &params)?;
    let field = |path: &[&str]| {
        doc.first(path)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Malformed {
                action: "AssumeRole",
                why: format!("no {}", path.join("/")),
            })
    };
    let data = json!({
        "access_key_id": field(&["Credentials", "AccessKeyId"])?,
        "secret_access_key": field(&["Credentials", "SecretAccessKey"])?,
        "session_token": field(&["Credentials", "SessionToken"])?,
        "expiration": field(&["Credentials", "Expiration"])?,
        "arn": doc.first(&["AssumedRoleUser", "Arn"]),
    });
    log::info(&format!(
        "assumed {role_arn} as session {session} for {seconds}s"
    ));
    Ok(Credential::new(data, Duration::from_secs(seconds))
        .renewable(false)
        .revocable(false)
        .state(Lease::AssumedRole {
            role_arn: role_arn.to_owned(),
            session_name: session,
        }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arcan_plugin_sdk::ErrorKind;

    #[test]
    fn sessions_are_clamped() {
        let s = |n| session_seconds(Duration::from_secs(n));
        assert_eq!(s(900).unwrap(), 900);
        assert_eq!(s(3600).unwrap(), 3600);
        assert_eq!(s(100_000).unwrap(), MAX_SESSION);
        let e = s(899).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("at least 900s"), "{e}");
    }
}
