//! Integration tests: each starts the real server on a random port with a
//! fresh database and a real SMTP sink, and drives it over HTTP like a
//! browser. Every test runs on SQLite, and on PostgreSQL when
//! `USHER_TEST_POSTGRES_URL` is set.

mod helpers;

mod account;
mod admin;
mod bad_input;
mod browser_true;
mod cleanup;
mod config;
mod csrf;
mod deletion;
mod email_change;
mod encoded_bodies;
mod export;
mod faults;
mod forward_auth;
mod groups;
mod headers;
mod idn;
mod invitations;
mod login;
mod logs;
mod mail;
mod mail_lease;
mod outage;
mod proxies;
mod recovery;
mod register;
mod sessions;
mod sign_in_alerts;
mod throttle;
mod two_factor;
mod verify;
