//! Evaluation of a request against a principal's grants in one realm.

use super::{Capability, ScopeKind};

/// An optional narrowing to one environment and a key glob; roles and token ceilings
/// both carry one.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this environment.
    pub env: Option<String>,
    /// Only keys matching this glob (`*` does not cross `/`; `**` does).
    pub key_glob: Option<glob::Pattern>,
}

fn glob_matches(glob: &glob::Pattern, key: &str) -> bool {
    let opts = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    glob.matches_with(key, opts)
}

impl Scope {
    /// Builds a scope, validating the glob.
    pub fn new(env: Option<String>, key_glob: Option<&str>) -> Result<Self, String> {
        let key_glob = key_glob
            .map(|g| glob::Pattern::new(g).map_err(|e| format!("invalid key glob `{g}`: {e}")))
            .transpose()?;
        Ok(Self { env, key_glob })
    }

    /// True when the scope narrows anything.
    pub fn is_narrowed(&self) -> bool {
        self.env.is_some() || self.key_glob.is_some()
    }

    /// True when `key` is inside the key narrowing (or there is none). Listings use it to
    /// filter what they show.
    pub fn admits_key(&self, key: &str) -> bool {
        self.key_glob.as_ref().is_none_or(|g| glob_matches(g, key))
    }

    /// Whether the scope covers a request for `cap` on `env` / `key`. How narrowing meets a
    /// route depends on the capability ([`ScopeKind`]): a route that names no key or
    /// environment is outside a narrowed grant unless the capability says otherwise.
    pub fn admits(
        &self,
        cap: Capability,
        env: Option<&str>,
        key: Option<&str>,
    ) -> Result<(), String> {
        if !self.is_narrowed() {
            return Ok(());
        }
        let kind = cap.scope_kind();
        if kind == ScopeKind::Unscoped {
            return Err(format!(
                "limited to {}; `{cap}` is not about keys or environments",
                self.describe()
            ));
        }
        if let Some(want) = &self.env {
            match env {
                Some(env) if env == want => {}
                Some(env) => return Err(format!("limited to environment `{want}`, not `{env}`")),
                None if kind == ScopeKind::Delegating => {}
                None => return Err(format!("limited to environment `{want}`")),
            }
        }
        if let Some(glob) = &self.key_glob {
            match key {
                Some(key) if glob_matches(glob, key) => {}
                Some(key) => {
                    return Err(format!("limited to keys `{}`, not `{key}`", glob.as_str()));
                }
                None if kind == ScopeKind::Keyed => {
                    return Err(format!("limited to keys `{}`", glob.as_str()));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// True when everything `other` admits, `self` admits too (used for delegation: a
    /// granted narrowing may not be wider than the granter's). Globs compare literally.
    pub fn contains(&self, other: &Scope) -> bool {
        let env_ok = match (&self.env, &other.env) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let glob_ok = match (&self.key_glob, &other.key_glob) {
            (None, _) => true,
            (Some(a), Some(b)) => a.as_str() == b.as_str(),
            (Some(_), None) => false,
        };
        env_ok && glob_ok
    }

    fn describe(&self) -> String {
        match (&self.env, &self.key_glob) {
            (Some(e), Some(g)) => format!("environment `{e}` and keys `{}`", g.as_str()),
            (Some(e), None) => format!("environment `{e}`"),
            (None, Some(g)) => format!("keys `{}`", g.as_str()),
            (None, None) => "nothing".to_owned(),
        }
    }
}

/// What the caller asks to do. For a global capability `env` and `key` are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The capability the route needs.
    pub capability: Capability,
    /// Environment, for secret operations.
    pub env: Option<&'a str>,
    /// Key, for secret operations on one key.
    pub key: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A request for a capability with no environment or key (global operations and realm
    /// routes that are not about keys).
    pub fn plain(capability: Capability) -> Self {
        Self {
            capability,
            env: None,
            key: None,
        }
    }
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
    /// The token is confined to one realm (it never holds a global capability).
    pub realm_confined: bool,
}

impl Ceiling {
    /// True when the ceiling limits nothing: the token is worth all of its user's rights.
    pub fn is_full(&self) -> bool {
        self.capabilities.is_none() && !self.realm_confined && !self.scope.is_narrowed()
    }

    fn admits_capability(&self, cap: Capability) -> Result<(), String> {
        match &self.capabilities {
            Some(caps) if !caps.contains(&cap) => {
                Err(format!("the token's capabilities do not include `{cap}`"))
            }
            _ => Ok(()),
        }
    }
}

/// Everything needed to decide for one principal: its global rights and, for a realm
/// decision, its grants in that realm.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Superusers hold every capability (bounded by the ceiling); in a realm they need no
    /// binding. Cleared for a realm the token is not confined to.
    pub superuser: bool,
    /// The token ceiling.
    pub ceiling: Ceiling,
    /// Global capabilities of the user.
    pub global: Vec<Capability>,
    /// Grants from bindings in this realm (empty for a global decision).
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

    /// Whether the principal holds `cap` here under *some* narrowing: the question asked
    /// when it mints a token of its own with `cap` in its list. That is no delegation: the
    /// child inherits the token's narrowing and is still decided against the same
    /// bindings at every use, so it can never do more than its issuer.
    pub fn holds(&self, cap: Capability) -> bool {
        if cap.is_global() {
            return evaluate(self, Request::plain(cap)).allowed();
        }
        self.ceiling.admits_capability(cap).is_ok()
            && (self.superuser || self.grants.iter().any(|g| g.capabilities.contains(&cap)))
    }
}

/// The one authorization decision: the token ceiling first (capabilities, confinement,
/// narrowing), then the principal's rights (superuser, global capabilities, bindings).
/// Every check, superuser ones included, goes through here.
pub fn evaluate(access: &Access, req: Request<'_>) -> Decision {
    let cap = req.capability;
    if let Err(why) = access.ceiling.admits_capability(cap) {
        return Decision::Deny(why);
    }
    if cap.is_global() {
        if access.ceiling.realm_confined {
            return Decision::Deny(format!(
                "the token is confined to a realm and holds no global capability (`{cap}`)"
            ));
        }
        if access.ceiling.scope.is_narrowed() {
            return Decision::Deny(format!(
                "the token is narrowed to {} and holds no global capability (`{cap}`)",
                access.ceiling.scope.describe()
            ));
        }
        if access.superuser {
            return Decision::Allow("superuser".to_owned());
        }
        if access.global.contains(&cap) {
            return Decision::Allow(format!("global capability `{cap}` of the user"));
        }
        return Decision::Deny(format!("requires the global capability `{cap}`"));
    }
    if let Err(why) = access.ceiling.scope.admits(cap, req.env, req.key) {
        return Decision::Deny(format!("the token is {why}"));
    }
    if access.superuser {
        return Decision::Allow("superuser".to_owned());
    }
    let mut reasons = Vec::new();
    for g in &access.grants {
        if !g.capabilities.contains(&cap) {
            continue;
        }
        match g.scope.admits(cap, req.env, req.key) {
            Ok(()) => return Decision::Allow(g.source.clone()),
            Err(why) => reasons.push(format!("{} grants `{cap}` but is {why}", g.source)),
        }
    }
    if reasons.is_empty() {
        Decision::Deny(format!("no binding grants `{cap}`"))
    } else {
        Decision::Deny(reasons.join("; "))
    }
}

/// The delegation rule (Kubernetes RBAC's escalation check): may the caller hand out `cap`
/// narrowed to `scope` (in a role it creates, or a binding it makes)? Only if it holds
/// `cap` itself, through its ceiling and a grant each at least as wide as `scope`, or
/// holds the global `policy:escalate`.
pub fn may_grant(access: &Access, cap: Capability, scope: &Scope) -> Result<(), String> {
    if evaluate(access, Request::plain(Capability::PolicyEscalate)).allowed() {
        return Ok(());
    }
    let refuse = |why: String| Err(format!("cannot grant `{cap}`: {why}"));
    if let Err(why) = access.ceiling.admits_capability(cap) {
        return refuse(why);
    }
    if !access.ceiling.scope.contains(scope) {
        return refuse(format!(
            "the token is limited to {}, which is narrower",
            access.ceiling.scope.describe()
        ));
    }
    if access.superuser {
        return Ok(());
    }
    let held = access
        .grants
        .iter()
        .any(|g| g.capabilities.contains(&cap) && g.scope.contains(scope));
    if held {
        Ok(())
    } else {
        refuse(
            "the caller does not hold it here at least as widely (a role or binding may only \
             hand out rights its creator holds, unless the creator holds `policy:escalate`)"
                .to_owned(),
        )
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
                realm_confined: false,
            },
            ..Access::default()
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

    #[test]
    fn global_capabilities_need_an_unconfined_token() {
        let root = Access {
            superuser: true,
            ..Access::default()
        };
        let sys = Request::plain(Capability::SysManage);
        assert!(evaluate(&root, sys).allowed());
        let confined = Access {
            ceiling: Ceiling {
                realm_confined: true,
                ..Ceiling::default()
            },
            ..root.clone()
        };
        assert!(!evaluate(&confined, sys).allowed());
        let narrowed = Access {
            ceiling: Ceiling {
                scope: Scope::new(None, Some("app/*")).expect("scope"),
                ..Ceiling::default()
            },
            ..root.clone()
        };
        assert!(!evaluate(&narrowed, sys).allowed());
        let listed = Access {
            ceiling: Ceiling {
                capabilities: Some(vec![Capability::SecretsRead]),
                ..Ceiling::default()
            },
            ..root
        };
        assert!(!evaluate(&listed, sys).allowed());
        let user = Access {
            global: vec![Capability::RealmsManage],
            ..Access::default()
        };
        assert!(evaluate(&user, Request::plain(Capability::RealmsManage)).allowed());
        assert!(!evaluate(&user, sys).allowed());
    }

    #[test]
    fn narrowing_does_not_cover_unscoped_routes() {
        let access = Access {
            grants: vec![grant(
                &[
                    Capability::EnginesRead,
                    Capability::SecretsList,
                    Capability::TokensCreate,
                ],
                Some("prod"),
                Some("app/*"),
            )],
            ..Access::default()
        };
        let at = |capability, env, key| Request {
            capability,
            env,
            key,
        };
        assert!(!evaluate(&access, at(Capability::EnginesRead, Some("prod"), None)).allowed());
        assert!(!evaluate(&access, Request::plain(Capability::EnginesRead)).allowed());
        assert!(evaluate(&access, at(Capability::SecretsList, Some("prod"), None)).allowed());
        assert!(!evaluate(&access, at(Capability::SecretsList, Some("dev"), None)).allowed());
        assert!(!evaluate(&access, at(Capability::SecretsList, None, None)).allowed());
        assert!(evaluate(&access, Request::plain(Capability::TokensCreate)).allowed());
        let wide = Access {
            grants: vec![grant(&[Capability::EnginesRead], None, None)],
            ..Access::default()
        };
        assert!(evaluate(&wide, Request::plain(Capability::EnginesRead)).allowed());
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let manager = Access {
            grants: vec![grant(&[Capability::PolicyManage], None, None)],
            ..Access::default()
        };
        let any = Scope::default();
        assert!(may_grant(&manager, Capability::PolicyManage, &any).is_ok());
        assert!(may_grant(&manager, Capability::SecretsRead, &any).is_err());
        let dev_reader = Access {
            grants: vec![grant(&[Capability::SecretsRead], Some("dev"), None)],
            ..Access::default()
        };
        let dev = Scope::new(Some("dev".into()), None).expect("scope");
        let prod = Scope::new(Some("prod".into()), None).expect("scope");
        assert!(may_grant(&dev_reader, Capability::SecretsRead, &dev).is_ok());
        assert!(may_grant(&dev_reader, Capability::SecretsRead, &prod).is_err());
        assert!(may_grant(&dev_reader, Capability::SecretsRead, &any).is_err());
        let escalator = Access {
            global: vec![Capability::PolicyEscalate],
            ..Access::default()
        };
        assert!(may_grant(&escalator, Capability::SecretsRead, &any).is_ok());
        let root_narrow_token = Access {
            superuser: true,
            ceiling: Ceiling {
                capabilities: Some(vec![Capability::PolicyManage]),
                ..Ceiling::default()
            },
            ..Access::default()
        };
        assert!(may_grant(&root_narrow_token, Capability::SecretsRead, &any).is_err());
    }
}
