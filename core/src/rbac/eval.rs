//! Evaluation of a request against a principal's grants in one realm.

use super::Capability;

/// An optional narrowing to one environment and a key glob; roles and token ceilings
/// both carry one.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this environment.
    pub env: Option<String>,
    /// Only keys matching this glob (`*` does not cross `/`; `**` does).
    pub key_glob: Option<glob::Pattern>,
}

impl Scope {
    /// Builds a scope, validating the glob.
    pub fn new(env: Option<String>, key_glob: Option<&str>) -> Result<Self, String> {
        let key_glob = key_glob
            .map(|g| glob::Pattern::new(g).map_err(|e| format!("invalid key glob `{g}`: {e}")))
            .transpose()?;
        Ok(Self { env, key_glob })
    }

    /// True when the request's environment and key fall inside the scope. A request that
    /// names no environment or key (a listing) is admitted; listings filter per key.
    pub fn admits(&self, env: Option<&str>, key: Option<&str>) -> Result<(), String> {
        if let (Some(want), Some(env)) = (&self.env, env)
            && want != env
        {
            return Err(format!("limited to environment `{want}`, not `{env}`"));
        }
        if let (Some(glob), Some(key)) = (&self.key_glob, key) {
            let opts = glob::MatchOptions {
                require_literal_separator: true,
                ..glob::MatchOptions::new()
            };
            if !glob.matches_with(key, opts) {
                return Err(format!("limited to keys `{}`, not `{key}`", glob.as_str()));
            }
        }
        Ok(())
    }
}

/// What the caller asks to do.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The capability the route needs.
    pub capability: Capability,
    /// Environment, for secret operations.
    pub env: Option<&'a str>,
    /// Key, for secret operations on one key.
    pub key: Option<&'a str>,
}

/// One source of rights: a binding to a role.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Human description of where it comes from, e.g. `binding 0190… (user → role admin)`.
    pub source: String,
    /// Capabilities of the role.
    pub capabilities: Vec<Capability>,
    /// Narrowing of the role.
    pub scope: Scope,
}

/// The token's ceiling: what it may do at most, whatever its bindings say.
#[derive(Debug, Clone, Default)]
pub struct Ceiling {
    /// Allowed capabilities; `None` is no limit.
    pub capabilities: Option<Vec<Capability>>,
    /// Environment / key narrowing.
    pub scope: Scope,
}

/// Everything needed to decide for one principal in one realm.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Superusers need no binding.
    pub superuser: bool,
    /// The token ceiling.
    pub ceiling: Ceiling,
    /// Grants from bindings in this realm.
    pub grants: Vec<Grant>,
}

/// The outcome, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and by what.
    Allow(String),
    /// Denied, and why.
    Deny(String),
}

impl Decision {
    /// True when allowed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl Access {
    /// True when the principal may see the realm at all (else: 404).
    pub fn sees_realm(&self) -> bool {
        self.superuser || !self.grants.is_empty()
    }
}

/// Decides a request.
pub fn evaluate(access: &Access, req: Request<'_>) -> Decision {
    if let Some(caps) = &access.ceiling.capabilities
        && !caps.contains(&req.capability)
    {
        return Decision::Deny(format!(
            "the token's capabilities do not include `{}`",
            req.capability
        ));
    }
    if let Err(why) = access.ceiling.scope.admits(req.env, req.key) {
        return Decision::Deny(format!("the token is {why}"));
    }
    if access.superuser {
        return Decision::Allow("superuser".to_owned());
    }
    let mut reasons = Vec::new();
    for g in &access.grants {
        if !g.capabilities.contains(&req.capability) {
            continue;
        }
        match g.scope.admits(req.env, req.key) {
            Ok(()) => return Decision::Allow(g.source.clone()),
            Err(why) => reasons.push(format!(
                "{} grants `{}` but is {why}",
                g.source, req.capability
            )),
        }
    }
    if reasons.is_empty() {
        Decision::Deny(format!("no binding grants `{}`", req.capability))
    } else {
        Decision::Deny(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(caps: &[Capability], env: Option<&str>, glob: Option<&str>) -> Grant {
        Grant {
            source: "binding b1 (role r)".into(),
            capabilities: caps.to_vec(),
            scope: Scope::new(env.map(str::to_owned), glob).expect("scope"),
        }
    }

    fn read(env: &'static str, key: &'static str) -> Request<'static> {
        Request {
            capability: Capability::SecretsRead,
            env: Some(env),
            key: Some(key),
        }
    }

    #[test]
    fn narrowed_role_holds_and_is_violated() {
        let access = Access {
            grants: vec![grant(
                &[Capability::SecretsRead],
                Some("prod"),
                Some("app/*"),
            )],
            ..Access::default()
        };
        assert!(evaluate(&access, read("prod", "app/db")).allowed());
        assert!(!evaluate(&access, read("dev", "app/db")).allowed());
        assert!(
            !evaluate(&access, read("prod", "app/x/y")).allowed(),
            "* stops at /"
        );
        assert!(!evaluate(&access, read("prod", "other")).allowed());
        let write = Request {
            capability: Capability::SecretsWrite,
            ..read("prod", "app/db")
        };
        assert!(!evaluate(&access, write).allowed());
    }

    #[test]
    fn ceiling_limits_even_superuser() {
        let access = Access {
            superuser: true,
            ceiling: Ceiling {
                capabilities: Some(vec![Capability::SecretsRead]),
                scope: Scope::new(Some("prod".into()), None).expect("scope"),
            },
            grants: vec![],
        };
        assert!(evaluate(&access, read("prod", "k")).allowed());
        assert!(!evaluate(&access, read("dev", "k")).allowed());
        let list = Request {
            capability: Capability::SecretsList,
            env: Some("prod"),
            key: None,
        };
        assert!(!evaluate(&access, list).allowed());
    }

    #[test]
    fn no_grants_means_invisible_realm() {
        assert!(!Access::default().sees_realm());
        assert!(!evaluate(&Access::default(), read("prod", "k")).allowed());
    }
}
