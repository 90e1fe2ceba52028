//! Structured logs. Request spans carry the path without its query string,
//! since links carry secrets there (`/verify?token=…`).
//!
//! Expected refusals (sign-in required, forbidden, not found, a rejected
//! form, a rate limit: every 3xx and 4xx) are logged at DEBUG; only real
//! failures (5xx) reach WARN, so they stand out.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::{Level, Span};
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

/// Logs to standard error (as the README says), in colour only on a terminal.
pub fn init() {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub struct PathOnlySpan;

/// The level of the event that ends a request with `status`: WARN for a
/// server-side failure (the error itself is logged where it happens, at
/// ERROR for a bug), DEBUG for everything else, refusals included.
pub fn level_for(status: u16) -> Level {
    if status >= 500 { Level::WARN } else { Level::DEBUG }
}

impl RootSpanBuilder for PathOnlySpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing::info_span!("request", method = %request.method(), path = %request.path(), status = tracing::field::Empty)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error) = match outcome {
            Ok(response) => (response.status().as_u16(), response.response().error()),
            Err(error) => (error.as_response_error().status_code().as_u16(), Some(error)),
        };
        span.record("status", status);
        let _entered = span.enter();
        // The error's text, not its `Debug`: a refusal's says what was
        // refused and carries no form data.
        let error = error.map(ToString::to_string);
        if level_for(status) == Level::WARN {
            tracing::warn!(status, error, "request failed");
        } else if let Some(reason) = error {
            tracing::debug!(status, %reason, "request refused");
        } else {
            tracing::debug!(status, "request done");
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::level_for;

    #[test]
    fn refusals_are_debug_and_failures_warn() {
        for refusal in [303, 400, 403, 404, 405, 413, 429] {
            assert_eq!(level_for(refusal), Level::DEBUG, "{refusal}");
        }
        for failure in [500, 502, 503] {
            assert_eq!(level_for(failure), Level::WARN, "{failure}");
        }
    }
}
