//! What Usher logs: refusals a visitor is expected to meet (sign in first,
//! forbidden, not found, a rejected form) stay out of WARN and ERROR, so
//! that real failures stand out. Runs `usher serve` as a process of its own
//! to read its log as an operator would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, ENCRYPTION_KEY, MailSink, SESSION_KEY, TestDatabase};
use crate::on_both_backends;

on_both_backends!(expected_refusals_are_not_logged_as_warnings_or_errors);

/// A running `usher serve` whose standard error is collected line by line.
struct LoggedServer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    address: String,
}

impl LoggedServer {
    async fn start(database: &TestDatabase, mail: &MailSink) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args([
                "serve",
                "--database-url",
                &database.url,
                "--session-key",
                SESSION_KEY,
                "--encryption-key",
                ENCRYPTION_KEY,
            ])
            .args(["--bind", &format!("127.0.0.1:{port}"), "--smtp-url", &mail.url()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start usher serve");
        // Both streams, so that the levels are judged wherever the log goes.
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let readers = [stdout, stderr]
            .into_iter()
            .map(|stream| {
                let collecting = lines.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        collecting.lock().unwrap().push(without_colours(&line));
                    }
                })
            })
            .collect();
        let server = Self { child, lines, readers, address: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while !client.get(format!("{}/healthz", server.address)).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "usher serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Stops the server and returns everything it logged. Each request's
    /// line is written before its response, so none is missing.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line without terminal colour codes (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

fn loud(lines: &[String]) -> Vec<&String> {
    assert!(lines.iter().any(|line| line.contains("Usher is listening")), "no log was read: {lines:#?}");
    lines.iter().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect()
}

async fn expected_refusals_are_not_logged_as_warnings_or_errors(backend: Backend) {
    let database = TestDatabase::create(&backend);
    let mail = MailSink::start().await;
    let server = LoggedServer::start(&database, &mail).await;
    let visitor = Browser::new(&server.address);

    assert_eq!(visitor.get("/account").await.status, StatusCode::SEE_OTHER, "sign in first");
    assert_eq!(visitor.get("/admin").await.status, StatusCode::SEE_OTHER, "sign in first");
    assert_eq!(visitor.get("/no-such-page").await.status, StatusCode::NOT_FOUND);
    let forged = visitor.post_raw("/login", &[("email", "ann@example.com"), ("password", "x")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "no CSRF token");
    let json = visitor.post_body("/login", "application/json", b"{}".to_vec()).await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let Backend::Postgres(server_url) = backend else {
        let lines = server.stop();
        assert!(loud(&lines).is_empty(), "refusals logged as failures:\n{:#?}", loud(&lines));
        return;
    };
    // A real failure still stands out: the database goes away.
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = diesel::PgConnection::establish(&server_url).unwrap();
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).unwrap();
    assert_eq!(visitor.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);

    let lines = server.stop();
    let loud = loud(&lines);
    assert!(
        loud.iter().all(|line| line.contains("/readyz") || line.contains("database")),
        "refusals logged as failures:\n{loud:#?}"
    );
    assert!(loud.iter().any(|line| line.contains("WARN") && line.contains("status=503")), "{lines:#?}");
}
