//! AWS Signature Version 4 for `aws_sigv4` HTTP connections (the `aws-sigv4` crate, the
//! signer of the official AWS SDK): the root keys a connection holds and the signing of
//! each request the host sends with them. The root key rotation of such a connection lives
//! with the other connection providers, in [`crate::providers::aws`].

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};

/// The root keys of an AWS connection.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKeys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Region used in the signature scope.
    pub region: String,
    /// Session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Base URLs per service where it differs from the connection's `base_url`
    /// (on AWS, e.g. `{"sts": "https://sts.us-east-1.amazonaws.com"}` next to an IAM base).
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, String>,
}

impl AwsKeys {
    /// The base URL requests for `service` go to.
    pub fn base_for<'a>(&'a self, service: &str, default: &'a str) -> &'a str {
        self.endpoints.get(service).map_or(default, String::as_str)
    }
}

/// Signs `req` in place (adds `authorization`, `x-amz-date`, `x-amz-content-sha256` when
/// required, and the session token).
pub fn sign_request(
    req: &mut reqwest::Request,
    keys: &AwsKeys,
    service: &str,
) -> Result<(), String> {
    let identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "arcan-connection",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&keys.region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let body: &[u8] = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let url = req.url().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        url.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    let mut add = Vec::new();
    for (name, value) in instructions.headers() {
        add.push((name.to_owned(), value.to_owned()));
    }
    for (name, value) in add {
        let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) else {
            return Err("the signature produced an invalid header".into());
        };
        req.headers_mut().insert(n, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_the_scope() {
        let keys = AwsKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            session_token: None,
            endpoints: Default::default(),
        };
        let client = reqwest::Client::new();
        let mut req = client
            .post("http://127.0.0.1:5000/")
            .body("Action=ListUsers&Version=2010-05-08")
            .build()
            .expect("request");
        sign_request(&mut req, &keys, "iam").expect("signed");
        let auth = req.headers()["authorization"].to_str().expect("ascii");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/iam/aws4_request"), "{auth}");
        assert!(req.headers().contains_key("x-amz-date"));
    }
}
