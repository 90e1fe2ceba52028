//! What every page shares: errors as pages, strict forms with CSRF, signed
//! cookies for flash messages, the client's address.

pub mod client;
pub mod cookies;
pub mod errors;
pub mod form_errors;
pub mod forms;
pub mod head;
pub mod limits;
pub mod pages;
pub mod return_to;

pub use client::ClientInfo;
pub use errors::AppError;
pub use form_errors::FormErrors;
pub use forms::Form;
pub use pages::{Flash, Moment, PageContext, redirect, redirect_with_flash, render};

/// The least time an answer about an address takes. Registration,
/// resend, forgot-password and code entry do a little more database work
/// for an address with an account than for one without; answering no
/// sooner than this hides the difference.
pub const ANSWER_FLOOR: std::time::Duration = std::time::Duration::from_millis(150);

/// Waits (without holding a thread) until `ANSWER_FLOOR` has passed since `started`.
pub async fn answer_no_sooner(started: std::time::Instant) {
    if let Some(left) = ANSWER_FLOOR.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
}
