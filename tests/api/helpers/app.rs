//! A running Usher for one test.

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use usher::clock::Clock;
use usher::config::{Config, Settings};
use usher::db::{DatabaseUrl, DbConnection};
use usher::startup::{Application, BackgroundJobs};

use super::database::TestDatabase;
use super::{Backend, Browser, MailSink, PASSWORD, Page};

/// The session key of every test server, for a server started as a
/// separate process that must read what the others wrote.
pub const SESSION_KEY: &str = "test session key of well over thirty-two bytes";
/// The encryption key of every test server (required with PostgreSQL).
pub const ENCRYPTION_KEY: &str = "test encryption key of well over thirty-two bytes";

pub struct TestApp {
    pub address: String,
    pub mail: MailSink,
    pub database: Arc<TestDatabase>,
    /// The server's clock: `app.clock.advance(…)` instead of sleeping.
    pub clock: Clock,
    flags: Vec<(String, String)>,
    server: ServerHandle,
    background: BackgroundJobs,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Starts Usher as a forward-authentication server for apps within
/// `GUARD_DOMAIN`, on `http://auth.usher.localhost:<port>` (its
/// `address`), with `rules` as its access rules file, 127.0.0.1 as the
/// trusted proxy, and `overrides` on top.
pub async fn spawn_guarding_app(backend: Backend, rules: &str, overrides: &[(&str, &str)]) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let public_url = format!("http://auth.{}:{port}", super::GUARD_DOMAIN);
    let rules_file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(rules_file.path(), rules).unwrap();
    let (_, rules_path) = rules_file.keep().unwrap();
    let bind = format!("127.0.0.1:{port}");
    let rules_path = rules_path.to_string_lossy().into_owned();
    let mut flags = vec![
        ("--bind", bind.as_str()),
        ("--public-url", public_url.as_str()),
        ("--cookie-domain", super::GUARD_DOMAIN),
        ("--access-rules", rules_path.as_str()),
        ("--trusted-proxies", "127.0.0.1"),
    ];
    flags.extend_from_slice(overrides);
    let mut app = spawn_app_with(backend, &flags).await;
    app.address = public_url;
    app
}

/// Starts Usher with these flags on top of the test defaults, e.g.
/// `[("--session-idle-ttl", "2s")]`; an empty value drops a default flag.
pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let mail = MailSink::start().await;
    let database = Arc::new(TestDatabase::create(&backend));
    let flags = default_flags(&database, &mail, overrides);
    TestApp::start(database, mail, flags, Clock::default()).await
}

/// Starts Usher on an existing database (one another process has used),
/// with its own SMTP sink.
pub async fn spawn_app_on(database: Arc<TestDatabase>, overrides: &[(&str, &str)]) -> TestApp {
    let mail = MailSink::start().await;
    let flags = default_flags(&database, &mail, overrides);
    TestApp::start(database, mail, flags, Clock::default()).await
}

fn default_flags(database: &TestDatabase, mail: &MailSink, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut flags: Vec<(String, String)> = [
        ("--database-url", database.url.as_str()),
        ("--bind", "127.0.0.1:0"),
        ("--session-key", SESSION_KEY),
        ("--encryption-key", ENCRYPTION_KEY),
        ("--smtp-url", &mail.url()),
        ("--workers", "2"),
        ("--mail-retry-base", "1s"),
        ("--mail-poll-interval", "1s"),
    ]
    .iter()
    .map(|(flag, value)| (flag.to_string(), value.to_string()))
    .collect();
    for (flag, value) in overrides {
        flags.retain(|(existing, _)| existing != flag);
        // An empty value removes a default, e.g. `--smtp-url` for file mail.
        if !value.is_empty() {
            flags.push((flag.to_string(), value.to_string()));
        }
    }
    flags
}

impl TestApp {
    async fn start(database: Arc<TestDatabase>, mail: MailSink, flags: Vec<(String, String)>, clock: Clock) -> Self {
        Self::try_start(database, mail, flags, clock).await.expect("Usher starts")
    }

    async fn try_start(
        database: Arc<TestDatabase>,
        mail: MailSink,
        flags: Vec<(String, String)>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let args = flags.iter().flat_map(|(flag, value)| [flag.clone(), value.clone()]);
        let settings = Settings::from_flags(args).expect("valid test settings");
        let mut config = Config::resolve(settings).expect("valid test config");
        config.clock = clock.clone();
        let app = Application::build(config).await?;
        let port = app.port();
        let server = app.handle();
        let background = app.background_jobs();
        tokio::spawn(app.run_until_stopped());
        Ok(Self { address: format!("http://127.0.0.1:{port}"), mail, database, clock, flags, server, background })
    }

