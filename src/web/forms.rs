//! Form decoding: strict where it protects (the content type, a bounded
//! body, valid UTF-8, no control characters, no repeated known field, the
//! CSRF token checked first), lenient where browsers differ: fields the
//! form does not know (a password manager's or an extension's) are
//! ignored.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::AppError;
use super::cookies::RequestCookies;
use super::return_to::addresses_this_host;
use crate::auth::SessionData;

/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest value of any one field, in characters. No field needs more
/// (addresses stop at 254, passwords at 128, tokens at 43); the forms'
/// own checks then give the precise message.
pub const MAX_FIELD_CHARS: usize = 1024;
const CSRF_FIELD: &str = "csrf_token";
/// Longest wait for a form's body once its headers arrived. A browser sends
/// 16 KiB in far less; a client that stops sending gets a 408 instead of
/// holding the request until `REQUEST_TIMEOUT` turns it into a 503.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A form whose CSRF token has been checked, decoded into `T`.
pub struct Form<T>(pub T);

/// The sign-in form: it may have been loaded before this browser's current
/// session began (left open in another tab), so besides the session's token
/// it also accepts the browser's own double-submit token. Signing in
/// replaces the session either way.
pub struct SignInForm<T>(pub T);

/// Which CSRF tokens a form accepts.
#[derive(Clone, Copy)]
enum Tokens {
    /// Signed in: the session's; anonymous: the browser's.
    SessionOrAnonymous,
    /// The session's or the browser's.
    SessionOrBrowser,
}

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_form(req, payload, Tokens::SessionOrAnonymous);
        Box::pin(async move { read.await.map(Form) })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for SignInForm<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_form(req, payload, Tokens::SessionOrBrowser);
        Box::pin(async move { read.await.map(SignInForm) })
    }
}

fn read_form<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    tokens: Tokens,
) -> LocalBoxFuture<'static, Result<T, AppError>> {
    let req = req.clone();
    let is_form = req.content_type() == "application/x-www-form-urlencoded";
    let body = web::Bytes::from_request(&req, payload);
    Box::pin(async move {
        if !is_form {
            return Err(AppError::UnsupportedMediaType);
        }
        let body = tokio::time::timeout(BODY_TIMEOUT, body).await.map_err(|_| AppError::RequestTimeout)?;
        let body = body.map_err(|error| match error.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => AppError::PayloadTooLarge,
            _ => AppError::BadRequest("The form could not be read.".into()),
        })?;
        let mut fields = decode_fields(&body)?;
        let token = take_field(&mut fields, CSRF_FIELD)?;
        check_csrf(&req, token.as_deref(), tokens)?;
        deserialize_fields(&fields)
    })
}

/// Decodes a urlencoded body into `T`, as the form extractor does after
/// taking out the CSRF token: unknown fields are ignored, a known field
/// sent twice, a missing one or a value of the wrong type is refused with
/// a message in plain words.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    deserialize_fields(&decode_fields(body)?)
}

fn deserialize_fields<T: DeserializeOwned>(fields: &[(String, String)]) -> Result<T, AppError> {
    let reencoded = serde_urlencoded::to_string(fields).map_err(|_| malformed())?;
    serde_urlencoded::from_str(&reencoded).map_err(|error| {
        // serde's own wording ("duplicate field `email`") is not for people.
        let message = error.to_string();
        let plain = if message.starts_with("duplicate field") {
            "The form has a repeated field."
        } else if message.starts_with("missing field") {
            "The form is missing a field. Reload the page and try again."
        } else {
            "The form is not valid. Reload the page and try again."
        };
        AppError::BadRequest(plain.into())
    })
}

fn malformed() -> AppError {
    AppError::BadRequest("The form is malformed.".into())
}

/// Splits a urlencoded body into `(name, value)` pairs in body order,
/// refusing what a browser would never send (invalid UTF-8, control
/// characters, over-long values) instead of replacing it silently.
/// Repeated names are kept: whether a repeat matters depends on the form.
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

/// Removes the field `name`; a second one is refused, as for any known field.
fn take_field(fields: &mut Vec<(String, String)>, name: &str) -> Result<Option<String>, AppError> {
    let Some(index) = fields.iter().position(|(field, _)| field == name) else { return Ok(None) };
    let value = fields.remove(index).1;
    if fields.iter().any(|(field, _)| field == name) {
        return Err(AppError::BadRequest("The form has a repeated field.".into()));
    }
    Ok(Some(value))
}

/// Signed in: the token bound to the session (and, for `SessionOrBrowser`,
/// the browser's too). Anonymous: the double-submit token from our signed
/// cookie, which the browser must already hold. In every case a browser's
/// `Origin` (or `Referer`) must be this site.
fn check_csrf(req: &HttpRequest, submitted: Option<&str>, tokens: Tokens) -> Result<(), AppError> {
    check_origin(req)?;
    let submitted = submitted.filter(|token| !token.is_empty()).ok_or(AppError::CsrfRejected)?;
    let cookies = req.extensions().get::<RequestCookies>().cloned().unwrap_or_default();
    let browser_token = cookies.csrf_from_browser.then_some(cookies.csrf_token);
    let session_token = SessionData::of(req).csrf_token();
    let accepted = match (tokens, session_token) {
        (Tokens::SessionOrAnonymous, Some(session_token)) => vec![session_token],
        (Tokens::SessionOrBrowser, Some(session_token)) => {
            [Some(session_token), browser_token].into_iter().flatten().collect()
        }
        (_, None) => browser_token.into_iter().collect(),
    };
    let matches = accepted.iter().any(|expected| bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())));
    if matches { Ok(()) } else { Err(AppError::CsrfRejected) }
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
    if same_as_public || addresses_this_host(req, &claimed) { Ok(()) } else { Err(AppError::CsrfRejected) }
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
    fn invalid_utf8_and_control_characters_are_refused() {
        for body in [&b"email=%FF%FE"[..], b"\xff=1", b"name=a%00b"] {
            assert!(decode_fields(body).is_err(), "{body:?}");
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Login {
        email: String,
        remember_me: Option<String>,
    }

    #[test]
    fn unknown_fields_are_ignored_even_when_repeated() {
        let login: Login = decode(b"username=ann&email=a%40b.c&utm=1&utm=2").unwrap();
        assert_eq!(login, Login { email: "a@b.c".into(), remember_me: None });
    }

    #[test]
    fn a_repeated_or_missing_known_field_is_refused_in_plain_words() {
        for (body, expected) in [
            (&b"email=a&email=b"[..], "The form has a repeated field."),
            (b"email=a&remember_me=on&remember_me=on", "The form has a repeated field."),
            (b"remember_me=on", "The form is missing a field. Reload the page and try again."),
        ] {
            let error = decode::<Login>(body).unwrap_err().to_string();
            assert_eq!(error, expected, "{body:?}");
        }
    }

    #[test]
    fn a_second_csrf_token_is_refused() {
        let mut fields = decode_fields(b"csrf_token=a&email=x&csrf_token=b").unwrap();
        assert!(take_field(&mut fields, CSRF_FIELD).is_err());
    }
}
