//! Builds a running Usher: database, password hashing, mail worker, routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use sha2::{Digest, Sha256};
use tracing_actix_web::TracingLogger;

use crate::auth::{DbSessionStore, PasswordHasher};
use crate::cleanup::{self, CleanupHandle};
use crate::config::Config;
use crate::db::{Db, run_migrations};
use crate::domain::CodeHasher;
use crate::mail::{MailWorker, MailWorkerHandle, Sealer, Transport, WorkerSettings, messages::Composer};
use crate::routes;
use crate::state::AppState;
use crate::telemetry::PathOnlySpan;
use crate::throttle::Throttle;
use crate::web::AppError;
use crate::web::cookies::{CookieNames, CookieSettings, ForwardCookie, cookie_layer};
use crate::web::errors::{error_pages_in_context, render_bare_errors, session_errors_as_outages};
use crate::web::forms::MAX_FORM_BYTES;
use crate::web::head::head_as_get;
use crate::web::limits::{header_limit, refuse_content_encoding, request_timeout};
use crate::web::return_to::GuardedApps;

/// Database work from requests runs on actix's blocking threads, fewer of
/// them than the pool's connections, so a request never waits inside r2d2,
/// whose waiters wake in no fair order (on PostgreSQL, under 32 connections
/// of GET /account, p99 went from about 1 s to under 20 ms); excess work
/// queues in tokio's FIFO instead. Connections beyond those threads serve
/// the mail senders (one each), their lease renewals and the cleanup job.
const SPARE_BEYOND_MAIL: u32 = 2;
const MAX_DB_THREADS_PER_WORKER: u32 = 4;
const DEFAULT_MAX_CONNECTIONS: u32 = 32;

/// The pool's size and each worker's share of blocking threads, for
/// `workers` HTTP workers and `mail_senders` mail sender threads.
fn database_concurrency(workers: usize, mail_senders: u32, configured: Option<u32>) -> (u32, usize) {
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    let spare = mail_senders.saturating_add(SPARE_BEYOND_MAIL);
    let connections = configured
        .unwrap_or_else(|| (workers.saturating_mul(MAX_DB_THREADS_PER_WORKER) + spare).min(DEFAULT_MAX_CONNECTIONS));
    let threads_per_worker = (connections.saturating_sub(spare) / workers).clamp(1, MAX_DB_THREADS_PER_WORKER);
    (connections, threads_per_worker as usize)
}

pub struct Application {
    port: u16,
    server: Server,
    background: BackgroundJobs,
}

/// The threads that work beside the server: the mail worker and cleanup.
#[derive(Clone)]
pub struct BackgroundJobs {
    pub mail: MailWorkerHandle,
    cleanup: CleanupHandle,
}

impl BackgroundJobs {
    pub fn stop(&self) {
        self.mail.stop();
        self.cleanup.stop();
    }
}

/// A key for one purpose, derived from the operator's secret.
fn derive_key(secret: &str, purpose: &str) -> Key {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(secret.as_bytes());
    Key::derive_from(&hasher.finalize())
}

