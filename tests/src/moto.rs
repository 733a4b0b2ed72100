//! A local AWS API emulator for the AWS engine's tests: moto's server mode (`python3 -m
//! moto.server`, PyPI `moto[server]`) on a loopback port, with SigV4 verification on.
//!
//! moto checks signatures only after `INITIAL_NO_AUTH_ACTION_COUNT` requests; [`Moto::start`]
//! spends exactly that many setting up the account (an admin user whose key becomes the
//! engine's root credential, an observer user for the tests' own assertions, a role to
//! assume), then proves that an unknown key is refused. Every later request must be
//! signed with a real key of the emulated account: requests are signed here with the
//! `aws-sigv4` crate, as the host signs the engine's.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use crate::receivers::free_port;

/// The account moto emulates.
pub const ACCOUNT: &str = "123456789012";
/// The region every request is signed for.
pub const REGION: &str = "us-east-1";
/// Name of the IAM user whose key is the engine's root credential.
pub const ADMIN_USER: &str = "root-admin";
/// Name of the IAM user the tests use to look at the account.
pub const OBSERVER_USER: &str = "observer";
/// Name of the IAM role the admin may assume.
pub const ROLE: &str = "app";
/// Requests [`Moto::start`] makes before moto starts checking signatures.
const SETUP_ACTIONS: usize = 7;

/// AWS keys (with a session token for STS session credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token (assumed-role credentials).
    pub session_token: Option<String>,
}

impl Keys {
    /// Long-term keys.
    pub fn new(id: &str, secret: &str) -> Self {
        Self {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: None,
        }
    }

    /// Keys from an engine's credential data (`access_key_id`, `secret_access_key`,
    /// optional `session_token`).
    pub fn from_data(data: &Value) -> Self {
        let field = |k: &str| data[k].as_str().map(str::to_owned);
        Self {
            access_key_id: field("access_key_id").expect("access_key_id in the data"),
            secret_access_key: field("secret_access_key").expect("secret_access_key in the data"),
            session_token: field("session_token"),
        }
    }
}

/// What [`Moto::start`] set up.
#[derive(Debug, Clone)]
pub struct Account {
    /// Keys of [`ADMIN_USER`] (full rights): the engine's root credential.
    pub admin: Keys,
    /// Keys of [`OBSERVER_USER`] (full rights): for the tests' assertions only.
    pub observer: Keys,
    /// ARN of [`ADMIN_USER`].
    pub admin_arn: String,
    /// ARN of [`ROLE`], whose trust policy lets [`ADMIN_USER`] assume it.
    pub role_arn: String,
}

/// A running moto server; killed on drop.
pub struct Moto {
    child: Option<Child>,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

/// A full-rights inline policy.
fn allow_all() -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string()
}

