//! Real reverse proxies in front of a test app: nginx (`auth_request`) and
//! Caddy (`forward_auth`) started as child processes on free ports, with
//! their configuration and every file they write in a temporary folder,
//! asking a test Usher about each request and passing it on to `Upstream`,
//! a tiny app in the test process that answers with what it received.
//!
//! The configurations are the README's ("Protect another app"), with the
//! test's ports and hosts: change one, change the other.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};

/// The guarded app's host in these tests (one of `GUARD_HOSTS`).
pub const APP_HOST: &str = "wiki.usher.localhost";

/// Which reverse proxy guards the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// nginx with `auth_request` to Usher's `/auth/request`.
    Nginx,
    /// Caddy with `forward_auth` to Usher's `/auth/forward`.
    Caddy,
}

impl ProxyKind {
    fn binary(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
        }
    }

    /// The proxy's program, or `None` with the test skipped: a missing
    /// proxy fails the test instead when `USHER_PROXY_TESTS=required`
    /// (as in CI).
    pub fn program_or_skip(self) -> Option<PathBuf> {
        if let Some(found) = find_program(self.binary()) {
            return Some(found);
        }
        let required = std::env::var("USHER_PROXY_TESTS").is_ok_and(|value| value == "required");
        assert!(!required, "{} is not installed, and USHER_PROXY_TESTS=required", self.binary());
        eprintln!(
            "skipped: {} is not installed (install it, or set USHER_PROXY_TESTS=required to fail instead)",
            self.binary()
        );
        None
    }
}

/// `name` on the `PATH`, or in the sbin folders a non-root `PATH` may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running proxy, killed when dropped.
pub struct Proxy {
    pub kind: ProxyKind,
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `kind` on a free port for `http://wiki.usher.localhost:<port>`,
    /// asking the Usher on `usher_port` and passing allowed requests to
    /// `upstream_port`; returns once it accepts connections. `None` (the
    /// test skipped) when the proxy is not installed.
    pub fn start(kind: ProxyKind, usher_port: u16, upstream_port: u16) -> Option<Self> {
        let program = kind.program_or_skip()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = match kind {
            ProxyKind::Nginx => nginx_command(&program, dir.path(), port, usher_port, upstream_port),
            ProxyKind::Caddy => caddy_command(&program, dir.path(), port, usher_port, upstream_port),
        };
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut proxy = Self { kind, port, child, dir };
        proxy.wait_until_listening();
        Some(proxy)
    }

    /// `http://wiki.usher.localhost:<port><path_and_query>`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{APP_HOST}:{}{path_and_query}", self.port)
    }

    /// Everything the proxy logged so far, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for name in ["stdout.log", "stderr.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                logs.push_str(&format!("--- {name}\n{text}"));
            }
        }
        logs
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{:?} exited at start ({status}):\n{}", self.kind, self.logs());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "{:?} did not listen on {address}:\n{}", self.kind, self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `GET <target>` exactly as written (the `url` crate would
    /// resolve `/x/../admin` before sending it) with `headers`, and
    /// returns the status code. For paths no browser library sends as is.
    pub fn raw_get(&self, target: &str, headers: &[(&str, &str)]) -> u16 {
        let status = self.raw_status(&format!("{APP_HOST}:{}", self.port), target, headers);
        status.unwrap_or_else(|| panic!("no HTTP answer to GET {target}\n{}", self.logs()))
    }

    /// `raw_get` with another `Host`; `None` when the proxy closes the
    /// connection without an answer.
    pub fn raw_status(&self, host: &str, target: &str, headers: &[(&str, &str)]) -> Option<u16> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        response.split(' ').nth(1).and_then(|code| code.parse().ok())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // nginx runs as one process here (`master_process off`), so ending
        // the child ends the proxy.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in the foreground with everything it writes inside `dir`; the
/// compiled-in error log is replaced by `-e` before the file is read.
fn nginx_command(program: &Path, dir: &Path, port: u16, usher_port: u16, upstream_port: u16) -> Command {
    let root = running_as_root().unwrap_or(false);
    // As root, nginx would hand the work to an unprivileged user that
    // cannot enter this private folder.
    let user = if root { "user root;\n" } else { "" };
    let d = dir.display();
    let config = format!(
        r#"{user}worker_processes 1;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # Any other Host gets no answer (the README's default_server).
    server {{
        listen 127.0.0.1:{port} default_server;
        return 444;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name {APP_HOST};
{locations}
    }}
}}
"#,
        locations = nginx_locations(&format!("127.0.0.1:{usher_port}"), &format!("127.0.0.1:{upstream_port}"))
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let mut command = Command::new(program);
    command
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off;"]);
    command
}

