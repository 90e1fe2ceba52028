//! Settings from environment variables and the same-named flags, parsed once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::builder::BoolishValueParser;
use ipnet::IpNet;
use url::Url;

use crate::db::DatabaseUrl;
use crate::domain::{EmailAddress, random_secret};
use crate::throttle::{Limit, Limits};

const SESSION_KEY_FILE: &str = "var/session.key";
const ENCRYPTION_KEY_FILE: &str = "var/encryption.key";
/// The shortest session or encryption key accepted.
const MIN_SESSION_KEY_BYTES: usize = 32;

/// Every setting of `usher serve`: an environment variable and a flag each.
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// `postgres://…` for PostgreSQL, anything else is a SQLite file path.
    #[arg(long, env = "DATABASE_URL", default_value = "var/usher.db", hide_env_values = true)]
    #[arg(value_parser = parse_secret)]
    pub database_url: Secret,
    /// The site's name on every page and email.
    #[arg(long, env = "USHER_SITE_NAME", default_value = "Usher", value_parser = parse_site_name)]
    pub site_name: String,
    /// Where people write when they need a human; shown on every page and in every email. Unset: not shown.
    #[arg(long, env = "USHER_SUPPORT_EMAIL", value_parser = parse_support_email)]
    pub support_email: Option<String>,
    /// Listen address.
    #[arg(long, env = "USHER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Absolute base for links in emails; https turns on Secure cookies. Default: http://<bind>.
    #[arg(long, env = "USHER_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Secret of at least 32 bytes for cookies, shared by all instances. Default: generated into var/session.key.
    #[arg(long, env = "USHER_SESSION_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub session_key: Option<Secret>,
    /// Secret of at least 32 bytes that encrypts stored authenticator secrets, shared by all instances.
    /// Keep it apart from the session key. Default: generated into var/encryption.key.
    #[arg(long, env = "USHER_ENCRYPTION_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub encryption_key: Option<Secret>,
    /// Earlier encryption keys (comma-separated) that still decrypt until `usher rotate-encryption-key` has run.
    #[arg(long, env = "USHER_ENCRYPTION_OLD_KEYS", hide_env_values = true, value_parser = parse_secret, value_delimiter = ',')]
    pub encryption_old_keys: Vec<Secret>,
    /// SMTP server, e.g. smtp://127.0.0.1:2525 or smtps://user:pass@host. Unset: mail goes to files.
    #[arg(long, env = "USHER_SMTP_URL", hide_env_values = true, value_parser = parse_secret)]
    pub smtp_url: Option<Secret>,
    /// Where mail goes when there is no SMTP URL.
    #[arg(long, env = "USHER_MAIL_DIR", default_value = "var/mail")]
    pub mail_dir: PathBuf,
    /// Sender of every email.
    #[arg(long, env = "USHER_MAIL_FROM", default_value = "Usher <no-reply@localhost>", value_parser = parse_mailbox)]
    pub mail_from: lettre::message::Mailbox,
    /// Sign-in needs a verified address.
    #[arg(long, env = "USHER_REQUIRE_EMAIL_VERIFICATION", default_value = "true", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub require_email_verification: bool,
    /// Sign-in needs an administrator's approval.
    #[arg(long, env = "USHER_REQUIRE_ADMIN_APPROVAL", default_value = "false", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub require_admin_approval: bool,
    /// Life of a verification link.
    #[arg(long, env = "USHER_VERIFY_TOKEN_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub verify_token_ttl: Duration,
    /// Life of a 6-digit verification code.
    #[arg(long, env = "USHER_VERIFY_CODE_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub verify_code_ttl: Duration,
    /// Life of a password reset link.
    #[arg(long, env = "USHER_RESET_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub reset_token_ttl: Duration,
    /// Life of an invitation link.
    #[arg(long, env = "USHER_INVITATION_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub invitation_ttl: Duration,
    /// Idle timeout of a session (sliding).
    #[arg(long, env = "USHER_SESSION_IDLE_TTL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub session_idle_ttl: Duration,
    /// How long a typed password counts as "it's you" for sensitive actions
    /// (ending sessions, destructive admin actions): ASVS 3.7.1.
    #[arg(long, env = "USHER_REAUTH_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reauth_ttl: Duration,
    /// Hard limit on a session's age.
    #[arg(long, env = "USHER_SESSION_ABSOLUTE_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_absolute_ttl: Duration,
    /// Idle and hard limit of a "remember me" session.
    #[arg(long, env = "USHER_SESSION_REMEMBER_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub session_remember_ttl: Duration,
    /// Shortest password accepted (8 to 64).
    #[arg(long, env = "USHER_PASSWORD_MIN_LENGTH", default_value = "12", value_parser = clap::value_parser!(u16).range(8..=64))]
    pub password_min_length: u16,
    /// Accounts never verified are deleted after this.
    #[arg(long, env = "USHER_UNVERIFIED_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub unverified_ttl: Duration,
    /// Failed sign-ins per address, as attempts/window.
    #[arg(long, env = "USHER_LIMIT_SIGN_IN_PER_ADDRESS", default_value = "10/15m")]
    pub limit_sign_in_per_address: Limit,
    /// Failed sign-ins per client IP.
    #[arg(long, env = "USHER_LIMIT_SIGN_IN_PER_IP", default_value = "100/15m")]
    pub limit_sign_in_per_ip: Limit,
    /// Mail-sending requests (resend, forgot password, registration) per address.
    #[arg(long, env = "USHER_LIMIT_MAIL_PER_ADDRESS", default_value = "5/1h")]
    pub limit_mail_per_address: Limit,
    /// Verification codes typed per address.
    #[arg(long, env = "USHER_LIMIT_CODES_PER_ADDRESS", default_value = "10/1h")]
    pub limit_codes_per_address: Limit,
    /// Wrong second-factor codes per account (the window outlasts a sign-in's 5-minute code step).
    #[arg(long, env = "USHER_LIMIT_SECOND_FACTOR_PER_ACCOUNT", default_value = "5/15m")]
    pub limit_second_factor_per_account: Limit,
    /// Sign-ups per client IP.
    #[arg(long, env = "USHER_LIMIT_SIGN_UPS_PER_IP", default_value = "20/1h")]
    pub limit_sign_ups_per_ip: Limit,
    /// Proxies whose X-Forwarded-For (and, for forward authentication,
    /// X-Forwarded-*/X-Original-*) is believed: comma-separated addresses or
    /// CIDR ranges, e.g. `127.0.0.1,172.18.0.0/16`.
    #[arg(long, env = "USHER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy_range)]
    pub trusted_proxies: Vec<IpNet>,
    /// Parent domain (e.g. `example.com`) of the apps Usher guards: a
    /// separate forward-auth cookie is set for it at sign-in. Unset: only
    /// apps on Usher's own host can be guarded.
    #[arg(long, env = "USHER_COOKIE_DOMAIN", value_parser = parse_cookie_domain)]
    pub cookie_domain: Option<String>,
    /// TOML file of forward-authentication rules; unset: /auth/forward and
    /// /auth/request answer 404.
    #[arg(long, env = "USHER_ACCESS_RULES")]
    pub access_rules: Option<PathBuf>,
    /// `off`: no mail when an account signs in from a browser it has not used.
    #[arg(long, env = "USHER_SIGN_IN_ALERTS", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub sign_in_alerts: bool,
    /// Who must set up two-step sign-in before using the site: `off`, `admins` or `all`.
    #[arg(long, env = "USHER_REQUIRE_TWO_FACTOR", default_value = "off", value_enum)]
    pub require_two_factor: RequireTwoFactor,
    /// Who may create an account: `open` (anyone, at /register), `invite`
    /// (only through an administrator's invitation) or `closed` (nobody;
    /// administrators come from `usher create-admin`).
    #[arg(long, env = "USHER_REGISTRATION", default_value = "open", value_enum)]
    pub registration: Registration,
    /// `off` turns every rate limit and lockout off (tests and benchmarks only).
    #[arg(long, env = "USHER_THROTTLE", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub throttle: bool,
    /// Sign-ins that may wait for a password-hashing thread before new ones get a 503.
    #[arg(long, env = "USHER_HASH_QUEUE", default_value = "128")]
    pub hash_queue: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "USHER_WORKERS")]
    pub workers: Option<usize>,
    /// Database connections this instance may hold (default: 4 per worker,
    /// one per mail sender and 2 more, at most 32). Instances sharing one PostgreSQL must stay
    /// within its max_connections together.
    #[arg(long, env = "USHER_DB_CONNECTIONS", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_connections: Option<u32>,
    /// First wait before retrying a mail after a temporary failure; it doubles each time.
    #[arg(long, env = "USHER_MAIL_RETRY_BASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub mail_retry_base: Duration,
    /// Attempts before a mail is marked dead.
    #[arg(long, env = "USHER_MAIL_MAX_ATTEMPTS", default_value = "8")]
    pub mail_max_attempts: u32,
    /// How often expired tokens, sessions, old mail and unverified accounts are deleted.
    #[arg(long, env = "USHER_CLEANUP_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub cleanup_interval: Duration,
    /// How often the mail worker looks for mail queued by other instances.
    #[arg(long, env = "USHER_MAIL_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub mail_poll_interval: Duration,
    /// How long a mail worker's claim on a message lasts unless renewed (it
    /// is renewed while the message is sent): mail held by a crashed
    /// instance goes out after at most this long. Whole seconds, at least 2.
    #[arg(long, env = "USHER_MAIL_LEASE", default_value = "30s", value_parser = parse_lease)]
    pub mail_lease: Duration,
    /// Mails this instance sends at once: that many sender threads, each
    /// with at most one SMTP connection open (kept open for the next mail).
    #[arg(long, env = "USHER_MAIL_CONNECTIONS", default_value = "4", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub mail_connections: u32,
}

