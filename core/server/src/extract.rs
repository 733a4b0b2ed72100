//! Request-body extraction with our limits and our error shape.

use salvo::extract::{Extractible, Metadata};
use salvo::http::ParseError;
use salvo::oapi::{Components, EndpointArgRegister, Operation, RequestBody, ToSchema};
use salvo::prelude::*;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::state;

/// A JSON body: at most `server.max_body_bytes` (413 beyond), strictly typed (400 with the
/// parser's message for malformed JSON, wrong types or unknown fields).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<'ex, T> Extractible<'ex> for Body<T>
where
    T: DeserializeOwned + Send,
{
    fn metadata() -> &'static Metadata {
        static METADATA: Metadata = Metadata::new("");
        &METADATA
    }

    async fn extract(
        req: &'ex mut Request,
        depot: &'ex mut Depot,
    ) -> Result<Self, impl Writer + Send + std::fmt::Debug + 'static> {
        let max = state(depot).config.server.max_body_bytes;
        let bytes = req.payload_with_max_size(max).await.map_err(|e| match e {
            ParseError::PayloadTooLarge => {
                ApiError::too_large(format!("request body exceeds {max} bytes"))
            }
            _ => ApiError::bad_request("cannot read request body"),
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "request body is empty; JSON expected",
            ));
        }
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

impl<T: ToSchema> EndpointArgRegister for Body<T> {
    fn register(components: &mut Components, operation: &mut Operation, _arg: &str) {
        let schema = T::to_schema(components);
        operation.request_body = Some(
            RequestBody::new()
                .add_content("application/json", salvo::oapi::Content::new(schema))
                .required(salvo::oapi::Required::True),
        );
    }
}

/// Default page size of list endpoints.
pub const DEFAULT_PAGE: i64 = 100;
/// Largest page size of list endpoints.
pub const MAX_PAGE: i64 = 1000;

/// Validates a `?limit=` (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}
