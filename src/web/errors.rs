//! Errors that end a request, each rendered as a page with the right status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::PageContext;
use crate::auth::HashError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("The form has expired or did not come from this site. Go back, reload the page and try again.")]
    CsrfRejected,
    #[error("You do not have access to this page.")]
    Forbidden,
    #[error("This page does not exist.")]
    NotFound,
    #[error("The form took too long to arrive. Check your connection and send it again.")]
    RequestTimeout,
    #[error("The form is too large.")]
    PayloadTooLarge,
    #[error("The request's headers are too large.")]
    HeadersTooLarge,
    #[error("Forms must be sent as application/x-www-form-urlencoded.")]
    UnsupportedMediaType,
    /// A body sent compressed, which no browser does.
    #[error("Usher does not accept compressed requests. Go back, reload the page and send the form again.")]
    EncodedBody,
    #[error("Too many attempts. Try again in {}.", minutes(.0))]
    TooManyRequests(std::time::Duration),
    /// Too many failed sign-ins: a reset link is the way back in.
    #[error("Too many attempts. Try again in {}.", minutes(.0))]
    SignInLocked(std::time::Duration),
    #[error("Usher is busy or cannot reach its database. Nothing was lost; please try again in a moment.")]
    Unavailable(String),
    #[error("Something went wrong on our side.")]
    Internal(#[source] anyhow::Error),
}

/// "3 minutes", rounded up, at least one.
fn minutes(wait: &std::time::Duration) -> String {
    match wait.as_secs().div_ceil(60).max(1) {
        1 => "1 minute".to_owned(),
        n => format!("{n} minutes"),
    }
}

impl AppError {
    /// The same refusal, from the sign-in throttle.
    pub fn as_sign_in_lockout(self) -> Self {
        match self {
            Self::TooManyRequests(wait) => Self::SignInLocked(wait),
            other => other,
        }
    }
}

impl From<crate::throttle::RetryAfter> for AppError {
    fn from(retry: crate::throttle::RetryAfter) -> Self {
        Self::TooManyRequests(retry.0)
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        if error.is_outage() { Self::Unavailable(error.to_string()) } else { Self::Internal(error.into()) }
    }
}

impl From<HashError> for AppError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Self::Unavailable("password hashing queue is full".into()),
            HashError::Failed(reason) => Self::Internal(anyhow::anyhow!(reason)),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/error.html")]
pub struct ErrorPage<'a> {
    pub ctx: &'a PageContext,
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
    /// Too many sign-in attempts: the way out is a reset link.
    pub offer_reset: bool,
}

/// What a request that is answered without a handler's error gets: the
/// title and message of its status in plain words.
fn bare_page(status: StatusCode, ctx: &PageContext) -> HttpResponse {
    let (title, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("That does not work here", "This page does not accept that kind of request. Go back and try again.")
        }
        StatusCode::NOT_FOUND => ("Page not found", "This page does not exist."),
        _ => ("That did not work", "The request could not be handled. Go back and try again."),
    };
    let page = ErrorPage { ctx, status: status.as_u16(), title, message, offer_reset: false };
    super::render(status, &page)
}

impl AppError {
    /// The heading of the error's page, in plain words.
    pub fn title(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "That did not work",
            Self::CsrfRejected => "This form has expired",
            Self::Forbidden => "You do not have access",
            Self::NotFound => "Page not found",
            Self::RequestTimeout => "That took too long",
            Self::PayloadTooLarge | Self::HeadersTooLarge => "That is too large",
            Self::UnsupportedMediaType | Self::EncodedBody => "That form could not be read",
            Self::TooManyRequests(_) | Self::SignInLocked(_) => "Too many attempts",
            Self::Unavailable(_) => "Please try again in a moment",
            Self::Internal(_) => "Something went wrong",
        }
    }

    /// The error's page for the visitor `ctx` describes (signed in or not),
    /// with its status and the headers it calls for (`Retry-After`,
    /// `Connection: close`).
    pub fn page(&self, ctx: &PageContext) -> HttpResponse {
        let status = self.status_code();
        let message = self.to_string();
        let offer_reset = matches!(self, Self::SignInLocked(_));
        let page = ErrorPage { ctx, status: status.as_u16(), title: self.title(), message: &message, offer_reset };
        let mut response = super::render(status, &page);
        if matches!(self, Self::RequestTimeout) {
            // The rest of the body may still trickle in: do not read it as the next request.
            response.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        }
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }

    /// Seconds to wait before trying again (`Retry-After`), where the error has a wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Unavailable(_) => Some(5),
            Self::TooManyRequests(wait) | Self::SignInLocked(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::CsrfRejected | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType | Self::EncodedBody => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests(_) | Self::SignInLocked(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(error) => tracing::error!(error = ?error, "request failed"),
            Self::Unavailable(reason) => tracing::warn!(%reason, "answered 503"),
            _ => {}
        }
        // Without the request: `error_pages_in_context` renders it again for the visitor.
        self.page(&PageContext::bare())
    }
}

/// Renders error pages for the visitor who gets them, so a signed-in
/// person keeps their header (and is not led to think they were signed
/// out). Runs inside the session layer, where the session is still known.
pub async fn error_pages_in_context<B: actix_web::body::MessageBody + 'static>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    use actix_web::FromRequest;
    use actix_web::body::BodySize;

    let res = next.call(req).await?;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res.map_into_left_body());
    }
    let Ok(ctx) = PageContext::from_request(res.request(), &mut actix_web::dev::Payload::None).into_inner() else {
        return Ok(res.map_into_left_body());
    };
    let page = match res.response().error().and_then(|error| error.as_error::<AppError>()) {
        Some(app_error) => app_error.page(&ctx),
        None if matches!(res.response().body().size(), BodySize::None | BodySize::Sized(0)) => bare_page(status, &ctx),
        None => return Ok(res.map_into_left_body()),
    };
    let (req, _) = res.into_parts();
    Ok(actix_web::dev::ServiceResponse::new(req, page).map_into_right_body())
}

/// Gives a page to error responses that arrive without one: actix's own
/// 404/405/413 answers.
pub fn render_bare_errors<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::body::BodySize;
    use actix_web::middleware::ErrorHandlerResponse;

    let has_body = !matches!(res.response().body().size(), BodySize::None | BodySize::Sized(0));
    if has_body {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let page = match res.status() {
        StatusCode::INTERNAL_SERVER_ERROR => {
            let reason = res.response().error().map(|e| e.to_string()).unwrap_or_default();
            AppError::Unavailable(format!("session store: {reason}")).error_response()
        }
        StatusCode::NOT_FOUND => AppError::NotFound.error_response(),
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge.error_response(),
        status => bare_page(status, &PageContext::bare()),
    };
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, page).map_into_right_body()))
}

/// Gives a page to the errors that actix-session returns instead of a
/// response when its store fails: the database is down, so that is an
/// outage, a 503.
pub async fn session_errors_as_outages<B: actix_web::body::MessageBody + 'static>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    next.call(req).await.map_err(|error| {
        if error.as_response_error().status_code() == StatusCode::INTERNAL_SERVER_ERROR {
            AppError::Unavailable(format!("session store: {error}")).into()
        } else {
            error
        }
    })
}