impl Settings {
    /// Parses settings from flags alone, as `usher serve` would (with the
    /// environment as fallback): for tests and tools that start Usher in-process.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        let program = std::iter::once(std::ffi::OsString::from("usher"));
        let flags = program.chain(flags.into_iter().map(Into::into));
        <Flags as clap::Parser>::try_parse_from(flags).map(|parsed| parsed.settings)
    }
}

/// Who may create an account (`USHER_REGISTRATION`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Anyone signs up at `/register`.
    #[default]
    Open,
    /// Only through an administrator's invitation.
    Invite,
    /// Nobody signs up.
    Closed,
}

impl Registration {
    /// Whether anyone may sign up at `/register` (and pages link to it).
    pub fn is_open(self) -> bool {
        self == Self::Open
    }

    /// Whether an invitation may be sent and accepted: in every mode but `closed`.
    pub fn admits_invitations(self) -> bool {
        self != Self::Closed
    }
}

/// Who must use two-step sign-in (`USHER_REQUIRE_TWO_FACTOR`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequireTwoFactor {
    /// Nobody: each person chooses.
    #[default]
    Off,
    /// Administrators: they reach no page but its setup until it is on,
    /// and cannot turn it off.
    Admins,
    /// Everyone, likewise.
    All,
}

impl RequireTwoFactor {
    /// Whether an account (an administrator or not) must have it.
    pub fn applies_to(self, is_admin: bool) -> bool {
        match self {
            Self::Off => false,
            Self::Admins => is_admin,
            Self::All => true,
        }
    }
}

