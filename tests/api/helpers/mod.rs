//! The harness: a server per test, a browser-like client, an SMTP sink.

mod app;
mod browser;
mod database;
mod form;
mod proxy;
mod smtp_sink;

pub use app::{
    ENCRYPTION_KEY, SESSION_KEY, TestApp, session_id, sha256, spawn_app, spawn_app_on, spawn_app_with,
    spawn_guarding_app,
};
pub use browser::{Browser, Page, html_unescape};
pub use database::{Backend, TestDatabase};
pub use form::HtmlForm;
pub use proxy::{Proxy, ProxyKind, Seen, Upstream, caddy_site, nginx_locations};
pub use smtp_sink::{MailSink, ReceivedMail};

/// The parent domain of guarded apps in tests: every name below it is
/// found on 127.0.0.1 by test browsers (and Chromium, for `.localhost`).
pub const GUARD_DOMAIN: &str = "usher.localhost";
/// The hosts below `GUARD_DOMAIN` that tests use.
pub const GUARD_HOSTS: &[&str] = &["auth.usher.localhost", "wiki.usher.localhost", "other.usher.localhost"];

/// A password that passes the policy.
pub const PASSWORD: &str = "violet tractor umbrella 42";

/// Declares each listed `async fn name(backend: Backend)` as one test per
/// backend: `sqlite::name` always, `postgres::name` when
/// `USHER_TEST_POSTGRES_URL` is set (otherwise it says it was skipped).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}
