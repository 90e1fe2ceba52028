//! What every page shares: errors as pages, strict forms with CSRF, signed
//! cookies for flash messages, the client's address.

pub mod client;
pub mod cookies;
pub mod errors;
pub mod forms;
pub mod pages;

pub use client::ClientInfo;
pub use errors::AppError;
pub use forms::Form;
pub use pages::{Flash, PageContext, redirect, redirect_with_flash, render};
