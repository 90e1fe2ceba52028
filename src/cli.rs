//! The `usher` command line: `serve` (the default), `migrate`,
//! `create-admin`, `cleanup`, `reset-two-factor`, `rotate-encryption-key`,
//! `check-rules`.

use clap::{Parser, Subcommand};

use crate::accounts;
use crate::auth::hash_now;
use crate::cleanup::run_cleanup;
use crate::config::{Config, Settings};
use crate::db::users::User;
use crate::db::{DatabaseUrl, Db, now, run_migrations};
use crate::domain::{EmailAddress, PasswordPolicy};
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(name = "usher", version, about = "A self-hosted account service", args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the web app (the default).
    Serve(Box<Settings>),
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL", default_value = "var/usher.db", hide_env_values = true)]
        database_url: String,
    },
    /// Create an administrator (verified and approved), or make an existing
    /// account one. The password is prompted for, or read from standard
    /// input when it is not a terminal.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, env = "DATABASE_URL", default_value = "var/usher.db", hide_env_values = true)]
        database_url: String,
        /// Shortest password accepted (8 to 64).
        #[arg(long, env = "USHER_PASSWORD_MIN_LENGTH", default_value = "12", value_parser = clap::value_parser!(u16).range(8..=64))]
        password_min_length: u16,
    },
    /// Delete expired and used tokens, expired sessions, finished mail older
    /// than a week, accounts never verified and invitations that ended over
    /// a month ago; print how many of each.
    Cleanup {
        #[arg(long, env = "DATABASE_URL", default_value = "var/usher.db", hide_env_values = true)]
        database_url: String,
        /// Accounts never verified are deleted after this.
        #[arg(long, env = "USHER_UNVERIFIED_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
        unverified_ttl: std::time::Duration,
    },
    /// Turn off the two-step sign-in of an account whose owner lost their
    /// device and recovery codes (the last administrator, say). The owner
    /// is told by email; the password alone signs in again.
    ResetTwoFactor {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Re-encrypt every stored authenticator secret under USHER_ENCRYPTION_KEY.
    /// Set the new key there and the old one in USHER_ENCRYPTION_OLD_KEYS
    /// (instances keep working meanwhile), run this, then drop the old key.
    RotateEncryptionKey {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Check the forward-authentication rules file and say which rule
    /// decides a request for URL, and why the rules before it do not.
    CheckRules {
        /// The address of a page of a guarded app, e.g. https://wiki.example.com/admin/x.
        #[arg(long)]
        url: String,
        #[arg(long, env = "USHER_ACCESS_RULES")]
        access_rules: std::path::PathBuf,
    },
}

/// Parses the command line; a bad value prints one line naming the
/// setting and exits with status 2.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() => {
            let rendered = error.to_string();
            let first_line = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first_line}");
            std::process::exit(2);
        }
        Err(help_or_version) => help_or_version.exit(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.settings).await,
        Some(Command::Serve(settings)) => serve(*settings).await,
        Some(Command::Migrate { database_url }) => migrate(&database_url),
        Some(Command::CreateAdmin { email, database_url, password_min_length }) => {
            create_admin(&email, &database_url, PasswordPolicy { min_length: usize::from(password_min_length) })
        }
        Some(Command::Cleanup { database_url, unverified_ttl }) => cleanup(&database_url, unverified_ttl),
        Some(Command::ResetTwoFactor { email, settings }) => reset_two_factor(&email, *settings),
        Some(Command::RotateEncryptionKey { settings }) => rotate_encryption_key(*settings),
        Some(Command::CheckRules { url, access_rules }) => check_rules(&url, &access_rules),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = Config::resolve(settings)?;
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}

fn migrate(database_url: &str) -> anyhow::Result<()> {
    let db = Db::new(&DatabaseUrl::parse(database_url), 1);
    let applied = run_migrations(&mut db.connect_for_admin()?)?;
    println!("{applied} migration(s) applied");
    Ok(())
}

fn create_admin(email: &str, database_url: &str, policy: PasswordPolicy) -> anyhow::Result<()> {
    let email = EmailAddress::parse(email).map_err(|problem| anyhow::anyhow!("--email: {problem}"))?;
    let db = Db::new(&DatabaseUrl::parse(database_url), 1);
    run_migrations(&mut db.connect_for_admin()?)?;
    let existing = db.run_blocking(|conn| User::find_by_email(conn, email.as_str()))?;
    let password_hash = match &existing {
        Some(user) if user.email_verified_at.is_none() => {
            // Said before asking for a password that would not be used.
            anyhow::bail!(accounts::CreateAdminRefusal::Unconfirmed(email.as_str().to_owned()));
        }
        Some(_) => None,
        None => {
            let (password, confirmation) = read_new_password()?;
            let password = policy.check(&password, &confirmation, &[email.local_part()])?;
            Some(hash_now(&password)?)
        }
    };
    db.run_blocking(|conn| conn.write(|conn| accounts::create_admin(conn, &email, password_hash.as_deref(), now())))??;
    match existing {
        Some(_) => println!("{email} is now an administrator; the account keeps its password (none was read)"),
        None => println!("created the administrator {email}"),
    }
    Ok(())
}

