//! Helpers for `bench/run`.
//!
//! - `ceiling-http ADDR WORKERS`: a bare actix-web server whose one handler
//!   returns a fixed short page; the upper bound for any page of Usher.
//! - `ceiling-argon2 THREADS SECONDS`: THREADS threads verify an Argon2id
//!   hash flat out with Usher's parameters; prints `verifies/s`, the upper
//!   bound for sign-ins.
//! - `hash PASSWORD`: prints an Argon2id PHC string made exactly as Usher
//!   makes one, to seed users without a sign-up per user.
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
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}

fn hash(password: &str) -> String {
    argon2()
        .hash_password_with_salt(password.as_bytes(), &salt())
        .expect("hash")
        .to_string()
}

fn usage() -> ! {
    eprintln!(
        "usage: usher-bench-tools ceiling-http ADDR WORKERS | ceiling-argon2 THREADS SECONDS | hash PASSWORD \
         | smtp-sink ADDR FILE"
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
    actix_web::HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

#[actix_web::main]
async fn ceiling_http(addr: &str, workers: usize) -> std::io::Result<()> {
    use actix_web::{App, HttpServer, web};
    HttpServer::new(|| App::new().default_service(web::to(page)))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}

/// Accepts SMTP connections on `addr`, one thread each, and logs every
/// recipient's arrival to `file`.
fn smtp_sink(addr: &str, file: &str) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    let log = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?,
    ));
    for stream in listener.incoming() {
        let (stream, log) = (stream?, log.clone());
        std::thread::spawn(move || {
            let _ = smtp_session(stream, &log);
        });
    }
    Ok(())
}

/// One SMTP connection: enough of RFC 5321 for lettre, every message taken.
fn smtp_session(
    stream: std::net::TcpStream,
    log: &std::sync::Mutex<std::fs::File>,
) -> std::io::Result<()> {
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
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
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