    /// A second server on the same database and mail sink, as a second
    /// instance behind a load balancer.
    pub async fn spawn_second_instance(&self) -> TestApp {
        TestApp::start(self.database.clone(), self.mail.clone(), self.flags.clone(), self.clock.clone()).await
    }

    /// Like `spawn_second_instance`, for a start that may fail.
    pub async fn try_second_instance(&self) -> anyhow::Result<TestApp> {
        TestApp::try_start(self.database.clone(), self.mail.clone(), self.flags.clone(), self.clock.clone()).await
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.address)
    }

    /// A direct connection for inspecting and arranging state.
    pub fn db(&self) -> DbConnection {
        DatabaseUrl::parse(&self.database.url).connect().expect("connect to the test database")
    }

    pub async fn register(&self, browser: &Browser, email: &str) -> Page {
        let fields = [("email", email), ("password", PASSWORD), ("password_confirm", PASSWORD)];
        browser.submit("/register", "/register", &fields).await
    }

    /// Registers and confirms by the emailed link.
    pub async fn register_verified(&self, email: &str) {
        let browser = self.browser();
        self.register(&browser, email).await.assert_redirects_to("/verify");
        let token = self.mail.wait_for(email, 1).await.verify_token();
        let page = browser.submit(&format!("/verify?token={token}"), "/verify", &[("token", &token)]).await;
        page.assert_redirects_to("/login");
    }

    pub async fn sign_in(&self, browser: &Browser, email: &str, password: &str) -> Page {
        browser.submit("/login", "/login", &[("email", email), ("password", password)]).await
    }

    /// A browser signed in as a new verified user.
    pub async fn signed_in_user(&self, email: &str) -> Browser {
        self.register_verified(email).await;
        let browser = self.browser();
        self.sign_in(&browser, email, PASSWORD).await.assert_redirects_to("/account");
        browser
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.background.stop();
        // Sends the stop command at once; nothing to wait for here.
        drop(self.server.stop(false));
    }
}

/// How many rows each table holds.
#[derive(Debug, PartialEq, Eq)]
pub struct RowCounts {
    pub users: i64,
    pub email_tokens: i64,
    pub sessions: i64,
    pub outbox: i64,
}

impl TestApp {
    pub fn row_counts(&self) -> RowCounts {
        use diesel::prelude::*;
        use usher::db::schema::{email_tokens, outbox, sessions, users};
        let mut conn = self.db();
        RowCounts {
            users: users::table.count().get_result(&mut conn).unwrap(),
            email_tokens: email_tokens::table.count().get_result(&mut conn).unwrap(),
            sessions: sessions::table.count().get_result(&mut conn).unwrap(),
            outbox: outbox::table.count().get_result(&mut conn).unwrap(),
        }
    }