/// Prompts twice on a terminal; otherwise reads one line from standard input.
fn read_new_password() -> anyhow::Result<(String, String)> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Password: ")?;
        let confirmation = rpassword::prompt_password("Repeat the password: ")?;
        Ok((password, confirmation))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        Ok((password.clone(), password))
    }
}

fn cleanup(database_url: &str, unverified_ttl: std::time::Duration) -> anyhow::Result<()> {
    let db = Db::new(&DatabaseUrl::parse(database_url), 2);
    run_migrations(&mut db.connect_for_admin()?)?;
    let report = run_cleanup(&db, unverified_ttl)?;
    println!("tokens: {}", report.tokens);
    println!("sessions: {}", report.sessions);
    println!("mail: {}", report.mail);
    println!("unverified accounts: {}", report.unverified_accounts);
    println!("throttle records: {}", report.throttle_records);
    println!("invitations: {}", report.invitations);
    Ok(())
}

/// The settings a maintenance command needs: the database and, for mail
/// and keys, the rest of `serve`'s.
fn maintenance_config(settings: Settings) -> anyhow::Result<(Config, Db)> {
    let config = Config::resolve(settings)?;
    let db = Db::new(&config.database, 1);
    run_migrations(&mut db.connect_for_admin()?)?;
    Ok((config, db))
}

fn reset_two_factor(email: &str, settings: Settings) -> anyhow::Result<()> {
    let email = EmailAddress::parse(email).map_err(|problem| anyhow::anyhow!("--email: {problem}"))?;
    let (config, db) = maintenance_config(settings)?;
    let Some(user) = db.run_blocking(|conn| User::find_by_email(conn, email.as_str()))? else {
        anyhow::bail!("no account has the address {email}");
    };
    let ctx = accounts::Context { config: &config, ip: "command line", user_agent: "", now: now() };
    let reset = db.run_blocking(|conn| {
        conn.write(|conn| accounts::reset_two_factor(conn, user.id, accounts::ResetBy::CommandLine, ctx))
    })?;
    anyhow::ensure!(reset, "{email} has no two-step sign-in to reset");
    println!("two-step sign-in of {email} is off; the password alone signs in, and a notice is queued for the owner");
    Ok(())
}

fn rotate_encryption_key(settings: Settings) -> anyhow::Result<()> {
    let (config, db) = maintenance_config(settings)?;
    let report = db.run_blocking(|conn| accounts::reseal_secrets(conn, &config.key_ring()))?;
    println!("re-encrypted: {}", report.resealed);
    println!("already under the current key: {}", report.current);
    anyhow::ensure!(
        report.unreadable == 0,
        "{} secret(s) could not be opened with any key given: add the key they were sealed with to USHER_ENCRYPTION_OLD_KEYS and run this again",
        report.unreadable
    );
    Ok(())
}

fn check_rules(url: &str, path: &std::path::Path) -> anyhow::Result<()> {
    use crate::forward_auth::{AccessRules, OriginalRequest, Policy, RuleVerdict, TargetProblem};
    let rules = AccessRules::load(path)?;
    println!("{}: {} rule(s), all valid", path.display(), rules.rules.len());
    let header = |name: &str| (name == "x-original-url").then_some(url);
    let request = OriginalRequest::from_original_url(header).map_err(|problem| match problem {
        TargetProblem::Path(problem) => anyhow::anyhow!("--url: its path {problem}: refused"),
        _ => anyhow::anyhow!("--url: give an absolute URL such as https://wiki.example.com/page"),
    })?;
    if let Err(problem) = rules.rule_for(&request) {
        anyhow::bail!("--url: refused, since {problem}");
    }
    // A path that cannot be judged reached here only where no rule looks at it.
    let path = request.path.clone().unwrap_or_else(|_| "/".to_owned());
    match &request.path {
        Ok(_) => println!("host {}, path {path}", request.host),
        Err(_) => println!("host {}, path not read (the rules for this host cover every path)", request.host),
    }
    let tried = rules.explain(&request.host, &path);
    for (rule, verdict) in &tried {
        let path = rule.path.as_deref().unwrap_or("any path");
        let why = match verdict {
            RuleVerdict::OtherHost => format!("passed over: the host is not {}", rule.host),
            RuleVerdict::OutsidePath => format!("passed over: the path is not {path} or below it"),
            RuleVerdict::Matches => "matches".to_owned(),
        };
        println!("  line {}: host {}, {path}: {why}", rule.line, rule.host);
    }
    let decision = match tried.last() {
        Some((rule, RuleVerdict::Matches)) => match &rule.policy {
            Policy::Bypass => "allowed to anyone, signed in or not (bypass)".to_owned(),
            Policy::SignedIn => "allowed to anyone signed in (signed_in)".to_owned(),
            Policy::Groups(groups) => {
                let names: Vec<&str> = groups.iter().map(|group| group.as_str()).collect();
                format!("allowed to members of {} (groups)", names.join(" or "))
            }
        },
        _ => "denied to everyone: no rule matches".to_owned(),
    };
    println!("=> {decision}");
    Ok(())
}
