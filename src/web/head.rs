//! `HEAD` wherever `GET` works (RFC 9110 §9.3.2): uptime monitors and link
//! checkers use it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

/// Routes a `HEAD` request as the `GET` of the same URL. The response keeps
/// its status and headers; actix's HTTP/1 encoder already knows the request
/// was `HEAD` and sends no body.
pub async fn head_as_get<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
