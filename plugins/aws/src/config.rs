//! The mount configuration, the role definitions and the lease state: parsed into these
//! types by the SDK (unknown keys refused, defaults filled in, the schemas derived from
//! them), checked and normalised here into the form the host stores.

use arcan_plugin_sdk::random::NameRules;
use arcan_plugin_sdk::schemars::{self, JsonSchema, Schema, SchemaGenerator, json_schema};
use arcan_plugin_sdk::serde_json::{self, Value};
use arcan_plugin_sdk::{Error, Result};
use serde::{Deserialize, Serialize};

/// Generated IAM user names and STS session names: `<prefix><role>-<12 random [a-z0-9]>`
/// (36^12, about 62 bits), at most 64 characters of `[A-Za-z0-9+=,.@_-]` (what both IAM
/// user names and role session names accept); the role's other characters become `-`
/// and it is cut to fit.
pub const NAMES: NameRules = NameRules::new(64)
    .keep_case()
    .allow("+=,.@_-")
    .separator('-')
    .random_len(12);
/// Longest `username_prefix`: leaves room for the role and the random part.
pub const MAX_PREFIX: usize = 32;

/// A fresh IAM user or session name for a credential of `role` (`cred` when the call has
/// no role name). `prefix` is the configuration's, already checked.
pub fn generate_name(prefix: &str, role: &str) -> Result<String> {
    NAMES.generate(prefix, if role.is_empty() { "cred" } else { role })
}

/// Largest inline policy or session policy, in characters of compact JSON (AWS counts
/// 2,048 characters for both, whitespace excluded).
const MAX_POLICY_CHARS: usize = 2048;
/// Most managed policies a role may attach (AWS allows 10 per user by default, 20 at most).
const MAX_POLICY_ARNS: usize = 20;
/// Longest ARN AWS accepts.
const MAX_ARN: usize = 2048;
/// Longest IAM path.
const MAX_PATH: usize = 512;

/// The mount configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The mount's `http` connection with the `aws_sigv4` auth profile.
    #[serde(default = "default_connection")]
    #[schemars(regex(pattern = r"^[a-z0-9-]{1,64}$"))]
    pub connection: String,
    /// The start of every generated IAM user name and STS session name.
    #[serde(default = "default_prefix")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9+=,.@_-]{0,32}$"))]
    pub username_prefix: String,
}

fn default_connection() -> String {
    "aws".into()
}

fn default_prefix() -> String {
    "arcan-".into()
}

impl Config {
    /// Checks a configuration the SDK parsed: the connection's name and the prefix.
    pub fn validate(&self) -> Result<()> {
        let c = &self.connection;
        let name_ok = !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(Error::invalid(
                "configuration: connection must be the name of a connection of this mount (1-64 characters of a-z 0-9 -)",
            ));
        }
        let p = &self.username_prefix;
        if p.len() > MAX_PREFIX || !p.chars().all(|c| NAMES.allows(c)) {
            return Err(Error::invalid(format!(
                "configuration: username_prefix must be at most {MAX_PREFIX} characters of A-Z a-z 0-9 + = , . @ _ -"
            )));
        }
        Ok(())
    }
}

/// A role definition: which kind of credential it issues and with which rights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "credential_type",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Role {
    /// A new IAM user with policies and an access key; deleted on revoke.
    #[schemars(extend("anyOf" = [{"required": ["policy_arns"]}, {"required": ["policy_document"]}]))]
    IamUser {
        /// Managed policies to attach.
        #[serde(default)]
        #[schemars(
            length(max = 20),
            inner(regex(pattern = r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/.+$"))
        )]
        policy_arns: Vec<String>,
        /// An inline policy document to put on the user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "policy_schema")]
        policy_document: Option<Value>,
        /// The IAM path of the user.
        #[serde(default = "default_path")]
        #[schemars(regex(pattern = r"^/([!-~]*/)?$"))]
        path: String,
    },
    /// Temporary credentials of an existing IAM role (STS AssumeRole); they expire by
    /// themselves.
    AssumedRole {
        /// The role to assume.
        #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"))]
        role_arn: String,
        /// A session policy that narrows the role's rights.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(schema_with = "policy_schema")]
        session_policy: Option<Value>,
    },
}

