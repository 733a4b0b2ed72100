//! Assigns or accepts `X-Request-Id` and echoes it on every response.

use salvo::prelude::*;

/// The request id of the current request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const HEADER: &str = "x-request-id";

/// An inbound id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]`.
fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// The hoop.
#[handler]
pub async fn request_id(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(v) = id.parse() {
        res.headers_mut().insert(HEADER, v);
    }
    depot.insert_typed(RequestId(id));
}

#[cfg(test)]
mod tests {
    #[test]
    fn sanity() {
        assert!(super::sane("abc-123_x.y:z"));
        assert!(!super::sane(""));
        assert!(!super::sane("a b"));
        assert!(!super::sane("x\r\ninjected: 1"));
        assert!(!super::sane(&"a".repeat(129)));
    }
}
