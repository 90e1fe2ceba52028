//! Helpers for `bench/run`.
//!
//! - `ceiling-http ADDR WORKERS`: a bare actix-web server whose one handler
//!   returns a fixed short page; the upper bound for any page of Usher.
//! - `ceiling-argon2 THREADS SECONDS`: THREADS threads verify an Argon2id
//!   hash flat out with Usher's parameters; prints `verifies/s`, the upper
//!   bound for sign-ins.
//! - `hash PASSWORD`: prints an Argon2id PHC string made exactly as Usher
//!   makes one, to seed users without a sign-up per user.
//! - `hostile-posts ADDR COUNT CONNECTIONS GZIP_FILE`: COUNT form posts a
//!   browser would never send (bodies at and over the limit, thousands of
//!   fields, invalid UTF-8 and percent-encoding, a lying Content-Length, the
//!   gzip bomb in GZIP_FILE, JSON, slow and stalled bodies) to /login and
//!   /register from CONNECTIONS threads; checks each answer's status and
//!   prints a JSON summary.
//! - `smtp-sink ADDR FILE`: an SMTP server that accepts every message at
//!   once and appends a line `SECONDS RECIPIENT` to FILE per recipient as
//!   the message's data ends (Unix time, to the microsecond).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

// Usher's src/auth/hasher.rs: OWASP's minimum for Argon2id.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn salt() -> [u8; 16] {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("read /dev/urandom");
    bytes
}

fn hash(password: &str) -> String {
    argon2().hash_password_with_salt(password.as_bytes(), &salt()).expect("hash").to_string()
}

fn usage() -> ! {
    eprintln!(
        "usage: usher-bench-tools ceiling-http ADDR WORKERS | ceiling-argon2 THREADS SECONDS | hash PASSWORD \
         | hostile-posts ADDR COUNT CONNECTIONS GZIP_FILE | smtp-sink ADDR FILE"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["hash", password] => println!("{}", hash(password)),
        ["ceiling-argon2", threads, seconds] => {
            let threads: usize = threads.parse().unwrap_or_else(|_| usage());
            let seconds: f64 = seconds.parse().unwrap_or_else(|_| usage());
            ceiling_argon2(threads, Duration::from_secs_f64(seconds));
        }
        ["ceiling-http", addr, workers] => {
            let workers: usize = workers.parse().unwrap_or_else(|_| usage());
            ceiling_http(addr, workers).expect("serve");
        }
        ["hostile-posts", addr, count, connections, gzip_file] => {
            let count: usize = count.parse().unwrap_or_else(|_| usage());
            let connections: usize = connections.parse().unwrap_or_else(|_| usage());
            let bomb = std::fs::read(gzip_file).expect("read the gzip body");
            hostile_posts(addr, count, connections, bomb);
        }
        ["smtp-sink", addr, file] => smtp_sink(addr, file).expect("serve SMTP"),
        _ => usage(),
    }
}

/// Verifies as Usher's hashing threads do (src/auth/hasher.rs): parse the
/// PHC string, hash into this thread's reused work memory, compare outputs.
fn verify(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let stored = PasswordHash::new(phc).expect("a PHC string");
    let params = Params::try_from(&stored).expect("Argon2 parameters");
    let expected = stored.hash.expect("an output");
    memory.resize(params.block_count(), Block::default());
    let mut output = vec![0u8; expected.len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password.as_bytes(), &stored.salt.expect("a salt"), &mut output, memory)
        .expect("hash");
    Output::new(&output).expect("an output") == expected
}

/// Each thread verifies the same correct password against one stored hash,
/// flat out, as one of Usher's pool threads would.
fn ceiling_argon2(threads: usize, length: Duration) {
    let password = "bench: correct horse battery staple";
    let stored: Arc<str> = hash(password).into();
    assert!(verify(&mut Vec::new(), password, &stored));
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (done, count, stored) = (done.clone(), count.clone(), stored.clone());
            std::thread::spawn(move || {
                let mut memory = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let ok = verify(&mut memory, password, &stored);
                    assert!(ok, "the password must verify");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(length);
    done.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("join");
    }
    // Verifies still running at the deadline finish and count: divide by
    // the time they actually took.
    let elapsed = start.elapsed().as_secs_f64();
    let total = count.load(Ordering::Relaxed);
    println!(
        "verifies={total} seconds={elapsed:.3} threads={threads} per_second={:.2} peak_rss_kib={}",
        total as f64 / elapsed,
        peak_rss_kib()
    );
}

/// This process's VmHWM: what `threads` concurrent verifies need at least.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ceiling</title></head><body><p>A fixed short page.</p></body></html>\n";

async fn page() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE)
}

