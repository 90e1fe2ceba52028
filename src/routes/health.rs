use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Liveness: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Readiness: the database answers and takes a write. A database that only
/// reads (a full disk, a read-only file or mount, a PostgreSQL standby)
/// cannot sign anyone in, so it is not ready either.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.db.check_writable().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the database does not take writes");
            HttpResponse::ServiceUnavailable().content_type("text/plain").body("database unavailable")
        }
    }
}