/// A setting that must never reach a log: its `Debug` is redacted.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn parse_secret(raw: &str) -> Result<Secret, String> {
    Ok(Secret(raw.to_owned()))
}

fn parse_support_email(raw: &str) -> Result<String, String> {
    EmailAddress::parse(raw).map(|email| email.as_str().to_owned()).map_err(|problem| problem.to_string())
}

fn parse_lease(raw: &str) -> Result<Duration, String> {
    let lease = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if lease < Duration::from_secs(2) || lease.subsec_nanos() != 0 {
        return Err("whole seconds, at least 2s".into());
    }
    Ok(lease)
}

fn parse_site_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err("1 to 80 printable characters".into());
    }
    Ok(name.to_owned())
}

/// The sender, its domain in IDNA ASCII form: it goes into every SMTP
/// envelope and Message-ID, which a relay without SMTPUTF8 takes only in ASCII.
fn parse_mailbox(raw: &str) -> Result<lettre::message::Mailbox, String> {
    let mailbox: lettre::message::Mailbox = raw.parse().map_err(|e| format!("not a mail address: {e}"))?;
    let domain = EmailAddress::domain_to_ascii(mailbox.email.domain())
        .map_err(|_| "the part after the @ is not a valid domain name".to_owned())?;
    let email = lettre::Address::new(mailbox.email.user(), domain).map_err(|e| format!("not a mail address: {e}"))?;
    Ok(lettre::message::Mailbox::new(mailbox.name, email))
}

