//! The mount configuration and the role definitions: parsed into types, checked, and
//! normalised into the form the host stores. Unknown keys are refused.

use arcan_plugin_sdk::serde_json::{self, Value};
use arcan_plugin_sdk::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::names::{MAX_PREFIX, iam_safe};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host-held `http` connection with the `aws_sigv4` auth profile.
    #[serde(default = "default_connection")]
    pub connection: String,
    /// The start of every generated IAM user name and role session name.
    #[serde(default = "default_prefix")]
    pub username_prefix: String,
}

fn default_connection() -> String {
    "aws".into()
}

fn default_prefix() -> String {
    "arcan-".into()
}

impl Config {
    /// Parses and checks a configuration; `null` means every default.
    pub fn parse(config: &Value) -> Result<Self> {
        let config: Config = match config {
            Value::Null => serde_json::from_value(Value::Object(Default::default())),
            Value::Object(_) => serde_json::from_value(config.clone()),
            _ => return Err(Error::invalid("configuration: must be a JSON object")),
        }
        .map_err(|e| Error::invalid(format!("configuration: {e}")))?;
        let c = &config.connection;
        let name_ok = !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(Error::invalid(
                "configuration: connection must be the name of a connection of this mount (1-64 characters of a-z 0-9 -)",
            ));
        }
        let p = &config.username_prefix;
        if p.len() > MAX_PREFIX || !p.chars().all(iam_safe) {
            return Err(Error::invalid(format!(
                "configuration: username_prefix must be at most {MAX_PREFIX} characters of A-Z a-z 0-9 + = , . @ _ -"
            )));
        }
        Ok(config)
    }

    /// The normalised form the host stores.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A role definition: which kind of credential it issues and with which rights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "credential_type",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Role {
    /// A new IAM user with policies and an access key; deleted on revoke.
    IamUser {
        /// Managed policies to attach.
        #[serde(default)]
        policy_arns: Vec<String>,
        /// An inline policy document to put on the user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_document: Option<Value>,
        /// The IAM path of the user.
        #[serde(default = "default_path")]
        path: String,
    },
    /// Temporary credentials of an existing IAM role (STS AssumeRole); they expire by
    /// themselves.
    AssumedRole {
        /// The role to assume.
        role_arn: String,
        /// A session policy that narrows the role's rights.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_policy: Option<Value>,
    },
}

fn default_path() -> String {
    "/".into()
}

impl Role {
    /// Parses, checks and normalises a role definition (policies given as JSON strings
    /// become objects, duplicate ARNs are dropped).
    pub fn parse(role: &Value) -> Result<Self> {
        if !role.is_object() {
            return Err(Error::invalid("role definition: must be a JSON object"));
        }
        let role: Role = serde_json::from_value(role.clone())
            .map_err(|e| Error::invalid(format!("role definition: {e}")))?;
        match role {
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

    /// The normalised form the host stores.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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

    fn invalid(v: Value) -> String {
        let e = Role::parse(&v).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        e.message().to_owned()
    }

    #[test]
    fn config_defaults_and_refusals() {
        let c = Config::parse(&json!({})).unwrap();
        assert_eq!(
            c.to_value(),
            json!({"connection": "aws", "username_prefix": "arcan-"})
        );
        assert_eq!(Config::parse(&Value::Null).unwrap(), c);
        let c = Config::parse(&json!({"connection": "prod-aws", "username_prefix": ""})).unwrap();
        assert_eq!(c.connection, "prod-aws");
        for bad in [
            json!({"conection": "aws"}),
            json!({"connection": ""}),
            json!({"connection": "AWS"}),
            json!({"connection": 3}),
            json!({"username_prefix": "has space"}),
            json!({"username_prefix": "x".repeat(33)}),
            json!([]),
        ] {
            let e = Config::parse(&bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn iam_user_roles_are_normalised() {
        let arn = "arn:aws:iam::aws:policy/ReadOnlyAccess";
        let r = Role::parse(&json!({"credential_type": "iam_user", "policy_arns": [arn, arn]}))
            .unwrap();
        assert_eq!(
            r.to_value(),
            json!({"credential_type": "iam_user", "policy_arns": [arn], "path": "/"})
        );
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
        let r = Role::parse(&json!({
            "credential_type": "iam_user", "policy_document": doc.to_string(), "path": "/apps/",
        }))
        .unwrap();
        assert_eq!(
            r.to_value(),
            json!({"credential_type": "iam_user", "policy_arns": [], "policy_document": doc, "path": "/apps/"})
        );
        // Parsing the normalised form gives the same role.
        assert_eq!(Role::parse(&r.to_value()).unwrap(), r);
    }

    #[test]
    fn malformed_roles_are_refused() {
        assert!(invalid(json!({})).contains("credential_type"));
        assert!(invalid(json!(["iam_user"])).contains("JSON object"));
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
        let r = Role::parse(&json!({"credential_type": "assumed_role", "role_arn": arn})).unwrap();
        assert_eq!(
            r.to_value(),
            json!({"credential_type": "assumed_role", "role_arn": arn})
        );
        let p = json!({"Version": "2012-10-17", "Statement": []});
        let r = Role::parse(&json!({
            "credential_type": "assumed_role", "role_arn": arn, "session_policy": p.to_string(),
        }))
        .unwrap();
        assert_eq!(r.to_value()["session_policy"], p);
        assert!(invalid(json!({"credential_type": "assumed_role"})).contains("role_arn"));
        let m = invalid(
            json!({"credential_type": "assumed_role", "role_arn": "arn:aws:iam::aws:role/x"}),
        );
        assert!(m.contains("role ARN"), "{m}");
        let m =
            invalid(json!({"credential_type": "assumed_role", "role_arn": arn, "policy_arns": []}));
        assert!(m.contains("unknown field"), "{m}");
    }
}
