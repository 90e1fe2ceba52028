//! End-to-end tests in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against the real server of the API suite's
//! harness, with an axe-core accessibility audit and screenshots of every
//! page (desktop and 360 px wide) under `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` and `npm ci` in
//! `tests/browser/`. Without them the tests say on the terminal that they
//! were skipped, and pass; with `USHER_BROWSER_TESTS=required` (set by
//! `.ci/run`) they fail instead. `USHER_BROWSER_TESTS=skip` skips them on
//! purpose; `USHER_CHROMEDRIVER` and `USHER_CHROMIUM` name other binaries.

#[path = "../api/helpers/mod.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod helpers;

mod chrome;
mod flows;