/// Settings after defaults that depend on each other are filled in.
#[derive(Clone, Debug)]
pub struct Config {
    pub settings: Settings,
    pub database: DatabaseUrl,
    pub public_url: Url,
    pub session_key: Secret,
    /// Seals stored authenticator secrets (`auth::encryption`).
    pub encryption_key: Secret,
    /// Where the time comes from: the system's, unless a test moves it.
    pub clock: crate::clock::Clock,
    /// The forward-authentication rules; `None`: forward authentication is off.
    pub access_rules: Option<std::sync::Arc<crate::forward_auth::AccessRules>>,
}

impl Config {
    pub fn resolve(settings: Settings) -> anyhow::Result<Self> {
        let database = DatabaseUrl::parse(settings.database_url.expose());
        let public_url = match &settings.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{}", settings.bind))
                .map_err(|e| anyhow::anyhow!("USHER_BIND: not a host:port ({e})"))?,
        };
        let session_key = match &settings.session_key {
            Some(key) if key.0.len() < MIN_SESSION_KEY_BYTES => {
                anyhow::bail!("USHER_SESSION_KEY: must be at least {MIN_SESSION_KEY_BYTES} bytes long")
            }
            Some(key) => key.clone(),
            None if database.is_postgres() => {
                anyhow::bail!("USHER_SESSION_KEY: required with PostgreSQL, where every instance must share it")
            }
            None => load_or_create_key_file(Path::new(SESSION_KEY_FILE), "USHER_SESSION_KEY")?,
        };
        let encryption_key = resolve_encryption_key(&settings, &database)?;
        check_cookie_domain(&settings, &public_url)?;
        let access_rules = match &settings.access_rules {
            Some(path) => Some(std::sync::Arc::new(crate::forward_auth::AccessRules::load(path)?)),
            None => None,
        };
        let clock = crate::clock::Clock::default();
        Ok(Self { settings, database, public_url, session_key, encryption_key, clock, access_rules })
    }

    pub fn limits(&self) -> Limits {
        let s = &self.settings;
        Limits {
            sign_in_per_address: s.limit_sign_in_per_address,
            sign_in_per_ip: s.limit_sign_in_per_ip,
            mail_per_address: s.limit_mail_per_address,
            codes_per_address: s.limit_codes_per_address,
            sign_ups_per_ip: s.limit_sign_ups_per_ip,
            second_factor_per_account: s.limit_second_factor_per_account,
        }
    }

    /// The keys that seal and open stored authenticator secrets.
    pub fn key_ring(&self) -> crate::auth::KeyRing {
        let old: Vec<&str> = self.settings.encryption_old_keys.iter().map(Secret::expose).collect();
        crate::auth::KeyRing::new(self.encryption_key.expose(), &old)
    }

    /// Timeouts and the account states a session needs to stay valid.
    pub fn session_policy(&self) -> crate::auth::SessionPolicy {
        let settings = &self.settings;
        crate::auth::SessionPolicy {
            idle_ttl: settings.session_idle_ttl,
            absolute_ttl: settings.session_absolute_ttl,
            remember_ttl: settings.session_remember_ttl,
            require_verification: settings.require_email_verification,
            require_approval: settings.require_admin_approval,
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// An absolute link to a path of this site.
    pub fn link(&self, path_and_query: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path_and_query)
    }
}

