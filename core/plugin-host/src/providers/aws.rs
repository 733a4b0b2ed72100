//! AWS root rotation for `aws_sigv4` HTTP connections: a new IAM access key for the
//! connection's own user, made with the current key (`CreateAccessKey`), stored, and then
//! the old key deleted with the new one (`DeleteAccessKey`). The IAM calls are signed by
//! [`crate::sigv4`]; the plugin triggers the rotation and never sees either key.
//!
//! Crash safety: the new key is stored before the old one is deleted, so a failure at any
//! step leaves the stored key valid (both keys, at worst, until the old one is deleted by
//! hand), never neither.

use std::time::Duration;

use zeroize::Zeroizing;

use super::{RootRotation, RotationError, SpecStore};
use crate::connections::{ConnectionSpec, HttpAuth};
use crate::sigv4::{AwsKeys, sign_request};

/// Attempts at deleting the old key; IAM is eventually consistent, so a fresh key may need
/// a moment before it signs.
const DELETE_ATTEMPTS: u32 = 5;
/// Pause before the n-th retry of the delete: n times this.
const DELETE_BACKOFF: Duration = Duration::from_millis(200);

/// The root rotation of one `aws_sigv4` connection.
pub struct AwsRoot {
    name: String,
    client: reqwest::Client,
    base: String,
    keys: AwsKeys,
    spec: ConnectionSpec,
}

impl std::fmt::Debug for AwsRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRoot")
            .field("connection", &self.name)
            .finish_non_exhaustive()
    }
}

impl AwsRoot {
    /// The rotation of connection `name` with spec `spec`: its HTTP client, its base URL
    /// and its current root keys.
    pub fn new(
        name: &str,
        spec: &ConnectionSpec,
        client: reqwest::Client,
        base: String,
        keys: AwsKeys,
    ) -> Self {
        Self {
            name: name.to_owned(),
            client,
            base,
            keys,
            spec: spec.clone(),
        }
    }

    /// The connection's spec with `keys` in place of the current ones (base URL and CA kept).
    fn spec_with(&self, keys: AwsKeys) -> ConnectionSpec {
        let mut spec = self.spec.clone();
        if let ConnectionSpec::Http { auth, .. } = &mut spec {
            *auth = HttpAuth::AwsSigv4(keys);
        }
        spec
    }
}

impl RootRotation for AwsRoot {
    async fn rotate<S: SpecStore>(&self, store: &S) -> Result<(), RotationError> {
        let new = create_key(&self.client, &self.base, &self.keys)
            .await
            .map_err(RotationError::Failed)?;
        // Store the new key before the old one goes: a failure here leaves both valid,
        // never neither.
        store
            .store_spec(self.spec_with(new.clone()))
            .await
            .map_err(|cause| RotationError::NotStored {
                credential: "key",
                aftermath: "a new AWS key was created but could not be stored; the old key still works and stays in use",
                cause,
            })?;
        let mut last = String::new();
        for attempt in 0..DELETE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(DELETE_BACKOFF * attempt).await;
            }
            match delete_key(&self.client, &self.base, &new, &self.keys.access_key_id).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(RotationError::OldNotRetired {
            credential: "key",
            aftermath: "rotated to a new AWS key, but the old key could not be deleted; delete it by hand",
            cause: last,
        })
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
        // The message can name access key ids: it goes to the operator's log, and only the
        // error code to the plugin.
        let message = xml_text(&body, "Message").unwrap_or_default();
        tracing::warn!(%code, %message, "IAM refused a root-rotation call");
        return Err(format!("IAM refused: {code}"));
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
}
