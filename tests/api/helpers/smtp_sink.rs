//! A minimal SMTP server on loopback that keeps every message it accepts.
//! Usher's real lettre SMTP transport talks to it. Like a real relay it
//! refuses a non-ASCII envelope address unless the transaction asked for
//! SMTPUTF8 (RFC 6531), and it can stop offering that extension.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MessageParser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The envelope recipient (`RCPT TO`), as sent.
    pub to: String,
    /// The envelope sender (`MAIL FROM`).
    pub envelope_from: String,
    /// Whether the transaction asked for SMTPUTF8.
    pub smtputf8: bool,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

impl ReceivedMail {
    /// The token of the `/verify?token=…` link in the plain-text part.
    pub fn verify_token(&self) -> String {
        self.link_token("/verify?token=")
    }

    pub fn link_token(&self, marker: &str) -> String {
        let start =
            self.text.find(marker).unwrap_or_else(|| panic!("no {marker} link in:\n{}", self.text)) + marker.len();
        self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
    }

    /// The 6-digit code: the line of the text part that is six digits alone.
    pub fn code(&self) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in:\n{}", self.text))
            .to_owned()
    }
}

#[derive(Clone)]
pub struct MailSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
    reject_permanently: Arc<AtomicBool>,
    fail_temporarily: Arc<AtomicBool>,
    without_smtputf8: Arc<AtomicBool>,
    /// Milliseconds to wait before accepting a message's data.
    data_reply_delay_ms: Arc<AtomicU64>,
    /// Transactions between `DATA` and the reply to it, now and at most.
    in_data: Arc<AtomicUsize>,
    peak_in_data: Arc<AtomicUsize>,
    in_data_changed: Arc<Notify>,
    hold: Arc<Mutex<Option<DataHold>>>,
}

/// Replies to a message's data wait until `together` transactions are in
/// `DATA` at once (and from then on, no longer), or for `at_most`.
#[derive(Clone, Copy)]
struct DataHold {
    together: usize,
    at_most: Duration,
}

