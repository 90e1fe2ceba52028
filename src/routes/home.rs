use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use askama::Template;

use crate::web::{PageContext, redirect, render};

#[derive(Template)]
#[template(path = "pages/home.html")]
struct HomePage {
    ctx: PageContext,
}

pub async fn show(ctx: PageContext) -> HttpResponse {
    if ctx.signed_in {
        return redirect("/account");
    }
    render(StatusCode::OK, &HomePage { ctx })
}

/// The site's icon, also at `/favicon.ico`, where browsers and feed
/// readers look without being told (an SVG, which they all sniff).
pub async fn icon() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "image/svg+xml"))
        .insert_header((CACHE_CONTROL, "public, max-age=86400"))
        .body(include_str!("../../static/favicon.svg"))
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/usher.css"))
}