fn default_path() -> String {
    "/".into()
}

/// A policy document: a JSON object, or a string holding one.
fn policy_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["object", "string"],
        "description": "IAM policy document (JSON object, or a string holding one)",
    })
}

impl Role {
    /// Checks and normalises a role definition the SDK parsed (policies given as JSON
    /// strings become objects, duplicate ARNs are dropped).
    pub fn normalise(self) -> Result<Self> {
        match self {
            Role::IamUser {
                policy_arns,
                policy_document,
                path,
            } => {
                let mut arns: Vec<String> = Vec::new();
                for arn in policy_arns {
                    check_arn(&arn, "policy_arns", "policy/", true)?;
                    if !arns.contains(&arn) {
                        arns.push(arn);
                    }
                }
                if arns.len() > MAX_POLICY_ARNS {
                    return Err(Error::invalid(format!(
                        "role definition: policy_arns may list at most {MAX_POLICY_ARNS} policies"
                    )));
                }
                let policy_document = policy_document
                    .map(|d| policy(d, "policy_document"))
                    .transpose()?;
                if arns.is_empty() && policy_document.is_none() {
                    return Err(Error::invalid(
                        "role definition: an iam_user role needs policy_arns, policy_document or both",
                    ));
                }
                check_path(&path)?;
                Ok(Role::IamUser {
                    policy_arns: arns,
                    policy_document,
                    path,
                })
            }
            Role::AssumedRole {
                role_arn,
                session_policy,
            } => {
                check_arn(&role_arn, "role_arn", "role/", false)?;
                let session_policy = session_policy
                    .map(|d| policy(d, "session_policy"))
                    .transpose()?;
                Ok(Role::AssumedRole {
                    role_arn,
                    session_policy,
                })
            }
        }
    }
}

/// What a lease keeps, for revoke: the IAM user and its key, or the STS session (which
/// needs nothing: it expires by itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Lease {
    /// An `iam_user` credential.
    IamUser {
        /// The IAM user created.
        username: String,
        /// Its access key.
        access_key_id: String,
    },
    /// An `assumed_role` credential.
    AssumedRole {
        /// The role assumed.
        role_arn: String,
        /// The session's name.
        session_name: String,
    },
}

/// `arn:<partition>:iam::<account>:<kind><name>`; the account is 12 digits (or `aws`
/// for AWS managed policies when `aws_account` is set).
fn check_arn(arn: &str, field: &str, kind: &str, aws_account: bool) -> Result<()> {
    let bad = || {
        let what = if kind == "role/" {
            "an IAM role ARN, arn:aws:iam::<account>:role/<name>"
        } else {
            "an IAM policy ARN, arn:aws:iam::<account or aws>:policy/<name>"
        };
        Error::invalid(format!(
            "role definition: {field}: `{}` is not {what}",
            arn.chars().take(100).collect::<String>()
        ))
    };
    if arn.len() > MAX_ARN || arn.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [scheme, partition, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    let account_ok = (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        || (aws_account && account == "aws");
    let ok = scheme == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account_ok
        && resource.len() > kind.len()
        && resource.starts_with(kind);
    if ok { Ok(()) } else { Err(bad()) }
}

/// `/` or `/a/b/`: starts and ends with `/`, printable ASCII without spaces.
fn check_path(path: &str) -> Result<()> {
    let ok = path.len() <= MAX_PATH
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "role definition: path must start and end with `/` (e.g. /arcan/), at most {MAX_PATH} printable characters"
        )))
    }
}