impl Moto {
    /// Starts moto on a free loopback port and sets up the account (see the module doc).
    /// Panics with instructions when moto is not installed.
    pub async fn start() -> (Self, Account) {
        let importable = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            importable,
            "moto is not installed (`python3 -c 'import moto.server'` fails): run the test command \
             ./scripts/test, which installs it, or `pip install 'moto[server]'`"
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("arcan-moto-{}.log", uuid::Uuid::new_v4()));
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string())
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn python3 -m moto.server");
        let mut moto = Self {
            child: Some(child),
            log,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        moto.wait_ready().await;
        let account = moto.set_up().await;
        (moto, account)
    }

    async fn wait_ready(&mut self) {
        for _ in 0..300 {
            // The moto API answers without counting as an action.
            let probe = self.http.get(format!("{}/moto-api/", self.base)).send();
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("moto exited ({status}); its log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not answer within 30s; its log:\n{}", self.log());
    }

    /// The account, created with exactly [`SETUP_ACTIONS`] unauthenticated requests.
    async fn set_up(&self) -> Account {
        let anyone = Keys::new("AKIAIOSFODNN7EXAMPLE", "not-checked-yet");
        let ok = |(status, body): (u16, String)| {
            assert_eq!(status, 200, "moto setup failed: {body}");
            body
        };
        let mut keys = Vec::new();
        for user in [ADMIN_USER, OBSERVER_USER] {
            ok(self.iam(&anyone, "CreateUser", &[("UserName", user)]).await);
            ok(self
                .iam(
                    &anyone,
                    "PutUserPolicy",
                    &[
                        ("UserName", user),
                        ("PolicyName", "all"),
                        ("PolicyDocument", &allow_all()),
                    ],
                )
                .await);
            let body = ok(self
                .iam(&anyone, "CreateAccessKey", &[("UserName", user)])
                .await);
            keys.push(Keys::new(
                &first(&body, "AccessKeyId").expect("AccessKeyId"),
                &first(&body, "SecretAccessKey").expect("SecretAccessKey"),
            ));
        }
        let admin_arn = format!("arn:aws:iam::{ACCOUNT}:user/{ADMIN_USER}");
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole",
        }]});
        let body = ok(self
            .iam(
                &anyone,
                "CreateRole",
                &[
                    ("RoleName", ROLE),
                    ("AssumeRolePolicyDocument", &trust.to_string()),
                    ("MaxSessionDuration", "43200"),
                ],
            )
            .await);
        let role_arn = first(&body, "Arn").expect("role Arn");
        // The unauthenticated window is over: a key moto does not know is refused.
        let (status, body) = self.call(&anyone, "sts", "GetCallerIdentity", &[]).await;
        assert_eq!(
            (status, code(&body).as_deref()),
            (403, Some("InvalidClientTokenId")),
            "moto must check signatures after setup: {body}"
        );
        let mut keys = keys.into_iter();
        Account {
            admin: keys.next().expect("admin keys"),
            observer: keys.next().expect("observer keys"),
            admin_arn,
            role_arn,
        }
    }

    /// moto's output so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A query-API call (`POST /`, form body) signed with `keys` for `service` (`iam`,
    /// `sts`); returns the status and the body.
    pub async fn call(
        &self,
        keys: &Keys,
        service: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let version = if service == "sts" {
            "2011-06-15"
        } else {
            "2010-05-08"
        };
        let mut body = format!("Action={action}&Version={version}");
        for (k, v) in params {
            body.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
        let url = format!("{}/", self.base);
        let content_type = ("content-type", "application/x-www-form-urlencoded");
        let mut request = self.http.post(&url).header(content_type.0, content_type.1);
        for (name, value) in sign_headers(keys, service, &url, &[content_type], body.as_bytes()) {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.expect("moto request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("moto body"))
    }

    /// An IAM call.
    pub async fn iam(&self, keys: &Keys, action: &str, params: &[(&str, &str)]) -> (u16, String) {
        self.call(keys, "iam", action, params).await
    }

    /// `sts GetCallerIdentity` with `keys`: the caller's ARN, or the status and AWS
    /// error code.
    pub async fn caller_arn(&self, keys: &Keys) -> Result<String, (u16, String)> {
        let (status, body) = self.call(keys, "sts", "GetCallerIdentity", &[]).await;
        match (status, first(&body, "Arn")) {
            (200, Some(arn)) => Ok(arn),
            _ => Err((status, code(&body).unwrap_or(body))),
        }
    }

    /// Every IAM user name, listed with `keys`.
    pub async fn user_names(&self, keys: &Keys) -> Vec<String> {
        let (status, body) = self.iam(keys, "ListUsers", &[]).await;
        assert_eq!(status, 200, "ListUsers: {body}");
        all(&body, "UserName")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a request.
pub fn sign_headers(
    keys: &Keys,
    service: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "arcan-tests",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Percent-encoding for a form body.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The text of every `<tag>…</tag>` in an AWS XML answer (no nesting, no attributes:
/// enough for the leaf values the tests read).
pub fn all(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(unescape(&rest[..end]));
        rest = &rest[end + close.len()..];
    }
    out
}

/// The first `<tag>…</tag>` of an AWS XML answer.
pub fn first(xml: &str, tag: &str) -> Option<String> {
    all(xml, tag).into_iter().next()
}

/// The AWS error code of an error answer.
pub fn code(xml: &str) -> Option<String> {
    first(xml, "Code")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
