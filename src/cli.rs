//! The `usher` command line: `serve` (the default), `migrate`, `cleanup`.

use clap::{Parser, Subcommand};

use crate::cleanup::run_cleanup;
use crate::config::{Config, Settings};
use crate::db::{DatabaseUrl, Db, run_migrations};
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
    /// Delete expired and used tokens, expired sessions, finished mail older
    /// than a week and accounts never verified; print how many of each.
    Cleanup {
        #[arg(long, env = "DATABASE_URL", default_value = "var/usher.db", hide_env_values = true)]
        database_url: String,
        /// Accounts never verified are deleted after this.
        #[arg(long, env = "USHER_UNVERIFIED_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
        unverified_ttl: std::time::Duration,
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
        Some(Command::Cleanup { database_url, unverified_ttl }) => cleanup(&database_url, unverified_ttl),
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

fn cleanup(database_url: &str, unverified_ttl: std::time::Duration) -> anyhow::Result<()> {
    let db = Db::new(&DatabaseUrl::parse(database_url), 2);
    run_migrations(&mut db.connect_for_admin()?)?;
    let report = run_cleanup(&db, unverified_ttl)?;
    println!("tokens: {}", report.tokens);
    println!("sessions: {}", report.sessions);
    println!("mail: {}", report.mail);
    println!("unverified accounts: {}", report.unverified_accounts);
    Ok(())
}
