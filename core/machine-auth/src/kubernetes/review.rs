//! The TokenReview call: `POST {host}/apis/authentication.k8s.io/v1/tokenreviews` with
//! k8s-openapi's `TokenReview` (no hand-written shapes or paths), and the mapping of every
//! answer to an accepted user or a [`Refusal`].
//!
//! | answer | configured reviewer | caller reviews itself |
//! |---|---|---|
//! | 2xx, not a `TokenReview` | 502 | 502 |
//! | 2xx, not authenticated / `status.error` / audience not granted | 401 | 401 |
//! | 401 | 502 (reviewer's credentials rejected) | 401 |
//! | 403 | 502 (reviewer lacks `system:auth-delegator`) | 403 |
//! | 429, 5xx, other, timeout, connection, TLS | 502 | 502 |
//!
//! Messages carry the status or failure kind, never the response body; the API server's
//! `Status.reason` and `status.error` go to the log only (cut to 200 characters).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use url::Url;

use crate::error::{Check, Refusal, shown};
use crate::fetch::{FetchClient, FetchError};

/// Largest TokenReview response.
pub const MAX_REVIEW_BYTES: usize = 64 * 1024;

/// Who sends the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reviewer {
    /// The method's configured reviewer token.
    Configured,
    /// The caller's own token (its service account needs `system:auth-delegator`).
    Caller,
}

/// What an authenticated review says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReviewedUser {
    /// `status.user.username`.
    pub username: String,
    /// `status.user.uid`.
    pub uid: Option<String>,
    /// `status.audiences`.
    pub audiences: Vec<String>,
}

fn upstream(what: &str) -> Refusal {
    Refusal::upstream(format!("upstream: the Kubernetes API server {what}"))
}

fn fetch_refusal(e: &FetchError) -> Refusal {
    match e {
        FetchError::Timeout(_) => upstream(&format!("{e}")),
        FetchError::Connect => upstream("is unavailable (connection failed)"),
        // The fetch client's wording names the JWT field; the Kubernetes one is another.
        FetchError::Tls(r) => upstream(&format!(
            "TLS: {}",
            r.replace("(set ca_pem)", "(set kubernetes_ca_cert)")
        )),
        other => upstream(&format!("request failed: {other}")),
    }
}

/// The request body: the token and, when set, the audiences it must be valid for.
pub fn request_body(token: &str, audiences: Option<&[String]>) -> Vec<u8> {
    let review = TokenReview {
        metadata: Default::default(),
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: audiences.map(<[String]>::to_vec),
        },
        status: None,
    };
    // Serializing a struct of strings cannot fail.
    serde_json::to_vec(&review).unwrap_or_default()
}

/// Sends the review and maps the answer.
pub async fn review(
    client: &FetchClient,
    url: &Url,
    bearer: &str,
    reviewer: Reviewer,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<ReviewedUser, Refusal> {
    let res = client
        .post_json(
            url,
            bearer,
            request_body(token, audiences),
            MAX_REVIEW_BYTES,
        )
        .await
        .map_err(|e| fetch_refusal(&e))?;
    if !(200..300).contains(&res.status) {
        let reason = serde_json::from_slice::<Status>(&res.body)
            .ok()
            .and_then(|s| s.reason.or(s.message))
            .unwrap_or_default();
        tracing::info!(status = res.status, reason = %shown(&reason, 200), "TokenReview refused");
        return Err(match (res.status, reviewer) {
            (401, Reviewer::Configured) => Refusal::upstream(
                "upstream: the Kubernetes API server rejected the token reviewer's credentials (401)",
            ),
            (403, Reviewer::Configured) => Refusal::upstream(
                "upstream: the token reviewer may not create TokenReviews (403): bind it to system:auth-delegator",
            ),
            (401, Reviewer::Caller) => Refusal::unauthorized(
                Check::TokenReview,
                "tokenreview: the Kubernetes API server rejected the token (401)",
            ),
            (403, Reviewer::Caller) => Refusal::forbidden(
                Check::TokenReview,
                "tokenreview: the service account may not create TokenReviews (403): it needs system:auth-delegator",
            ),
            (429, _) => upstream("is throttling (429)"),
            (s, _) if s >= 500 => upstream(&format!("failed (HTTP {s})")),
            (s, _) => upstream(&format!("refused the TokenReview (HTTP {s})")),
        });
    }
    let answer: TokenReview = serde_json::from_slice(&res.body)
        .map_err(|_| upstream("answered something that is not a TokenReview"))?;
    let status = answer.status.unwrap_or_default();
    if let Some(err) = status.error.as_deref().filter(|e| !e.is_empty()) {
        tracing::info!(error = %shown(err, 200), "TokenReview: not authenticated");
        return Err(Refusal::unauthorized(
            Check::TokenReview,
            "tokenreview: not authenticated",
        ));
    }
    if status.authenticated != Some(true) {
        return Err(Refusal::unauthorized(
            Check::TokenReview,
            "tokenreview: not authenticated",
        ));
    }
    let granted = status.audiences.unwrap_or_default();
    if let Some(wanted) = audiences
        && !wanted.iter().any(|w| granted.contains(w))
    {
        return Err(Refusal::unauthorized(
            Check::TokenReview,
            format!(
                "tokenreview: not valid for audience `{}`",
                shown(wanted.first().map_or("", String::as_str), 128)
            ),
        ));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.filter(|u| !u.is_empty()).ok_or_else(|| {
        Refusal::forbidden(Check::Username, "tokenreview: the API server named no user")
    })?;
    Ok(ReviewedUser {
        username,
        uid: user.uid.filter(|u| !u.is_empty()),
        audiences: granted,
    })
}