/// Browsers take a cookie for a domain only from a host within it, so
/// Usher's public host must be the cookie domain or below it.
fn check_cookie_domain(settings: &Settings, public_url: &Url) -> anyhow::Result<()> {
    let Some(domain) = &settings.cookie_domain else { return Ok(()) };
    let host = public_url.host_str().and_then(crate::forward_auth::normalise_host).unwrap_or_default();
    if !crate::forward_auth::within_domain(&host, domain) {
        anyhow::bail!("USHER_COOKIE_DOMAIN: {domain} does not contain Usher's own host {host} (USHER_PUBLIC_URL)");
    }
    Ok(())
}

/// A trusted proxy: an address (one host) or a CIDR range.
fn parse_proxy_range(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(range) = value.parse::<IpNet>() {
        return Ok(range.trunc());
    }
    value
        .parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range like 172.18.0.0/16"))
}

/// A cookie domain: a host name with at least one dot, in lower case,
/// without a leading dot.
fn parse_cookie_domain(value: &str) -> Result<String, String> {
    let name = value.trim().trim_start_matches('.');
    match crate::forward_auth::normalise_host(name) {
        Some(domain) if domain.contains('.') && !value.contains(':') && !domain.starts_with('[') => Ok(domain),
        _ => Err(format!("{value:?} is not a domain name like example.com")),
    }
}

/// `USHER_ENCRYPTION_KEY`, or on SQLite a key generated into a file.
///
/// # Errors
/// A key shorter than 32 bytes (old ones too), the session key reused,
/// or none given with PostgreSQL, where every instance must share it.
pub fn resolve_encryption_key(settings: &Settings, database: &DatabaseUrl) -> anyhow::Result<Secret> {
    let short = settings
        .encryption_old_keys
        .iter()
        .chain(&settings.encryption_key)
        .any(|key| key.0.len() < MIN_SESSION_KEY_BYTES);
    anyhow::ensure!(!short, "USHER_ENCRYPTION_KEY: every key must be at least {MIN_SESSION_KEY_BYTES} bytes long");
    let key = match &settings.encryption_key {
        Some(key) => key.clone(),
        None if database.is_postgres() => {
            anyhow::bail!("USHER_ENCRYPTION_KEY: required with PostgreSQL, where every instance must share it")
        }
        None => load_or_create_key_file(Path::new(ENCRYPTION_KEY_FILE), "USHER_ENCRYPTION_KEY")?,
    };
    let reused = settings.session_key.as_ref().is_some_and(|session| session.0 == key.0);
    anyhow::ensure!(
        !reused,
        "USHER_ENCRYPTION_KEY: must differ from USHER_SESSION_KEY, so either can be replaced alone"
    );
    Ok(key)
}

fn load_or_create_key_file(path: &Path, setting: &str) -> anyhow::Result<Secret> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let key = existing.trim().to_owned();
        anyhow::ensure!(
            key.len() >= MIN_SESSION_KEY_BYTES,
            "{}: too short; delete it to generate a new one",
            path.display()
        );
        return Ok(Secret(key));
    }
    let key = URL_SAFE_NO_PAD.encode(random_secret::<48>());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private_file(path, &key)?;
    tracing::warn!(file = %path.display(), "{setting} is not set: generated a key into a file; set it for production");
    Ok(Secret(key))
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::parse_mailbox;

    #[test]
    fn the_sender_domain_is_kept_in_ascii() {
        let sender = parse_mailbox("Bücherei <no-reply@Bücher.example>").unwrap();
        assert_eq!(sender.name.as_deref(), Some("Bücherei"));
        assert_eq!(sender.email.to_string(), "no-reply@xn--bcher-kva.example");
        assert_eq!(parse_mailbox("Usher <no-reply@localhost>").unwrap().email.to_string(), "no-reply@localhost");
        let refused = parse_mailbox("no-reply@bü_cher.example").unwrap_err();
        assert!(refused.contains("not a valid domain name"), "{refused}");
    }
}