/// Opens the database and applies pending migrations.
async fn open_database(config: &Config, connections: u32) -> anyhow::Result<Db> {
    let db = Db::new(&config.database, connections).with_clock(config.clock.clone());
    let migrating = db.clone();
    let applied = web::block(move || -> anyhow::Result<usize> {
        let mut conn = migrating.connect_for_admin()?;
        run_migrations(&mut conn)
    })
    .await??;
    tracing::info!(database = %config.database.redacted(), applied, "database ready");
    Ok(db)
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.settings.bind)
            .map_err(|e| anyhow::anyhow!("USHER_BIND: cannot listen on {}: {e}", config.settings.bind))?;
        let address = listener.local_addr()?;
        if config.settings.public_url.is_none() {
            config.public_url = url::Url::parse(&format!("http://{address}"))?;
        }
        if let Some(rules) = &config.access_rules {
            if config.settings.trusted_proxies.is_empty() {
                tracing::warn!(
                    "USHER_ACCESS_RULES is set but USHER_TRUSTED_PROXIES is not: forward authentication refuses every proxy"
                );
            }
            if rules.rules.is_empty() {
                tracing::warn!("USHER_ACCESS_RULES holds no [[rule]]: forward authentication denies every request");
            }
        }
        if !config.settings.throttle {
            tracing::warn!("USHER_THROTTLE=off: rate limits are disabled; use this for tests and benchmarks only");
        }
        crate::web::pages::set_site_name(&config.settings.site_name);
        let config = Arc::new(config);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = config.settings.workers.unwrap_or(cores);
        let (connections, db_threads_per_worker) =
            database_concurrency(workers, config.settings.mail_connections, config.settings.db_connections);
        let db = open_database(&config, connections).await?;

        let hasher = PasswordHasher::start(cores, config.settings.hash_queue);
        let codes = CodeHasher::new(config.session_key.expose().as_bytes());
        let mail = start_mail_worker(&config, &db, codes.clone())?;

        let throttle = Throttle::new(config.settings.throttle, config.limits());
        let state = web::Data::new(AppState {
            db: db.clone(),
            config: config.clone(),
            hasher,
            codes,
            mail: mail.clone(),
            throttle,
            keys: config.key_ring(),
        });
        let secure = config.is_https();
        let cookie_names = CookieNames::new(secure);
        let cookies = web::Data::new(CookieSettings {
            key: derive_key(config.session_key.expose(), "usher cookies"),
            secure,
            names: cookie_names.clone(),
            remember_for: config.settings.session_remember_ttl,
            known_browser_key: config
                .settings
                .sign_in_alerts
                .then(|| Sha256::digest(format!("usher known browsers\0{}", config.session_key.expose())).into()),
            guarded_apps: GuardedApps::new(config.settings.cookie_domain.as_deref(), &config.public_url),
            forward: config
                .access_rules
                .is_some()
                .then(|| ForwardCookie::new(config.settings.cookie_domain.clone(), secure)),
        });
        let session_key = derive_key(config.session_key.expose(), "usher sessions");
        let cleanup =
            cleanup::spawn_periodic(db.clone(), config.settings.unverified_ttl, config.settings.cleanup_interval);
        let store = DbSessionStore::new(db, config.session_policy());
        let secure = config.is_https();

        let clock = config.clock.clone();
        let server = HttpServer::new(move || {
            // Runs on each worker thread as it starts: its requests read this server's clock.
            clock.install();
            let sessions = SessionMiddleware::builder(store.clone(), session_key.clone())
                .cookie_name(cookie_names.session.clone())
                .cookie_secure(secure)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .session_lifecycle(BrowserSession::default())
                // The id is random and means nothing without the database: signing is enough.
                .cookie_content_security(CookieContentSecurity::Signed)
                .build();
            App::new()
                .app_data(state.clone())
                .app_data(cookies.clone())
                .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
                // Parser wording is not for people; unknown parameters never get here.
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    AppError::BadRequest("The address of this page is not valid. Check the link and try again.".into())
                        .into()
                }))
                .app_data(web::PathConfig::default().error_handler(|_, _| AppError::NotFound.into()))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
                .wrap(from_fn(error_pages_in_context))
                .wrap(sessions)
                .wrap(from_fn(routes::read_with_session))
                .wrap(from_fn(session_errors_as_outages))
                .wrap(from_fn(cookie_layer))
                .wrap(from_fn(request_timeout))
                .wrap(from_fn(header_limit))
                .wrap(from_fn(refuse_content_encoding))
                .wrap(ErrorHandlers::new().default_handler(render_bare_errors))
                .wrap(security_headers(secure))
                .wrap(from_fn(head_as_get))
                .wrap(TracingLogger::<PathOnlySpan>::new())
        })
        .workers(workers)
        .worker_max_blocking_threads(db_threads_per_worker)
        .listen(listener)?
        .run();
        tracing::info!(%address, public_url = %config.public_url, "Usher is listening");
        Ok(Self { port: address.port(), server, background: BackgroundJobs { mail, cleanup } })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn background_jobs(&self) -> BackgroundJobs {
        self.background.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.background.stop();
        result
    }
}

fn start_mail_worker(config: &Arc<Config>, db: &Db, codes: CodeHasher) -> anyhow::Result<MailWorkerHandle> {
    let settings = &config.settings;
    let transport = match &settings.smtp_url {
        Some(url) => Transport::smtp(url.expose(), settings.mail_connections)?,
        None => Transport::files(settings.mail_dir.clone())?,
    };
    let worker_settings = WorkerSettings {
        retry_base: settings.mail_retry_base,
        max_attempts: settings.mail_max_attempts,
        poll_interval: settings.mail_poll_interval,
        lease: settings.mail_lease,
    };
    let composer = Composer { config: config.clone(), codes };
    let sealer = Sealer::new(config.session_key.expose().as_bytes());
    let senders = settings.mail_connections as usize;
    let (handle, _threads) = MailWorker::new(db.clone(), transport, composer, sealer, worker_settings).spawn(senders);
    Ok(handle)
}

/// Headers on every response. Pages load nothing from other sites, and the
/// referrer stays on the site (not `no-referrer`, with which browsers send
/// `Origin: null` on form posts), so a token in a URL never leaves it.
fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .add(("Referrer-Policy", "same-origin"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cache-Control", "no-store"));
    if https { headers.add(("Strict-Transport-Security", "max-age=31536000")) } else { headers }
}

#[cfg(test)]
mod tests {
    use super::database_concurrency;

    #[test]
    fn requests_get_fewer_database_threads_than_the_pool_has_connections() {
        assert_eq!(database_concurrency(2, 4, None), (14, 4));
        assert_eq!(database_concurrency(8, 4, None), (32, 3));
        assert_eq!(database_concurrency(64, 4, None), (32, 1));
        assert_eq!(database_concurrency(2, 4, Some(100)), (100, 4));
        assert_eq!(database_concurrency(2, 4, Some(10)), (10, 2));
        assert_eq!(database_concurrency(4, 4, Some(2)), (2, 1));
        assert_eq!(database_concurrency(2, 1, None), (11, 4), "one sender needs fewer");
    }
}
