//! Request bodies that declare a `Content-Encoding`: browsers never send
//! them, so Usher refuses them with a 415 page instead of inflating them.

use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, Page, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_gzip_encoded_sign_in_form_gets_a_415_page_and_signs_no_one_in,
    a_gzip_encoded_registration_form_gets_a_415_page_and_makes_no_account,
    any_declared_coding_of_a_body_is_refused_but_identity_passes,
);

async fn a_gzip_encoded_sign_in_form_gets_a_415_page_and_signs_no_one_in(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register_verified("ann@example.com").await;
    let browser = app.browser();
    let login = browser.get("/login").await;
    let fields = [("email", "ann@example.com"), ("password", PASSWORD)];

    let refused = browser.submit_form_encoded(&login, "/login", &fields, "gzip", gzip).await;

    assert_refused_in_plain_words(&refused);
    assert_eq!(app.row_counts().sessions, 0, "no session was made");
    browser.get("/account").await.assert_redirects_to("/login?next=%2Faccount");
    let plain = browser.submit_form(&login, "/login", &fields).await;
    plain.assert_redirects_to("/account");
    assert_eq!(app.row_counts().sessions, 1);
}

async fn a_gzip_encoded_registration_form_gets_a_415_page_and_makes_no_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let register = browser.get("/register").await;
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("password_confirm", PASSWORD)];

    let refused = browser.submit_form_encoded(&register, "/register", &fields, "gzip", gzip).await;

    assert_refused_in_plain_words(&refused);
    assert_eq!(app.row_counts().users, 0, "no account was made");
    assert_eq!(app.row_counts().outbox, 0, "no mail was queued");
    browser.submit_form(&register, "/register", &fields).await.assert_redirects_to("/verify");
    assert_eq!(app.row_counts().users, 1);
}

async fn any_declared_coding_of_a_body_is_refused_but_identity_passes(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let register = browser.get("/register").await;
    let fields = [("email", "ann@example.com"), ("password", PASSWORD), ("password_confirm", PASSWORD)];
    let unchanged = |body: &[u8]| body.to_vec();

    for coding in ["deflate", "br", "zstd", "x-gzip", "identity, gzip", "nonsense"] {
        let page = browser.submit_form_encoded(&register, "/register", &fields, coding, unchanged).await;
        assert_eq!(page.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{coding}");
    }
    assert_eq!(app.row_counts().users, 0);
    // Without a body there is nothing to inflate: the header changes nothing.
    for path in ["/login", "/healthz"] {
        let page = browser.get_url(&browser.url(path), &[("content-encoding", "gzip")]).await;
        assert_eq!(page.status, StatusCode::OK, "GET {path}");
    }

    // `identity` means "not encoded": the form is read as sent.
    let page = browser.submit_form_encoded(&register, "/register", &fields, "Identity", unchanged).await;
    page.assert_redirects_to("/verify");
    assert_eq!(app.row_counts().users, 1);
}

#[track_caller]
fn assert_refused_in_plain_words(page: &Page) {
    assert_eq!(page.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", page.body);
    assert!(page.body.contains("<h1>") && page.body.contains("</html>"), "a page, not a bare status");
    assert!(page.body.contains("compressed"), "says why in plain words: {}", page.body);
    for jargon in ["Content-Encoding", "gzip", "decode", "parse"] {
        assert!(!page.body.contains(jargon), "no jargon ({jargon}): {}", page.body);
    }
}

/// `data` as a gzip member (RFC 1952) of stored deflate blocks (RFC 1951
/// §3.2.4): real gzip that any inflater reads, without a compressor.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(u16::MAX as usize).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let len = block.len() as u16;
        out.push(u8::from(blocks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 as gzip uses it (reflected, polynomial 0xEDB88320).
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        (0..8).fold(crc ^ u32::from(byte), |crc, _| if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 })
    })
}

#[test]
fn the_gzip_helper_makes_what_gzip_reads() {
    // `printf 'a=1&b=2' | gzip -n | tail -c 8`: the CRC-32 and the length.
    let made = gzip(b"a=1&b=2");
    assert_eq!(&made[made.len() - 8..], &[0xf8, 0xeb, 0x3d, 0xf8, 7, 0, 0, 0]);
}
