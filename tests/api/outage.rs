//! A database that goes away answers with 503 pages, not bare errors.
//! PostgreSQL only: an embedded SQLite file has no server to lose.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_gives_503_pages_for_anonymous_and_signed_in_visitors() {
    let Some(backend) = Backend::postgres() else { return };
    let app = spawn_app(backend.clone()).await;
    let browser = app.signed_in_user("ann@example.com").await;
    let anonymous = app.browser();
    let login_token = anonymous.get("/login").await.csrf_token();

    let Backend::Postgres(server_url) = backend else { unreachable!() };
    let name = app.database.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::establish(&server_url).unwrap();
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).unwrap();

    let sign_in = anonymous
        .post_raw("/login", &[("csrf_token", &login_token), ("email", "ann@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(sign_in.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(sign_in.body.contains("try again"), "{}", sign_in.body);

    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::SERVICE_UNAVAILABLE, "session store failure: {}", account.body);
    assert!(account.body.contains("</html>"), "a page, not a bare status");

    assert_eq!(anonymous.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(anonymous.get("/healthz").await.status, StatusCode::OK);
}
