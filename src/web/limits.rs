//! Limits on what one request may take: header size, time, and no
//! encoded bodies.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;

use super::AppError;

/// Largest total size of a request's headers (names and values). Browsers
/// send a few KiB; actix itself would take up to 128 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Longest a request may take. Far longer than the longest wait for a
/// password-hashing thread (a full queue of 128 takes about 1.5 s on two
/// cores), so only a stuck database ends a request this way.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers 503 instead of hanging when a request takes too long.
pub async fn request_timeout<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.call(req)).await {
        Ok(response) => response,
        Err(_) => Err(AppError::Unavailable("the request took too long".into()).into()),
    }
}

/// Refuses requests whose headers are larger than `MAX_HEADER_BYTES` with
/// a 431 page.
pub async fn header_limit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let size: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > MAX_HEADER_BYTES {
        return Err(AppError::HeadersTooLarge.into());
    }
    next.call(req).await
}

/// Refuses, with a 415 page, any request that sends a body (a non-zero
/// `Content-Length`, or a `Transfer-Encoding`) declaring a
/// `Content-Encoding` (RFC 9110 §8.4) other than `identity`, before a
/// handler reads a byte of it. Browsers never compress what they send, and
/// inflating a body would let a few KiB on the wire take megabytes of
/// memory. `identity` means "not encoded" and costs nothing, so it passes.
/// Without a body the header is harmless, and proxies asking about a
/// request to a guarded app (`/auth/request`, `/auth/forward`) copy that
/// request's headers, whatever its body was.
pub async fn refuse_content_encoding<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let headers = req.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers.get(CONTENT_LENGTH).is_some_and(|length| length.to_str().map_or(true, |n| n.trim() != "0"));
    let encoded = headers
        .get_all(CONTENT_ENCODING)
        .any(|value| !value.to_str().is_ok_and(|coding| coding.trim().eq_ignore_ascii_case("identity")));
    if has_body && encoded {
        return Err(AppError::EncodedBody.into());
    }
    next.call(req).await
}
