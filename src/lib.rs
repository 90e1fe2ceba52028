//! Usher: a self-hosted account service with server-rendered pages.

pub mod accounts;
pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod forward_auth;
pub mod mail;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod web;
