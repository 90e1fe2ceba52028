//! Rendering pages and redirects.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::cookies::{RequestCookies, SessionEndNoticed};
use crate::auth::SessionData;

static SITE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the site on every page. Set once at start (error pages are
/// rendered without a request, so it is process-wide).
pub fn set_site_name(name: &str) {
    let _ = SITE_NAME.set(name.to_owned());
}

pub fn site_name() -> &'static str {
    SITE_NAME.get().map_or("Usher", String::as_str)
}

/// A message shown once on the page after a redirect. It travels in an
/// encrypted cookie, so the email it may carry to pre-fill a form stays private.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Flash {
    pub message: String,
    #[serde(default)]
    pub kind: FlashKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// What a flash message tells: its look and how assistive technology
/// announces it (WAI-ARIA `status` politely, `alert` at once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    /// What was asked for was done.
    #[default]
    Success,
    /// Something to know, neither good nor bad.
    Info,
    /// Done, or nothing done, but the person should look.
    Warning,
    /// What was asked for was refused.
    Error,
}

impl FlashKind {
    /// The CSS class suffix: `flash-success`, …
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }

    /// The ARIA role of the message.
    pub fn role(self) -> &'static str {
        match self {
            Self::Success | Self::Info => "status",
            Self::Warning | Self::Error => "alert",
        }
    }

    /// Said before the message to screen readers, since colour alone tells nothing.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Success => "Done: ",
            Self::Info => "",
            Self::Warning => "Warning: ",
            Self::Error => "Error: ",
        }
    }
}

impl Flash {
    fn of(kind: FlashKind, message: impl Into<String>) -> Self {
        Self { message: message.into(), kind, email: None }
    }

    pub fn success(message: impl Into<String>) -> Self {
        Self::of(FlashKind::Success, message)
    }

    pub fn info(message: impl Into<String>) -> Self {
        Self::of(FlashKind::Info, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::of(FlashKind::Warning, message)
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::of(FlashKind::Error, message)
    }

    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}

/// What the base layout needs on every page.
#[derive(Clone, Debug)]
pub struct PageContext {
    pub site_name: &'static str,
    pub csrf_token: String,
    pub flash: Option<Flash>,
    pub signed_in: bool,
    /// The signed-in account is an administrator: the header links to the admin pages.
    pub is_admin: bool,
    /// For the hint next to new-password fields.
    pub password_min_length: u16,
    /// Where people write for help (`USHER_SUPPORT_EMAIL`), shown in the footer.
    pub support_email: Option<String>,
    /// The browser's session ended since its last page (signed out
    /// elsewhere, timed out, or disabled): say so once.
    pub session_ended: bool,
    /// Anyone may sign up (`USHER_REGISTRATION=open`): pages link to `/register`.
    pub sign_up_open: bool,
}

impl PageContext {
    /// For pages rendered without a request (error pages): no forms, no flash.
    pub fn bare() -> Self {
        Self {
            site_name: site_name(),
            csrf_token: String::new(),
            flash: None,
            signed_in: false,
            is_admin: false,
            password_min_length: 12,
            support_email: None,
            session_ended: false,
            sign_up_open: true,
        }
    }

    /// The email a flash message carried, to pre-fill a form.
    pub fn flash_email(&self) -> String {
        self.flash.as_ref().and_then(|flash| flash.email.clone()).unwrap_or_default()
    }
}

impl FromRequest for PageContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let cookies = req.extensions().get::<RequestCookies>().cloned().unwrap_or_default();
        let session = SessionData::of(req);
        let csrf_token = session.csrf_token().unwrap_or(cookies.csrf_token);
        let signed_in = session.user_id().is_some();
        // Said on a page the browser asked for, not on a form's answer.
        let session_ended = cookies.session_cookie && !signed_in && req.method() == actix_web::http::Method::GET;
        if session_ended {
            req.extensions_mut().insert(SessionEndNoticed);
        }
        let settings =
            req.app_data::<actix_web::web::Data<crate::state::AppState>>().map(|state| &state.config.settings);
        let password_min_length = settings.map_or(12, |settings| settings.password_min_length);
        let support_email = settings.and_then(|settings| settings.support_email.clone());
        let sign_up_open = settings.is_none_or(|settings| settings.registration.is_open());
        ready(Ok(Self {
            site_name: site_name(),
            csrf_token,
            flash: cookies.flash,
            signed_in,
            is_admin: session.account().is_some_and(|account| account.is_admin),
            password_min_length,
            support_email,
            session_ended,
            sign_up_open,
        }))
    }
}

pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(error) => {
            tracing::error!(%error, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side.")
        }
    }
}

/// 303 See Other: after a POST, the browser GETs the next page.
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// A redirect that shows `flash` on the next page (the cookie layer sets it).
pub fn redirect_with_flash(location: &str, flash: Flash) -> HttpResponse {
    let mut response = redirect(location);
    response.extensions_mut().insert(flash);
    response
}

/// A moment as people read it: "5 minutes ago", rendered on the server
/// (which cannot know the viewer's time zone) inside
/// `<time datetime="…" title="…">` with the exact UTC time
/// (`templates/partials/time.html`).
#[derive(Clone, Debug)]
pub struct Moment {
    /// RFC 3339, for `datetime`.
    pub iso: String,
    /// "2026-11-30 22:53 UTC", for `title`.
    pub exact: String,
    /// "5 minutes ago", "in 2 hours", "on 3 March 2026".
    pub relative: String,
}

impl Moment {
    /// `at` and `now` in Unix seconds (UTC).
    pub fn new(at: i64, now: i64) -> Self {
        use chrono::{Datelike, Timelike};
        let time = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        // Written out rather than through `format`, which parses its pattern
        // on every call: an admin page shows a hundred of these.
        let (date, (hour, minute)) = ((time.year(), time.month(), time.day()), (time.hour(), time.minute()));
        let day = format!("{:04}-{:02}-{:02}", date.0, date.1, date.2);
        Self {
            iso: format!("{day}T{hour:02}:{minute:02}:{:02}Z", time.second()),
            exact: format!("{day} {hour:02}:{minute:02} UTC"),
            relative: relative(at, now, &time),
        }
    }
}

fn relative(at: i64, now: i64, time: &chrono::DateTime<chrono::Utc>) -> String {
    let seconds = now - at;
    let (count, unit) = match seconds.abs() {
        0..60 => return "just now".to_owned(),
        s @ 60..3600 => (s / 60, "minute"),
        s @ 3600..86_400 => (s / 3600, "hour"),
        s @ 86_400..2_592_000 => (s / 86_400, "day"),
        _ => return time.format("on %-d %B %Y").to_string(),
    };
    let amount = if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") };
    if seconds >= 0 { format!("{amount} ago") } else { format!("in {amount}") }
}

#[cfg(test)]
mod tests {
    use super::Moment;

    #[test]
    fn moments_read_as_people_say_them() {
        let now = 1_764_543_180; // 2025-11-30 22:53 UTC
        let cases = [
            (now - 20, "just now"),
            (now - 300, "5 minutes ago"),
            (now - 3600, "1 hour ago"),
            (now - 3 * 86_400, "3 days ago"),
            (now + 7200, "in 2 hours"),
            (now - 90 * 86_400, "on 1 September 2025"),
        ];
        for (at, expected) in cases {
            assert_eq!(Moment::new(at, now).relative, expected);
        }
        assert_eq!(Moment::new(now, now).exact, "2025-11-30 22:53 UTC");
        assert_eq!(Moment::new(now, now).iso, "2025-11-30T22:53:00Z");
    }
}