#[actix_web::main]
async fn ceiling_http(addr: &str, workers: usize) -> std::io::Result<()> {
    use actix_web::{App, HttpServer, web};
    HttpServer::new(|| App::new().default_service(web::to(page))).workers(workers).bind(addr)?.run().await
}

/// One kind of hostile form post: what it sends and the status it must get.
struct Hostile {
    name: &'static str,
    /// Extra request headers, each ending in CRLF.
    headers: String,
    body: Vec<u8>,
    /// The Content-Length declared (the body's own length unless a client lies).
    declared: usize,
    /// Sends the body in pieces with pauses; `Some(true)` then stops half-way.
    pace: Option<bool>,
    expect: u16,
}

const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";
/// Usher's form body limit (src/web/forms.rs, MAX_FORM_BYTES).
const FORM_LIMIT: usize = 16 * 1024;

/// `fields=value&…` filling exactly `FORM_LIMIT` bytes with `count` fields.
fn form_of(count: usize) -> Vec<u8> {
    let mut body = String::with_capacity(FORM_LIMIT);
    let each = FORM_LIMIT / count;
    for i in 0..count {
        let name = format!("f{i}=");
        let room = if i + 1 == count { FORM_LIMIT - body.len() } else { each };
        body.push_str(&name);
        body.push_str(&"x".repeat(room.saturating_sub(name.len() + 1)));
        if i + 1 < count {
            body.push('&');
        }
    }
    body.truncate(FORM_LIMIT);
    body.into_bytes()
}

/// The kinds of post a hostile client sends; none carries a CSRF token, so
/// none can change anything even where the body is well formed.
fn hostile_kinds(gzip_bomb: Vec<u8>) -> Vec<Hostile> {
    let plain = |name, headers: &str, body: Vec<u8>, expect| Hostile {
        name,
        headers: headers.to_owned(),
        declared: body.len(),
        body,
        pace: None,
        expect,
    };
    let mut bad_utf8 = form_of(16);
    bad_utf8[FORM_LIMIT / 2] = 0xff;
    let bad_percent = [&b"email=%FF%FE%40example.com&"[..], &form_of(16)[27..]].concat();
    let over = vec![b'x'; 4 * FORM_LIMIT];
    let gzip = format!("{FORM}Content-Encoding: gzip\r\n");
    vec![
        plain("at-limit", FORM, form_of(16), 403),
        plain("many-fields", FORM, form_of(2048), 403),
        plain("long-field", FORM, form_of(1), 400),
        plain("invalid-utf8", FORM, bad_utf8, 400),
        plain("invalid-percent", FORM, bad_percent, 400),
        plain("over-limit", FORM, over, 413),
        Hostile { declared: 1 << 30, ..plain("lying-length", FORM, form_of(16), 413) },
        plain("gzip", &gzip, gzip_bomb, 415),
        plain("json", "Content-Type: application/json\r\n", br#"{"email":"a@b.c"}"#.to_vec(), 415),
        Hostile { pace: Some(false), ..plain("slow", FORM, form_of(16), 403) },
        Hostile { pace: Some(true), ..plain("stalled", FORM, form_of(16), 408) },
    ]
}

/// Which kind the `n`th post is: stalled ones (each holds a connection for
/// Usher's 10 s body timeout) are one in 200, the others take turns.
fn kind_of(n: usize, kinds: usize) -> usize {
    if n % 200 == 199 { kinds - 1 } else { n % (kinds - 1) }
}

/// Sends one post on a new connection and returns the response's status.
fn post_once(addr: &str, path: &str, kind: &Hostile) -> std::io::Result<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{}Content-Length: {}\r\n\r\n",
        kind.headers, kind.declared
    );
    stream.write_all(head.as_bytes())?;
    // A server may answer and close before the whole body is in: what
    // counts is its answer, so a failed write is only reported if no
    // answer can be read.
    let _ = match kind.pace {
        None => stream.write_all(&kind.body),
        Some(stop_half_way) => send_slowly(&mut stream, &kind.body, stop_half_way),
    };
    let mut response = Vec::new();
    stream.read_to_end(&mut response).or_else(|e| if response.is_empty() { Err(e) } else { Ok(0) })?;
    let status = response.get(9..12).and_then(|code| std::str::from_utf8(code).ok()?.parse().ok());
    status.ok_or_else(|| std::io::Error::other(format!("no HTTP status in {} bytes", response.len())))
}