/// A policy document: a JSON object with a `Statement`, given as an object or as a JSON
/// string; returned as an object.
fn policy(doc: Value, field: &str) -> Result<Value> {
    let doc = match doc {
        Value::String(s) => serde_json::from_str(&s).map_err(|e| {
            Error::invalid(format!(
                "role definition: {field} is a string but not a JSON document: {e}"
            ))
        })?,
        other => other,
    };
    let Some(object) = doc.as_object() else {
        return Err(Error::invalid(format!(
            "role definition: {field} must be a policy document (a JSON object)"
        )));
    };
    if !object.contains_key("Statement") {
        return Err(Error::invalid(format!(
            "role definition: {field} must have a Statement"
        )));
    }
    let size = doc.to_string().chars().count();
    if size > MAX_POLICY_CHARS {
        return Err(Error::invalid(format!(
            "role definition: {field} is {size} characters long; AWS accepts at most {MAX_POLICY_CHARS}"
        )));
    }
    Ok(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arcan_plugin_sdk::ErrorKind;
    use arcan_plugin_sdk::serde_json::json;

    /// What the SDK and `configure` do with a configuration.
    fn config(v: Value) -> Result<Config> {
        let c: Config = serde_json::from_value(v)?;
        c.validate()?;
        Ok(c)
    }

    /// What the SDK and `validate_role` do with a role definition.
    fn role(v: Value) -> Result<Role> {
        serde_json::from_value::<Role>(v)?.normalise()
    }

    fn value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn invalid(v: Value) -> String {
        let e = role(v).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        e.message().to_owned()
    }

    #[test]
    fn config_defaults_and_refusals() {
        let c = config(json!({})).unwrap();
        assert_eq!(
            value(&c),
            json!({"connection": "aws", "username_prefix": "arcan-"})
        );
        let c = config(json!({"connection": "prod-aws", "username_prefix": ""})).unwrap();
        assert_eq!(c.connection, "prod-aws");
        for bad in [
            json!({"conection": "aws"}),
            json!({"connection": ""}),
            json!({"connection": "AWS"}),
            json!({"connection": 3}),
            json!({"username_prefix": "has space"}),
            json!({"username_prefix": "x".repeat(33)}),
        ] {
            let e = config(bad.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn iam_user_roles_are_normalised() {
        let arn = "arn:aws:iam::aws:policy/ReadOnlyAccess";
        let r = role(json!({"credential_type": "iam_user", "policy_arns": [arn, arn]})).unwrap();
        assert_eq!(
            value(&r),
            json!({"credential_type": "iam_user", "policy_arns": [arn], "path": "/"})
        );
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
        let r = role(json!({
            "credential_type": "iam_user", "policy_document": doc.to_string(), "path": "/apps/",
        }))
        .unwrap();
        assert_eq!(
            value(&r),
            json!({"credential_type": "iam_user", "policy_arns": [], "policy_document": doc, "path": "/apps/"})
        );
        // Parsing the normalised form gives the same role.
        assert_eq!(role(value(&r)).unwrap(), r);
    }

    #[test]
    fn malformed_roles_are_refused() {
        assert!(invalid(json!({})).contains("credential_type"));
        assert!(invalid(json!({"credential_type": "root"})).contains("unknown variant"));
        assert!(invalid(json!({"credential_type": "iam_user"})).contains("needs policy_arns"));
        let m = invalid(json!({"credential_type": "iam_user", "policy_arns": ["x"], "extra": 1}));
        assert!(m.contains("unknown field"), "{m}");
        for arn in [
            "arn:aws:iam::aws:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::12345:policy/x",
            "arn:aws:iam::aws:policy/",
            "arn:aws:iam::aws:policy/has space",
        ] {
            let m = invalid(json!({"credential_type": "iam_user", "policy_arns": [arn]}));
            assert!(m.contains("policy_arns"), "{arn}: {m}");
        }
        let m =
            invalid(json!({"credential_type": "iam_user", "policy_document": {"Version": "x"}}));
        assert!(m.contains("Statement"), "{m}");
        let m = invalid(json!({"credential_type": "iam_user", "policy_document": "{nope"}));
        assert!(m.contains("not a JSON document"), "{m}");
        let m = invalid(json!({"credential_type": "iam_user", "policy_document": [1]}));
        assert!(m.contains("JSON object"), "{m}");
        let huge = json!({"Statement": "x".repeat(3000)});
        let m = invalid(json!({"credential_type": "iam_user", "policy_document": huge}));
        assert!(m.contains("at most 2048"), "{m}");
        for path in ["apps/", "/apps", "/a b/", ""] {
            let m = invalid(json!({
                "credential_type": "iam_user", "policy_arns": ["arn:aws:iam::aws:policy/A"], "path": path,
            }));
            assert!(m.contains("path"), "{path}: {m}");
        }
        let many: Vec<String> = (0..21)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
        let m = invalid(json!({"credential_type": "iam_user", "policy_arns": many}));
        assert!(m.contains("at most 20"), "{m}");
    }

    #[test]
    fn assumed_roles() {
        let arn = "arn:aws:iam::123456789012:role/app";
        let r = role(json!({"credential_type": "assumed_role", "role_arn": arn})).unwrap();
        assert_eq!(
            value(&r),
            json!({"credential_type": "assumed_role", "role_arn": arn})
        );
        let p = json!({"Version": "2012-10-17", "Statement": []});
        let r = role(json!({
            "credential_type": "assumed_role", "role_arn": arn, "session_policy": p.to_string(),
        }))
        .unwrap();
        assert_eq!(value(&r)["session_policy"], p);
        assert!(invalid(json!({"credential_type": "assumed_role"})).contains("role_arn"));
        let m = invalid(
            json!({"credential_type": "assumed_role", "role_arn": "arn:aws:iam::aws:role/x"}),
        );
        assert!(m.contains("role ARN"), "{m}");
        let m =
            invalid(json!({"credential_type": "assumed_role", "role_arn": arn, "policy_arns": []}));
        assert!(m.contains("unknown field"), "{m}");
    }

    #[test]
    fn names_are_safe_and_bounded() {
        let n = generate_name("arcan-", "dev").unwrap();
        assert!(n.starts_with("arcan-dev-"), "{n}");
        assert_eq!(n.len(), "arcan-dev-".len() + 12);
        assert_ne!(n, generate_name("arcan-", "dev").unwrap());
        let n = generate_name(&"p".repeat(MAX_PREFIX), &"r".repeat(200)).unwrap();
        assert_eq!(n.len(), 64, "{n}");
        assert!(n.chars().all(|c| NAMES.allows(c)), "{n}");
        assert!(n.starts_with(&"p".repeat(MAX_PREFIX)));
        let n = generate_name("a-", "we ird/ro%le").unwrap();
        assert!(n.starts_with("a-we-ird-ro-le-"), "{n}");
        assert!(generate_name("a-", "").unwrap().starts_with("a-cred-"));
    }

    #[test]
    fn schemas_say_what_the_checks_check() {
        let c = arcan_plugin_sdk::json_schema::<Config>();
        assert_eq!(c["additionalProperties"], false);
        assert_eq!(c["properties"]["connection"]["default"], "aws");
        assert_eq!(
            c["properties"]["connection"]["pattern"],
            "^[a-z0-9-]{1,64}$"
        );
        assert_eq!(c["properties"]["username_prefix"]["default"], "arcan-");
        let r = arcan_plugin_sdk::json_schema::<Role>();
        let variants = r["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), 2, "{r}");
        let iam = &variants[0];
        assert_eq!(
            iam["properties"]["credential_type"]["const"], "iam_user",
            "{r}"
        );
        assert_eq!(iam["additionalProperties"], false);
        assert_eq!(iam["anyOf"][1]["required"], json!(["policy_document"]));
        assert_eq!(iam["properties"]["policy_arns"]["maxItems"], 20);
        assert!(iam["properties"]["policy_arns"]["items"]["pattern"].is_string());
        assert_eq!(
            iam["properties"]["policy_document"]["type"],
            json!(["object", "string"])
        );
        assert_eq!(iam["properties"]["path"]["default"], "/");
        let sts = &variants[1];
        assert_eq!(
            sts["properties"]["credential_type"]["const"],
            "assumed_role"
        );
        assert_eq!(sts["required"], json!(["credential_type", "role_arn"]));
    }

    #[test]
    fn lease_states_of_both_kinds_parse() {
        let iam: Lease =
            serde_json::from_value(json!({"username": "u", "access_key_id": "AKIA"})).unwrap();
        assert!(matches!(iam, Lease::IamUser { ref username, .. } if username == "u"));
        let sts: Lease =
            serde_json::from_value(json!({"role_arn": "arn", "session_name": "s"})).unwrap();
        assert_eq!(value(&sts), json!({"role_arn": "arn", "session_name": "s"}));
        assert!(serde_json::from_value::<Lease>(json!({})).is_err());
    }
}