/// The guarded app's `location` blocks, asking Usher at `usher` and
/// passing on to `app` (`host:port`): the README's.
pub fn nginx_locations(usher: &str, app: &str) -> String {
    format!(
        r#"
        location / {{
            auth_request /usher-auth;
            # Who Usher says is asking; empty when no one needs to be known.
            auth_request_set $usher_user $upstream_http_remote_user;
            auth_request_set $usher_email $upstream_http_remote_email;
            auth_request_set $usher_groups $upstream_http_remote_groups;
            # Not signed in: Usher answers 401 with the sign-in page as Location.
            auth_request_set $usher_location $upstream_http_location;
            error_page 401 =302 $usher_location;
            # Not allowed: Usher's page saying why, instead of nginx's own.
            error_page 403 /usher-denied;

            # Always replaces what the client sent; an empty value sends none.
            proxy_set_header Remote-User $usher_user;
            proxy_set_header Remote-Email $usher_email;
            proxy_set_header Remote-Groups $usher_groups;
            proxy_pass http://{app};
        }}

        location = /usher-auth {{
            internal;
            proxy_pass http://{usher}/auth/request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}

        location = /usher-denied {{
            internal;
            proxy_pass http://{usher}/auth/forward;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
        }}"#
    )
}

/// Whether this process runs as root, read from `/proc` (Linux).
fn running_as_root() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid_line = status.lines().find(|line| line.starts_with("Uid:"))?;
    let effective = uid_line.split_whitespace().nth(2)?;
    Some(effective == "0")
}

/// Caddy with the admin endpoint and automatic HTTPS off, its storage in
/// `dir` (it finds it through `HOME` and the XDG folders).
fn caddy_command(program: &Path, dir: &Path, port: u16, usher_port: u16, upstream_port: u16) -> Command {
    let config = format!(
        r#"{{
    admin off
    auto_https off
}}

http://{APP_HOST}:{port} {{
    bind 127.0.0.1
{site}
}}
"#,
        site = caddy_site(&format!("127.0.0.1:{usher_port}"), &format!("127.0.0.1:{upstream_port}"))
    );
    std::fs::write(dir.join("Caddyfile"), config).unwrap();
    let mut command = Command::new(program);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    command
}

/// The guarded site's handlers, asking Usher at `usher` and passing on to
/// `app` (`host:port`): the README's.
pub fn caddy_site(usher: &str, app: &str) -> String {
    format!(
        r#"
    # `route` keeps this order (Caddy would otherwise run request_header
    # after forward_auth and remove what it copied).
    route {{
        # Nothing the client sent as Remote-* reaches the app.
        request_header -Remote-*
        request_header -Remote_*
        forward_auth {usher} {{
            uri /auth/forward
            copy_headers Remote-User Remote-Email Remote-Groups
        }}
        # Caddy before 2.9 sets a header Usher did not send (a bypass
        # rule's answer has none) to the placeholder's own text.
        @unfilled header_regexp Remote-User ^[{{]
        request_header @unfilled -Remote-*
        reverse_proxy {app}
    }}"#
    )
}

/// What the upstream app received in one request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The request target as it arrived: path and query, undecoded.
    pub target: String,
    /// Every header whose name starts with `remote-` or `remote_`
    /// (lower case), with each of its values, in arrival order.
    pub remote: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// Every value of the header `name` (lower case).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.remote.iter().filter(|(header, _)| header == name).map(|(_, value)| value.as_str()).collect()
    }
}

/// The app behind the proxy: answers every request with a JSON `Seen`,
/// and keeps each one for the test to look at.
pub struct Upstream {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: ServerHandle,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::from(seen.clone());
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(echo)))
            .workers(1)
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { port, seen, server: handle }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

async fn echo(req: HttpRequest, body: web::Bytes, seen: web::Data<Mutex<Vec<Seen>>>) -> HttpResponse {
    let remote = req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("remote-") || name.as_str().starts_with("remote_"))
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let target = req.uri().path_and_query().map_or_else(|| req.uri().to_string(), |target| target.as_str().to_owned());
    let request =
        Seen { method: req.method().to_string(), target, remote, body: String::from_utf8_lossy(&body).into_owned() };
    seen.lock().unwrap().push(request.clone());
    HttpResponse::Ok().json(request)
}
