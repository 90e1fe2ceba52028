//! The `usher` command line: `serve` (the default) and `migrate`.

use clap::{Parser, Subcommand};

use crate::config::{Config, Settings};
use crate::db::{DatabaseUrl, run_migrations};
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(
    name = "usher",
    version,
    about = "A self-hosted account service",
    args_conflicts_with_subcommands = true
)]
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
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "var/usher.db",
            hide_env_values = true
        )]
        database_url: String,
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
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = Config::resolve(settings)?;
    let app = Application::build(config).await?;
    app.run_until_stopped().await?;
    Ok(())
}

fn migrate(database_url: &str) -> anyhow::Result<()> {
    let url = DatabaseUrl::parse(database_url);
    let mut conn = url
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", url.redacted()))?;
    let applied = run_migrations(&mut conn)?;
    println!("{applied} migration(s) applied to {}", url.redacted());
    Ok(())
}
