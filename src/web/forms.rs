//! Strict form decoding: the right content type, a bounded body, valid
//! UTF-8, no unknown or repeated fields, and a CSRF token checked first.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::AppError;
use super::cookies::RequestCookies;
use crate::auth::SessionData;

/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest value of any one field, in characters. No field needs more
/// (addresses stop at 254, passwords at 128, tokens at 43); the forms'
/// own checks then give the precise message.
pub const MAX_FIELD_CHARS: usize = 1024;
const CSRF_FIELD: &str = "csrf_token";

/// A form whose CSRF token has been checked, decoded into `T`.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let is_form = req.content_type() == "application/x-www-form-urlencoded";
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            if !is_form {
                return Err(AppError::UnsupportedMediaType);
            }
            let body = body.await.map_err(|error| match error.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => AppError::PayloadTooLarge,
                _ => AppError::BadRequest("The form could not be read.".into()),
            })?;
            let mut fields = decode_fields(&body)?;
            let token = take_field(&mut fields, CSRF_FIELD);
            check_csrf(&req, token.as_deref())?;
            let reencoded = serde_urlencoded::to_string(&fields).map_err(|_| malformed())?;
            serde_urlencoded::from_str(&reencoded)
                .map(Form)
                .map_err(|error| AppError::BadRequest(format!("The form is not valid: {error}.")))
        })
    }
}

fn malformed() -> AppError {
    AppError::BadRequest("The form is malformed.".into())
}

/// Splits a urlencoded body into fields, refusing what a browser would
/// never send instead of replacing it silently.
pub fn decode_fields(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut fields = Vec::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode_component(name)?, decode_component(value)?);
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(AppError::BadRequest(format!("The field {name:?} is too long.")));
        }
        fields.push((name, value));
    }
    let mut names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(AppError::BadRequest("The form has a repeated field.".into()));
    }
    Ok(fields)
}

fn decode_component(raw: &str) -> Result<String, AppError> {
    let spaced = raw.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| AppError::BadRequest("The form is not valid UTF-8.".into()))?;
    if decoded.chars().any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t')) {
        return Err(AppError::BadRequest("The form contains control characters.".into()));
    }
    Ok(decoded.into_owned())
}

fn take_field(fields: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let index = fields.iter().position(|(field, _)| field == name)?;
    Some(fields.remove(index).1)
}

/// Signed in: the token bound to the session. Anonymous: the double-submit
/// token from our signed cookie, which the browser must already hold. In
/// both cases a browser's `Origin` (or `Referer`) must be this site.
fn check_csrf(req: &HttpRequest, submitted: Option<&str>) -> Result<(), AppError> {
    check_origin(req)?;
    let submitted = submitted.filter(|token| !token.is_empty()).ok_or(AppError::CsrfRejected)?;
    let expected = match SessionData::of(req).csrf_token() {
        Some(session_token) => session_token,
        None => {
            let cookies = req.extensions().get::<RequestCookies>().cloned().unwrap_or_default();
            if !cookies.csrf_from_browser {
                return Err(AppError::CsrfRejected);
            }
            cookies.csrf_token
        }
    };
    if bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) { Ok(()) } else { Err(AppError::CsrfRejected) }
}

/// Refuses a POST that a browser says came from another site. The site is
/// the public URL's origin, or the host the browser addressed (so the same
/// server reached as `localhost` and as `127.0.0.1` both work). Clients
/// that send neither header (not browsers) are left to the token check.
fn check_origin(req: &HttpRequest) -> Result<(), AppError> {
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return Err(AppError::CsrfRejected);
    }
    let claimed = match (text("origin"), text("referer")) {
        (Some(origin), _) => url::Url::parse(origin).ok(),
        (None, Some(referer)) => url::Url::parse(referer).ok(),
        (None, None) => return Ok(()),
    };
    let Some(claimed) = claimed.filter(|url| url.has_host()) else {
        // `Origin: null` (sandboxed frames, some redirects) or garbage.
        return Err(AppError::CsrfRejected);
    };
    let public = req
        .app_data::<web::Data<crate::state::AppState>>()
        .map(|state| state.config.public_url.origin().ascii_serialization());
    let same_as_public = public.as_deref() == Some(claimed.origin().ascii_serialization().as_str());
    let authority = match claimed.port() {
        Some(port) => format!("{}:{port}", claimed.host_str().unwrap_or_default()),
        None => claimed.host_str().unwrap_or_default().to_owned(),
    };
    let same_as_host = text("host").is_some_and(|host| host.eq_ignore_ascii_case(&authority));
    if same_as_public || same_as_host { Ok(()) } else { Err(AppError::CsrfRejected) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_percent_decoded_with_plus_as_space() {
        let fields = decode_fields(b"email=ann%40example.com&password=a+b%2Bc&empty=&bare").unwrap();
        assert_eq!(
            fields,
            vec![
                ("email".into(), "ann@example.com".into()),
                ("password".into(), "a b+c".into()),
                ("empty".into(), String::new()),
                ("bare".into(), String::new()),
            ]
        );
    }

    #[test]
    fn invalid_utf8_repeats_and_control_characters_are_refused() {
        for body in [&b"email=%FF%FE"[..], b"email=a&email=b", b"\xff=1", b"name=a%00b"] {
            assert!(decode_fields(body).is_err(), "{body:?}");
        }
    }
}
