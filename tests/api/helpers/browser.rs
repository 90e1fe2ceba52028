//! A client that behaves like a browser: a cookie jar, forms with their
//! hidden CSRF field, redirects followed on request.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, LOCATION};

#[derive(Clone)]
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    jar: Arc<Jar>,
}

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|value| value.to_str().ok())
    }

    /// The value of the first hidden or text input named `name`.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\"");
        let at = self.body.find(&marker)?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag_end = at + self.body[at..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let value_at = tag.find("value=\"")? + "value=\"".len();
        let value = &tag[value_at..];
        Some(html_unescape(&value[..value.find('"')?]))
    }

    pub fn csrf_token(&self) -> String {
        self.input_value("csrf_token").unwrap_or_else(|| panic!("no csrf_token on the page:\n{}", self.body))
    }

    /// `Set-Cookie` headers of this response for the named cookie.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    #[track_caller]
    pub fn assert_redirects_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "expected a redirect to {path}, got:\n{}", self.body);
        assert_eq!(self.location(), Some(path));
    }
}

pub fn html_unescape(text: &str) -> String {
    text.replace("&#38;", "&")
        .replace("&#x26;", "&")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("usher-tests/1.0")
            .build()
            .expect("http client");
        Self { base: base.to_owned(), client, jar }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Page {
        read(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// POSTs exactly these fields (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.post_body(path, "application/x-www-form-urlencoded", body.into_bytes()).await
    }

    pub async fn post_body(&self, path: &str, content_type: &str, body: Vec<u8>) -> Page {
        let request = self.client.post(self.url(path)).header("content-type", content_type).body(body);
        read(request.send().await.expect("POST")).await
    }

    /// POSTs a urlencoded body with one extra header (`Origin`, `Referer`, …).
    pub async fn post_with_header(&self, path: &str, header: (&str, &str), body: String) -> Page {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(header.0, header.1)
            .body(body);
        read(request.send().await.expect("POST")).await
    }

    /// Opens `page`, then submits its form to `action` with these fields
    /// plus the page's CSRF token, as a person pressing the button would.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page).await.csrf_token();
        let mut with_token = vec![("csrf_token", token.as_str())];
        with_token.extend_from_slice(fields);
        self.post_raw(action, &with_token).await
    }

    /// Follows one redirect, as the browser would.
    pub async fn follow(&self, page: &Page) -> Page {
        let location = page.location().expect("a redirect");
        self.get(location).await
    }

    /// The value of a cookie the browser holds.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// Puts a cookie in the jar, as an attacker could in a victim's browser.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = self.base.parse().unwrap();
        self.jar.add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }
}

async fn read(response: reqwest::Response) -> Page {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Page { status, headers, body }
}
