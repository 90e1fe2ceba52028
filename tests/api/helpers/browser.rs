//! A client that behaves like a browser: a cookie jar, forms with their
//! hidden CSRF field, redirects followed on request.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, LOCATION};

use super::form::HtmlForm;

#[derive(Clone)]
pub struct Browser {
    pub base: String,
    client: reqwest::Client,
    jar: Arc<Jar>,
}

#[derive(Debug)]
pub struct Page {
    /// Where the page was loaded from.
    pub url: String,
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

    /// The form of this page whose `action` is `action`, as a browser reads it.
    pub fn form(&self, action: &str) -> HtmlForm {
        HtmlForm::find(&self.body, action)
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

    /// The text of each element matched by the CSS selector `css`,
    /// whitespace collapsed.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let document = scraper::Html::parse_document(&self.body);
        let selector = scraper::Selector::parse(css).unwrap();
        document
            .select(&selector)
            .map(|element| element.text().collect::<Vec<_>>().join(" "))
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The value of attribute `name` of each element matched by `css`.
    pub fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let document = scraper::Html::parse_document(&self.body);
        let selector = scraper::Selector::parse(css).unwrap();
        document.select(&selector).filter_map(|element| element.value().attr(name)).map(str::to_owned).collect()
    }

    /// The text of each cell of each row matched by `rows` (a CSS
    /// selector such as `#users tbody tr`), whitespace collapsed.
    pub fn table(&self, rows: &str) -> Vec<Vec<String>> {
        let document = scraper::Html::parse_document(&self.body);
        let rows = scraper::Selector::parse(rows).unwrap();
        let cells = scraper::Selector::parse("th, td").unwrap();
        let text = |cell: scraper::ElementRef| cell.text().collect::<Vec<_>>().join(" ");
        let collapse = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
        document.select(&rows).map(|row| row.select(&cells).map(|cell| collapse(text(cell))).collect()).collect()
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
    /// A browser at `base` that finds the `GUARD_HOSTS` on 127.0.0.1.
    pub fn new(base: &str) -> Self {
        Self::resolving(base, super::GUARD_HOSTS)
    }

    /// A browser that finds each of `hosts` (e.g. `wiki.usher.localhost`)
    /// on 127.0.0.1, whatever the system resolver says: for guarded apps
    /// and cookies for a parent domain. The port comes from each URL.
    pub fn resolving(base: &str, hosts: &[&str]) -> Self {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("usher-tests/1.0");
        for host in hosts {
            builder = builder.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        Self { base: base.to_owned(), client: builder.build().expect("http client"), jar }
    }

    /// GETs an absolute URL (another host, say) with extra headers.
    pub async fn get_url(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("GET")).await
    }

    /// POSTs `body` to an absolute URL (another host, say).
    pub async fn post_url(&self, url: &str, content_type: &str, body: Vec<u8>) -> Page {
        let request = self.client.post(url).header("content-type", content_type).body(body);
        read(request.send().await.expect("POST")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Page {
        read(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn head(&self, path: &str) -> Page {
        read(self.client.head(self.url(path)).send().await.expect("HEAD")).await
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

    /// Opens `page`, then submits its form whose `action` is `action`, as
    /// a browser would: every named control with its served value (hidden
    /// inputs included, unchecked boxes and disabled controls left out),
    /// with `fields` laid over them, and the `Origin` and `Sec-Fetch-Site`
    /// headers Chromium sends. Panics when the page has no such form or a
    /// field is not one of the form's controls.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(page).await;
        self.submit_form(&page, action, fields).await
    }

    /// Submits a form of a page already loaded (a re-rendered form, say),
    /// with the `Referer` a browser sends under `Referrer-Policy: same-origin`.
    /// A `method="get"` form loads its action with the fields as the query.
    pub async fn submit_form(&self, page: &Page, action: &str, fields: &[(&str, &str)]) -> Page {
        let form = page.form(action).fill(fields);
        if form.method == "get" {
            return self.get(&format!("{action}?{}", form.encode())).await;
        }
        let body = form.encode();
        let request = self
            .client
            .post(self.url(action))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &self.base)
            .header("referer", &page.url)
            .header("sec-fetch-site", "same-origin")
            .body(body);
        read(request.send().await.expect("POST")).await
    }

    /// As `submit_form`, but the body is `encode`d and declared with
    /// `Content-Encoding: coding`, which no browser does.
    pub async fn submit_form_encoded(
        &self,
        page: &Page,
        action: &str,
        fields: &[(&str, &str)],
        coding: &str,
        encode: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Page {
        let body = encode(page.form(action).fill(fields).encode().as_bytes());
        let request = self
            .client
            .post(self.url(action))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-encoding", coding)
            .header("origin", &self.base)
            .header("referer", &page.url)
            .header("sec-fetch-site", "same-origin")
            .body(body);
        read(request.send().await.expect("POST")).await
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

    /// Drops the cookie `name` set for `domain`, as a browser clearing it would.
    pub fn forget_cookie(&self, name: &str, domain: &str) {
        let url = format!("http://auth.{domain}/").parse().unwrap();
        self.jar.add_cookie_str(&format!("{name}=; Domain={domain}; Path=/; Max-Age=0"), &url);
    }

    /// Puts a cookie in the jar, as an attacker could in a victim's browser.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = self.base.parse().unwrap();
        self.jar.add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }
}

async fn read(response: reqwest::Response) -> Page {
    let url = response.url().to_string();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Page { url, status, headers, body }
}