/// The body in 8 pieces, 50 ms apart; with `stop_half_way`, only the first 4.
fn send_slowly(stream: &mut std::net::TcpStream, body: &[u8], stop_half_way: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let pieces: Vec<&[u8]> = body.chunks(body.len().div_ceil(8)).collect();
    let sent = if stop_half_way { pieces.len() / 2 } else { pieces.len() };
    for piece in &pieces[..sent] {
        stream.write_all(piece)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `count` hostile posts to /login and /register (alternately) from
/// `connections` threads. Prints one JSON object: statuses by kind, the
/// number of unexpected answers (with a sample) and of failed connections;
/// exits with 1 if there was any.
fn hostile_posts(addr: &str, count: usize, connections: usize, gzip_bomb: Vec<u8>) {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    let kinds = Arc::new(hostile_kinds(gzip_bomb));
    let next = Arc::new(AtomicU64::new(0));
    let tally: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let problems: Arc<Mutex<(u64, String)>> = Arc::default();
    let start = Instant::now();
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (kinds, next, tally, problems, addr) =
                (kinds.clone(), next.clone(), tally.clone(), problems.clone(), addr.to_owned());
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if n >= count {
                        break;
                    }
                    let kind = &kinds[kind_of(n, kinds.len())];
                    let path = if n.is_multiple_of(2) { "/login" } else { "/register" };
                    let outcome = post_once(&addr, path, kind);
                    let key = match &outcome {
                        Ok(status) => format!("{} {status}", kind.name),
                        Err(_) => format!("{} error", kind.name),
                    };
                    *tally.lock().unwrap().entry(key).or_default() += 1;
                    if !matches!(outcome, Ok(status) if status == kind.expect) {
                        let mut problems = problems.lock().unwrap();
                        problems.0 += 1;
                        if problems.1.is_empty() {
                            problems.1 = format!("{} to {path}: {outcome:?}, expected {}", kind.name, kind.expect);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("join");
    }
    let tally = tally.lock().unwrap();
    let (unexpected, sample) = &*problems.lock().unwrap();
    let by_kind: Vec<String> = tally.iter().map(|(key, n)| format!("\"{key}\": {n}")).collect();
    println!(
        "{{\"requests\": {count}, \"connections\": {connections}, \"seconds\": {:.1}, \"unexpected\": {unexpected}, \
         \"failure_sample\": \"{}\", \"answers\": {{{}}}}}",
        start.elapsed().as_secs_f64(),
        sample.replace('\\', "\\\\").replace('"', "'"),
        by_kind.join(", ")
    );
    if *unexpected > 0 {
        std::process::exit(1);
    }
}

/// Accepts SMTP connections on `addr`, one thread each, and logs every
/// recipient's arrival to `file`.
fn smtp_sink(addr: &str, file: &str) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    let log = Arc::new(std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(file)?));
    for stream in listener.incoming() {
        let (stream, log) = (stream?, log.clone());
        std::thread::spawn(move || {
            let _ = smtp_session(stream, &log);
        });
    }
    Ok(())
}

/// One SMTP connection: enough of RFC 5321 for lettre, every message taken.
fn smtp_session(stream: std::net::TcpStream, log: &std::sync::Mutex<std::fs::File>) -> std::io::Result<()> {
    use std::io::{BufRead as _, Write as _};
    stream.set_nodelay(true)?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    writer.write_all(b"220 bench sink ESMTP\r\n")?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-bench sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let start = command.find('<').map_or(8, |i| i + 1);
            let end = command.rfind('>').unwrap_or(command.len());
            recipients.push(command[start..end].to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            writer.write_all(b"354 go ahead\r\n")?;
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
            }
            let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let mut log = log.lock().unwrap();
            for to in recipients.drain(..) {
                writeln!(log, "{:.6} {to}", at.as_secs_f64())?;
            }
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            writer.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            // MAIL FROM starts a transaction; RSET ends one; NOOP, HELO: fine.
            if upper.starts_with("MAIL FROM:") || upper == "RSET" {
                recipients.clear();
            }
            b"250 OK\r\n"
        };
        writer.write_all(reply)?;
    }
}
