//! The command line: `serve`, `migrate run|revert|status`, `config check`, `token new`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, exit, ServeOptions};
use crate::config::{self, Config, Sources};
use crate::db::cluster::{ClusterOptions, ManagedCluster};
use crate::db::{migrations, Db};
use crate::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "overseer",
    version,
    about = "Runs scheduled automations and never loses one."
)]
pub struct Cli {
    /// Configuration file (TOML), layered over the built-in defaults. Also OVERSEER_CONFIG.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: database, supervised actors, admin API.
    Serve {
        /// Use a temporary managed PostgreSQL cluster, deleted at exit (no persistence).
        #[arg(long)]
        ephemeral: bool,
    },
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Run,
    /// Revert the most recent migration.
    Revert,
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration and print it (secrets redacted). Exit 2 when invalid.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Make a new token; prints it once, with the configuration entry holding its hash.
    New {
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["viewer", "operator", "admin"]))]
        role: String,
        /// A name for the token (shown in logs as the caller).
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

/// The configuration with its declarations checked (every command sees the same errors).
fn load(file: Option<PathBuf>) -> Result<config::Loaded, i32> {
    crate::declarative::load(&Sources::from_process(file)).map_err(|e| {
        eprintln!("overseer: invalid configuration: {e}");
        exit::CONFIG
    })
}

fn load_config(file: Option<PathBuf>) -> Result<Config, i32> {
    load(file).map(|l| l.config)
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Token {
            action: TokenAction::New { role, name },
        } => {
            let (token, hash) = crate::api::auth::new_token();
            println!("{token}");
            eprintln!(
                "\nThe token above is shown once. Add this to the configuration:\n\n\
                 [[auth.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n"
            );
            exit::OK
        }
        Command::Config {
            action: ConfigAction::Check,
        } => match load_config(cli.config) {
            Ok(config) => {
                print!("{}", config.effective_toml());
                eprintln!("configuration is valid");
                exit::OK
            }
            Err(code) => code,
        },
        Command::Serve { ephemeral } => {
            let (config, jobs) = match load(cli.config).and_then(|l| {
                let jobs = crate::declarative::jobs(&l).map_err(|e| {
                    eprintln!("overseer: invalid configuration: {e}");
                    exit::CONFIG
                })?;
                Ok((l.config, jobs))
            }) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init_logging(&config.log);
            match app::serve(config, jobs, ServeOptions { ephemeral }) {
                Ok(code) => code,
                Err(e @ app::AppError::Config(_)) => {
                    tracing::error!(error = %e, "overseer failed");
                    eprintln!("overseer: {e}");
                    exit::CONFIG
                }
                Err(e) => {
                    tracing::error!(error = %e, "overseer failed");
                    eprintln!("overseer: {e}");
                    exit::FAILURE
                }
            }
        }
        Command::Migrate { action } => {
            let config = match load_config(cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init_logging(&config.log);
            match migrate(&config, action) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("overseer: {e}");
                    exit::FAILURE
                }
            }
        }
    }
}

fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    // Without a URL, migrate the managed cluster (started for the command if it is down,
    // and stopped again afterwards if this command started it).
    let mut cluster = match config.database_url() {
        Some(_) => None,
        None => Some(ManagedCluster::start(&ClusterOptions::persistent(
            &config.state_dir,
        ))?),
    };
    let url = match (config.database_url(), &cluster) {
        (Some(u), _) => u,
        (None, Some(c)) => c.url(),
        (None, None) => anyhow::bail!("no database"),
    };
    let db = Db::new(&url, 1, config.database.connect_timeout);
    let result = (|| -> anyhow::Result<()> {
        let mut conn = db.get_blocking()?;
        match action {
            MigrateAction::Run => {
                let applied = migrations::run_pending(&mut conn)?;
                if applied.is_empty() {
                    println!("no pending migrations");
                }
                for v in applied {
                    println!("applied {v}");
                }
            }
            MigrateAction::Revert => {
                let v = migrations::revert_last(&mut conn)?;
                println!("reverted {v}");
            }
            MigrateAction::Status => {
                for (v, applied) in migrations::status(&mut conn)? {
                    println!("{} {v}", if applied { "applied" } else { "pending" });
                }
            }
        }
        Ok(())
    })();
    drop(db);
    if let Some(c) = cluster.as_mut() {
        if c.started_here {
            c.stop()?;
        }
    }
    result
}
