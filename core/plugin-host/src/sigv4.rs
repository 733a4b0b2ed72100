//! AWS Signature Version 4 for `aws_sigv4` HTTP connections (the `aws-sigv4` crate, the
//! signer of the official AWS SDK), and the host-side root key rotation of such a
//! connection: the plugin triggers it and never sees either key.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

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

/// The text of the first `<tag>` element in an AWS XML response.
pub fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let mut reader = Reader::from_reader(body);
    let mut inside = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => inside = e.local_name().as_ref() == tag.as_bytes(),
            Ok(Event::Text(t)) if inside => {
                return t.decode().ok().map(|s| s.trim().to_owned());
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
        buf.clear();
    }
}

/// Sends a signed IAM query-API call.
pub async fn iam_call(
    client: &reqwest::Client,
    base: &str,
    keys: &AwsKeys,
    form: &str,
) -> Result<Vec<u8>, String> {
    let url = format!("{}/", keys.base_for("iam", base).trim_end_matches('/'));
    let mut req = client
        .post(&url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(form.to_owned())
        .build()
        .map_err(|e| format!("building the IAM request: {e}"))?;
    sign_request(&mut req, keys, "iam")?;
    let resp = client
        .execute(req)
        .await
        .map_err(|_| "cannot reach the AWS endpoint".to_owned())?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|_| "reading the IAM response failed".to_owned())?;
    if !status.is_success() {
        let code = xml_text(&body, "Code").unwrap_or_else(|| status.to_string());
        let message = xml_text(&body, "Message").unwrap_or_default();
        return Err(format!("IAM refused: {code} {message}"));
    }
    Ok(body.to_vec())
}

/// Creates a new access key for the connection's own IAM user with the current key, and
/// returns the new keys. The caller stores them, then calls [`delete_key`].
pub async fn create_key(
    client: &reqwest::Client,
    base: &str,
    keys: &AwsKeys,
) -> Result<AwsKeys, String> {
    let body = iam_call(
        client,
        base,
        keys,
        "Action=CreateAccessKey&Version=2010-05-08",
    )
    .await?;
    let id = xml_text(&body, "AccessKeyId");
    let secret = xml_text(&body, "SecretAccessKey").map(Zeroizing::new);
    match (id, secret) {
        (Some(access_key_id), Some(secret)) => Ok(AwsKeys {
            access_key_id,
            secret_access_key: secret.to_string(),
            region: keys.region.clone(),
            session_token: None,
            endpoints: keys.endpoints.clone(),
        }),
        _ => Err("IAM CreateAccessKey answered without a key".into()),
    }
}

/// Deletes the access key `old_id` of the connection's user, signing with `keys`.
pub async fn delete_key(
    client: &reqwest::Client,
    base: &str,
    keys: &AwsKeys,
    old_id: &str,
) -> Result<(), String> {
    let form = format!("Action=DeleteAccessKey&Version=2010-05-08&AccessKeyId={old_id}");
    if !old_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("the old access key id is malformed".into());
    }
    iam_call(client, base, keys, &form).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml() {
        let body = br#"<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey>
            <UserName>root</UserName><AccessKeyId>AKIA1</AccessKeyId>
            <SecretAccessKey>s3cr3t</SecretAccessKey></AccessKey></CreateAccessKeyResult>
            </CreateAccessKeyResponse>"#;
        assert_eq!(xml_text(body, "AccessKeyId").as_deref(), Some("AKIA1"));
        assert_eq!(xml_text(body, "SecretAccessKey").as_deref(), Some("s3cr3t"));
        assert_eq!(xml_text(body, "Missing"), None);
    }

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