    /// Every stored value of every table, as text, to search for secrets.
    pub fn dump_all_tables(&self) -> String {
        use diesel::prelude::*;
        use usher::db::email_tokens::EmailTokenRow;
        use usher::db::outbox::OutboxRow;
        use usher::db::schema::{email_tokens, outbox, sessions, users};
        use usher::db::sessions::SessionRow;
        use usher::db::users::User;
        let mut conn = self.db();
        let users: Vec<User> = users::table.load(&mut conn).unwrap();
        let tokens: Vec<EmailTokenRow> = email_tokens::table.load(&mut conn).unwrap();
        let sessions: Vec<SessionRow> = sessions::table.load(&mut conn).unwrap();
        let mail: Vec<OutboxRow> = outbox::table.load(&mut conn).unwrap();
        use usher::db::schema::{recovery_codes, second_factor_challenges, two_factor};
        let second_factors: Vec<(i64, Vec<u8>, i64)> = two_factor::table
            .select((two_factor::user_id, two_factor::secret, two_factor::last_step))
            .load(&mut conn)
            .unwrap();
        let recovery: Vec<(Vec<u8>, Vec<u8>)> =
            recovery_codes::table.select((recovery_codes::salt, recovery_codes::code_hash)).load(&mut conn).unwrap();
        let challenges: Vec<(Vec<u8>, i64)> = second_factor_challenges::table
            .select((second_factor_challenges::id_hash, second_factor_challenges::user_id))
            .load(&mut conn)
            .unwrap();
        use usher::db::schema::{group_members, groups};
        let group_rows: Vec<(i64, String, i64)> =
            groups::table.select((groups::id, groups::name, groups::created_at)).load(&mut conn).unwrap();
        let members: Vec<(i64, i64, i64)> = group_members::table
            .select((group_members::group_id, group_members::user_id, group_members::added_at))
            .load(&mut conn)
            .unwrap();
        use usher::db::invitations::Invitation;
        use usher::db::schema::invitations;
        let invitation_rows: Vec<Invitation> = invitations::table.load(&mut conn).unwrap();
        let binary = tokens
            .iter()
            .map(|t| t.secret_hash.clone())
            .chain(sessions.iter().map(|s| s.id_hash.clone()))
            .chain(second_factors.iter().map(|(_, secret, _)| secret.clone()))
            .chain(recovery.iter().flat_map(|(salt, hash)| [salt.clone(), hash.clone()]))
            .chain(challenges.iter().map(|(id_hash, _)| id_hash.clone()))
            .chain(invitation_rows.iter().filter_map(|i| i.token_hash.clone()))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect::<Vec<_>>();
        format!(
            "{users:?}\n{tokens:?}\n{sessions:?}\n{mail:?}\n{second_factors:?}\n{recovery:?}\n{challenges:?}\n\
             {group_rows:?}\n{members:?}\n{invitation_rows:?}\n{binary:?}"
        )
    }
}

impl TestApp {
    /// Waits until the outbox has nothing pending: mail is sent and the
    /// secrets of older mails are void.
    pub async fn mail_settled(&self) {
        use diesel::prelude::*;
        use usher::db::schema::outbox;
        for _ in 0..100 {
            let pending: i64 =
                outbox::table.filter(outbox::state.eq("pending")).count().get_result(&mut self.db()).unwrap();
            if pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("mail still pending");
    }

    /// The `id_hash` of every stored session.
    pub fn session_hashes(&self) -> Vec<Vec<u8>> {
        use diesel::prelude::*;
        use usher::db::schema::sessions;
        sessions::table.select(sessions::id_hash).load(&mut self.db()).unwrap()
    }
}

/// The session id inside a browser's signed session cookie (the cookie is
/// a percent-encoded 44-character signature followed by the id).
pub fn session_id(browser: &Browser) -> Option<String> {
    let cookie = browser.cookie("usher_session")?;
    let decoded = percent_encoding::percent_decode_str(&cookie).decode_utf8().ok()?;
    Some(decoded[44..].to_owned())
}

/// What the database should keep of a session id.
pub fn sha256(value: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes()).to_vec()
}

impl TestApp {
    /// Runs `usher create-admin` against this app's database, the password
    /// on standard input.
    pub fn create_admin_command(&self, email: &str, password: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["create-admin", "--email", email, "--database-url", &self.database.url])
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run usher create-admin");
        let _ = writeln!(child.stdin.take().unwrap(), "{password}");
        child.wait_with_output().unwrap()
    }

    /// Runs `usher <args>` against this app's database with the test keys
    /// (given `--encryption-key`/`--encryption-old-keys` replace them).
    pub fn usher_command(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--database-url", &self.database.url, "--session-key", SESSION_KEY]);
        if !args.contains(&"--encryption-key") {
            all.extend(["--encryption-key", ENCRYPTION_KEY]);
        }
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(all)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .output()
            .expect("run usher")
    }

    /// Runs `usher migrate` against this app's database.
    pub fn migrate_command(&self) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["migrate", "--database-url", &self.database.url])
            .env_remove("DATABASE_URL")
            .output()
            .expect("run usher migrate")
    }

    /// A browser signed in as a new administrator.
    pub async fn signed_in_admin(&self, email: &str) -> Browser {
        let output = self.create_admin_command(email, PASSWORD);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let browser = self.browser();
        self.sign_in(&browser, email, PASSWORD).await.assert_redirects_to("/account");
        browser
    }

    pub fn user_id(&self, email: &str) -> i64 {
        use diesel::prelude::*;
        use usher::db::schema::users;
        users::table.filter(users::email.eq(email)).select(users::id).first(&mut self.db()).unwrap()
    }
}
