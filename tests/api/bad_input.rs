use reqwest::StatusCode;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    error_pages_keep_a_signed_in_visitors_header_and_speak_plainly,
    a_client_that_stops_sending_its_form_gets_a_408,
    malformed_forms_get_a_clear_4xx_page_and_change_nothing,
    malformed_verify_links_get_a_4xx_page,
    unknown_routes_and_methods_get_pages,
    health_and_readiness_answer,
);

async fn malformed_forms_get_a_clear_4xx_page_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let token = browser.get("/register").await.csrf_token();
    let valid = |extra: &str| {
        format!(
            "csrf_token={token}&email=ann%40example.com&password=violet+tractor+umbrella+42&password_confirm=violet+tractor+umbrella+42{extra}"
        )
    };
    let form = "application/x-www-form-urlencoded";
    let huge_email =
        format!("csrf_token={token}&email={}%40example.com&password=x&password_confirm=x", "a".repeat(300));
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "missing field",
            form,
            format!("csrf_token={token}&email=ann%40example.com").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        ("repeated field", form, valid("&email=bob%40example.com").into_bytes(), StatusCode::BAD_REQUEST),
        ("non-UTF-8", form, valid("").replace("ann%40", "ann%FF%40").into_bytes(), StatusCode::BAD_REQUEST),
        ("raw non-UTF-8", form, [valid("").as_bytes(), b"\xff"].concat(), StatusCode::BAD_REQUEST),
        (
            "oversized body",
            form,
            valid(&format!("&pad={}", "x".repeat(20_000))).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "wrong content type",
            "application/json",
            br#"{"email":"ann@example.com"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("no content type", "", valid("").into_bytes(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("over-long email", form, huge_email.into_bytes(), StatusCode::UNPROCESSABLE_ENTITY),
    ];

    for (name, content_type, body, expected) in cases {
        let page = browser.post_body("/register", content_type, body).await;
        assert_eq!(page.status, expected, "{name}: {}", page.body);
        assert!(page.body.contains("<h1>") && page.body.contains("</html>"), "{name}: a page, not a bare status");
        assert_plain_words(&page.body, name);
    }
    assert_eq!(app.row_counts().users, 0);
    assert_eq!(app.row_counts().outbox, 0);
}

async fn malformed_verify_links_get_a_4xx_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    for link in ["/verify?token=short", "/verify?token=%FF%FE", "/verify?token=a&token=b", "/password/reset"] {
        let page = browser.get(link).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{link}");
        assert!(page.body.contains("</html>"), "{link}");
        assert_plain_words(&page.body, link);
    }
    let forged_link = format!("/verify?token={}", "A".repeat(43));
    assert_eq!(browser.get(&forged_link).await.status, StatusCode::GONE);
    let token = browser.get("/verify").await.csrf_token();
    let forged = browser.post_raw("/verify", &[("csrf_token", token.as_str()), ("token", &"A".repeat(43))]).await;
    assert_eq!(forged.status, StatusCode::GONE, "posting a forged token uses nothing");
    let fields =
        [("csrf_token", token.as_str()), ("token", &"A".repeat(43)), ("email", "a@example.com"), ("code", "1")];
    let both = browser.post_raw("/verify", &fields).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
}

/// Error pages speak to people, not in a parser's words.
#[track_caller]
fn assert_plain_words(body: &str, what: &str) {
    for jargon in ["deserialize", "field `", "invalid type", "i64", "parse"] {
        assert!(!body.contains(jargon), "{what}: parser wording {jargon:?} on the page:\n{body}");
    }
}

async fn unknown_routes_and_methods_get_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();

    let missing = browser.get("/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("This page does not exist."));

    let wrong_method = browser.post_raw("/account", &[]).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.body.contains("</html>"));
}

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    assert_eq!(browser.get("/healthz").await.status, StatusCode::OK);
    let ready = browser.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body, "ready");
}

async fn a_client_that_stops_sending_its_form_gets_a_408(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(backend).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /register HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nemail=ann"
    );

    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(25), stream.read_to_end(&mut answer)).await;

    assert!(read.is_ok(), "answered and closed before the 30 s request limit");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("took too long to arrive"), "{answer}");
    assert_eq!(app.row_counts().users, 0);
}

async fn error_pages_keep_a_signed_in_visitors_header_and_speak_plainly(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signed_in_user("ann@example.com").await;
    let token = user.get("/account").await.csrf_token();

    let pages = [
        ("404", user.get("/no/such/page").await, StatusCode::NOT_FOUND),
        ("405", user.post_raw("/account", &[("csrf_token", &token)]).await, StatusCode::METHOD_NOT_ALLOWED),
        ("403", user.get("/admin").await, StatusCode::FORBIDDEN),
        ("bad id", app.signed_in_admin("root@example.com").await.get("/admin/users/abc").await, StatusCode::NOT_FOUND),
        ("400", user.get("/verify?token=short").await, StatusCode::BAD_REQUEST),
        (
            "403 csrf",
            user.post_raw("/account/sessions/revoke-others", &[("csrf_token", "forged")]).await,
            StatusCode::FORBIDDEN,
        ),
    ];

    for (name, page, status) in pages {
        assert_eq!(page.status, status, "{name}");
        assert!(page.body.contains("action=\"/logout\""), "{name}: the signed-in header:\n{}", page.body);
        let heading = page.body.split("<h1>").nth(1).and_then(|rest| rest.split("</h1>").next()).unwrap_or_default();
        for phrase in ["Bad Request", "Forbidden", "Not Found", "Method Not Allowed"] {
            assert_ne!(heading, phrase, "{name}: a bare HTTP phrase as the heading");
        }
        assert_plain_words(&page.body, name);
    }
    let anonymous = app.browser().get("/no/such/page").await;
    assert!(anonymous.body.contains("href=\"/login\""), "the signed-out header for a visitor");
}