impl MailSink {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// On a given port, e.g. one Usher was told about before the sink was up.
    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the SMTP sink");
        let sink = Self {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
            arrived: Arc::default(),
            reject_permanently: Arc::default(),
            fail_temporarily: Arc::default(),
            without_smtputf8: Arc::default(),
            data_reply_delay_ms: Arc::default(),
            in_data: Arc::default(),
            peak_in_data: Arc::default(),
            in_data_changed: Arc::default(),
            hold: Arc::default(),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = serving.clone();
                tokio::spawn(async move {
                    let _ = session.serve(stream).await;
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// While on, answer every recipient with a permanent 550.
    pub fn reject_all_permanently(&self, on: bool) {
        self.reject_permanently.store(on, Ordering::SeqCst);
    }

    /// While on, answer every sender with a temporary 451.
    pub fn fail_temporarily(&self, on: bool) {
        self.fail_temporarily.store(on, Ordering::SeqCst);
    }

    /// While on, stop offering SMTPUTF8, as many relays do: a non-ASCII
    /// envelope can then not be sent at all. Set it before Usher first
    /// connects: lettre keeps a pooled connection's extensions.
    pub fn without_smtputf8(&self, on: bool) {
        self.without_smtputf8.store(on, Ordering::SeqCst);
    }

    /// Keeps the sender waiting this long for the reply to each message's
    /// data (the message counts as received at once), like a slow server.
    pub fn delay_data_reply(&self, delay: Duration) {
        self.data_reply_delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Holds the reply to each message's data until `together` clients are
    /// sending data at once, so only a sender with that many connections
    /// open in parallel gets replies at once; after `at_most` a held
    /// message is accepted anyway (see [`MailSink::peak_in_data`]). The
    /// message counts as received as soon as its data is in.
    pub fn hold_data_until_together(&self, together: usize, at_most: Duration) {
        *self.hold.lock().unwrap() = Some(DataHold { together, at_most });
    }

    /// The most transactions that were between `DATA` and its reply at once.
    pub fn peak_in_data(&self) -> usize {
        self.peak_in_data.load(Ordering::SeqCst)
    }

    pub fn all(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }

    pub fn to(&self, address: &str) -> Vec<ReceivedMail> {
        self.all().into_iter().filter(|mail| mail.to.eq_ignore_ascii_case(address)).collect()
    }

    /// Waits (up to 10 s) until `address` has received `count` messages and
    /// returns the latest.
    pub async fn wait_for(&self, address: &str, count: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let mails = self.to(address);
            if mails.len() >= count {
                return mails[count - 1].clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{address} received {} mail(s), expected {count}", mails.len());
            }
        }
    }

    /// Waits (up to 10 s) for a message to `address` whose subject contains
    /// `subject`, whatever else (a new-sign-in notice, say) arrived between.
    pub async fn wait_for_subject(&self, address: &str, subject: &str) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            if let Some(mail) = self.to(address).into_iter().find(|mail| mail.subject.contains(subject)) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no mail to {address} about {subject:?}: {:?}",
                    self.to(address).iter().map(|m| &m.subject).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Asserts that nothing more arrives for `address` within `wait`.
    pub async fn assert_no_more(&self, address: &str, expected: usize, wait: Duration) {
        tokio::time::sleep(wait).await;
        assert_eq!(self.to(address).len(), expected, "unexpected mail count for {address}");
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let (reader, mut writer) = stream.into_split();
        let mut lines = BufReader::new(reader);
        writer.write_all(b"220 sink ESMTP ready\r\n").await?;
        let mut recipients = Vec::new();
        let mut sender = String::new();
        let mut smtputf8 = false;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let offers_smtputf8 = !self.without_smtputf8.load(Ordering::SeqCst);
            let reply: &[u8] = if command.starts_with("EHLO") {
                if offers_smtputf8 {
                    b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                } else {
                    b"250-sink\r\n250 8BITMIME\r\n"
                }
            } else if command.starts_with("RCPT TO:") {
                let to = extract_address(&line);
                if self.reject_permanently.load(Ordering::SeqCst) {
                    b"550 5.1.1 mailbox unavailable\r\n"
                } else if !to.is_ascii() && !smtputf8 {
                    b"553 5.6.7 non-ASCII address without SMTPUTF8\r\n"
                } else {
                    recipients.push(to);
                    b"250 OK\r\n"
                }
            } else if command == "DATA" {
                let now_in = self.in_data.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak_in_data.fetch_max(now_in, Ordering::SeqCst);
                self.in_data_changed.notify_waiters();
                writer.write_all(b"354 go ahead\r\n").await?;
                let raw = read_data(&mut lines).await;
                let replied = match raw {
                    Ok(raw) => {
                        self.store(std::mem::take(&mut recipients), &sender, smtputf8, raw);
                        let delay = self.data_reply_delay_ms.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        self.wait_for_company().await;
                        writer.write_all(b"250 OK queued\r\n").await
                    }
                    Err(error) => Err(error),
                };
                self.in_data.fetch_sub(1, Ordering::SeqCst);
                replied?;
                continue;
            } else if command == "QUIT" {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if command.starts_with("MAIL FROM:") && self.fail_temporarily.load(Ordering::SeqCst) {
                b"451 4.3.0 try again later\r\n"
            } else if command.starts_with("MAIL FROM:") {
                recipients.clear();
                sender = extract_address(&line);
                smtputf8 = offers_smtputf8 && command.split_whitespace().skip(1).any(|param| param == "SMTPUTF8");
                if !sender.is_ascii() && !smtputf8 {
                    b"553 5.6.7 non-ASCII address without SMTPUTF8\r\n"
                } else {
                    b"250 OK\r\n"
                }
            } else if command.starts_with("RSET") {
                recipients.clear();
                b"250 OK\r\n"
            } else {
                b"250 OK\r\n"
            };
            writer.write_all(reply).await?;
        }
    }

    /// Under [`MailSink::hold_data_until_together`]: waits until enough
    /// transactions were in `DATA` at once, or for the hold's limit.
    async fn wait_for_company(&self) {
        let Some(hold) = *self.hold.lock().unwrap() else { return };
        let deadline = tokio::time::Instant::now() + hold.at_most;
        loop {
            let changed = self.in_data_changed.notified();
            if self.peak_in_data() >= hold.together {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    fn store(&self, recipients: Vec<String>, sender: &str, smtputf8: bool, raw: String) {
        let parsed = MessageParser::default().parse(raw.as_bytes()).expect("parsable message");
        let subject = parsed.subject().unwrap_or_default().to_owned();
        let message_id = parsed.message_id().unwrap_or_default().to_owned();
        let text = parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
        let html = parsed.body_html(0).map(|h| h.into_owned()).unwrap_or_default();
        let mut received = self.received.lock().unwrap();
        for to in recipients {
            received.push(ReceivedMail {
                to,
                envelope_from: sender.to_owned(),
                smtputf8,
                subject: subject.clone(),
                message_id: message_id.clone(),
                text: text.clone(),
                html: html.clone(),
                raw: raw.clone(),
            });
        }
        drop(received);
        self.arrived.notify_waiters();
    }
}

fn extract_address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_owned()
}

async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut raw = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 || line == ".\r\n" || line == ".\n" {
            return Ok(raw);
        }
        // Undo dot-stuffing.
        raw.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
