//! The command line: `serve`, `migrate run|revert|status`, `config check`, `token new`, and
//! the client commands (`jobs`, `runs`, `quotas`, `notifications`, `browser`, `status`) that talk to a
//! running overseer over its API (`client`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, exit, ServeOptions};
use crate::config::{self, Config, Sources};
use crate::db::cluster::{ClusterOptions, ManagedCluster};
use crate::db::{migrations, Db};
use crate::stdx::stdout::print;
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
    /// Client commands: the overseer to talk to (default: this configuration's server.bind).
    /// Given before the command (`overseer --url URL jobs list`): after `browser open`,
    /// `--url` is the page to open.
    #[arg(long, env = "OVERSEER_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Client commands: a file holding the API token (OVERSEER_TOKEN wins; default for a
    /// local overseer: <state_dir>/admin.token).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Client commands: print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Jobs of a running overseer.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Runs of a running overseer.
    Runs {
        #[command(subcommand)]
        action: RunsAction,
    },
    /// Quotas of a running overseer.
    Quotas {
        #[command(subcommand)]
        action: QuotasAction,
    },
    /// Notifications (the outbox) of a running overseer.
    Notifications {
        #[command(subcommand)]
        action: NotificationsAction,
    },
    /// Browser profiles of a running overseer.
    Browser {
        #[command(subcommand)]
        action: BrowserAction,
    },
    /// A running overseer at a glance: readiness, actors, leader, runs in flight.
    Status,
}

#[derive(Subcommand, Debug)]
pub enum BrowserAction {
    /// Open a live view of a profile's browser (to log in by hand, enter a one-time code):
    /// prints the dashboard link to drive it from. The profile's runs wait until it ends.
    Open {
        profile: String,
        /// Where its first tab goes (http or https).
        #[arg(long = "url", id = "page_url", value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobsAction {
    /// List jobs.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one job.
    Get { name: String },
    /// Create or change jobs from a TOML file of [[jobs]] (the configuration's format), by name.
    Apply {
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
    /// Pause a job.
    Pause { name: String },
    /// Resume a paused job.
    Resume { name: String },
    /// Run a job now.
    Trigger { name: String },
    /// Cancel a job (it never fires again; its open runs are cancelled).
    Delete { name: String },
}

#[derive(Subcommand, Debug)]
pub enum RunsAction {
    /// List runs, newest first.
    List {
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one run.
    Get { id: String },
    /// Requeue a dead letter.
    Requeue { id: String },
}

#[derive(Subcommand, Debug)]
pub enum QuotasAction {
    /// Every quota and its windows.
    List,
    /// One quota.
    Get { name: String },
}

#[derive(Subcommand, Debug)]
pub enum NotificationsAction {
    /// List notifications, newest first.
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Run {
        /// Print the pending migrations and their SQL; apply nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Revert the most recent migration, or with --to every one newer than VERSION.
    Revert {
        /// Revert, newest first, every applied migration newer than this version (it stays
        /// applied); each step in its own transaction, stopping at the first failure.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// List migrations: applied (with when) or pending.
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

/// The request of a client command, if `command` is one.
fn client_request(command: &Command) -> Option<crate::client::Request> {
    use crate::client::Request as R;
    Some(match command {
        Command::Jobs { action } => match action {
            JobsAction::List {
                state,
                kind,
                tag,
                limit,
            } => R::JobsList {
                state: state.clone(),
                kind: kind.clone(),
                tag: tag.clone(),
                limit: *limit,
            },
            JobsAction::Get { name } => R::JobsGet(name.clone()),
            JobsAction::Apply { file } => R::JobsApply(file.clone()),
            JobsAction::Pause { name } => R::JobAction("pause", name.clone()),
            JobsAction::Resume { name } => R::JobAction("resume", name.clone()),
            JobsAction::Trigger { name } => R::JobAction("trigger", name.clone()),
            JobsAction::Delete { name } => R::JobsDelete(name.clone()),
        },
        Command::Runs { action } => match action {
            RunsAction::List { job, state, limit } => R::RunsList {
                job: job.clone(),
                state: state.clone(),
                limit: *limit,
            },
            RunsAction::Get { id } => R::RunsGet(id.clone()),
            RunsAction::Requeue { id } => R::RunsRequeue(id.clone()),
        },
        Command::Quotas { action } => match action {
            QuotasAction::List => R::QuotasList,
            QuotasAction::Get { name } => R::QuotasGet(name.clone()),
        },
        Command::Notifications {
            action: NotificationsAction::List { state, limit },
        } => R::NotificationsList {
            state: state.clone(),
            limit: *limit,
        },
        Command::Browser {
            action: BrowserAction::Open { profile, url },
        } => R::BrowserOpen {
            profile: profile.clone(),
            url: url.clone(),
        },
        Command::Status => R::Status,
        _ => return None,
    })
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if let Some(request) = client_request(&cli.command) {
        let config = match load_config(cli.config) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let url = cli.url.unwrap_or_else(|| app::api_url(config.bind_addr()));
        let token = crate::client::token(cli.token_file.as_deref(), &config.state_dir, &url);
        let target = crate::client::Target {
            url,
            token,
            json: cli.json,
        };
        return crate::client::run(&target, request);
    }
    match cli.command {
        Command::Token {
            action: TokenAction::New { role, name },
        } => {
            let (token, hash) = crate::api::auth::new_token();
            print(format_args!("{token}\n"));
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
                print(config.effective_toml());
                eprintln!("configuration is valid");
                exit::OK
            }
            Err(code) => code,
        },
        Command::Serve { ephemeral } => {
            let (config, jobs, flag_origins) = match load(cli.config).and_then(|l| {
                let jobs = crate::declarative::jobs(&l).map_err(|e| {
                    eprintln!("overseer: invalid configuration: {e}");
                    exit::CONFIG
                })?;
                let origins = crate::flags::Name::ALL
                    .into_iter()
                    .map(|n| {
                        let key = format!("flags.{}", n.as_str());
                        let origin = l.origin(&key);
                        (key, origin)
                    })
                    .collect();
                Ok((l.config, jobs, origins))
            }) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // Held until serve returns: dropping it sends the last spans.
            let _traces = telemetry::init_logging(&config.log, &config.traces);
            let opts = ServeOptions {
                ephemeral,
                flag_origins,
            };
            match app::serve(config, jobs, opts) {
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
        Command::Jobs { .. }
        | Command::Runs { .. }
        | Command::Quotas { .. }
        | Command::Notifications { .. }
        | Command::Browser { .. }
        | Command::Status => exit::FAILURE,
        Command::Migrate { action } => {
            let config = match load_config(cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let off = crate::telemetry::settings::TracesConfig {
                enabled: false,
                ..config.traces.clone()
            };
            telemetry::init_logging(&config.log, &off);
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
            MigrateAction::Run { dry_run: true } => {
                let pending = migrations::pending_sql(&mut conn)?;
                if pending.is_empty() {
                    print(format_args!("no pending migrations\n"));
                }
                for (v, name, up) in pending {
                    print(format_args!(
                        "-- pending {v} ({name}): up.sql\n{}\n\n",
                        up.trim_end()
                    ));
                }
            }
            MigrateAction::Run { dry_run: false } => {
                let applied = migrations::run_pending(&mut conn)?;
                if applied.is_empty() {
                    print(format_args!("no pending migrations\n"));
                }
                for v in applied {
                    print(format_args!("applied {v}\n"));
                }
            }
            MigrateAction::Revert { to: None } => {
                let v = migrations::revert_last(&mut conn)?;
                print(format_args!("reverted {v}\n"));
            }
            MigrateAction::Revert { to: Some(target) } => {
                match migrations::revert_to(&mut conn, &target) {
                    Ok(done) => {
                        if done.is_empty() {
                            print(format_args!("nothing newer than {target} is applied\n"));
                        }
                        for v in done {
                            print(format_args!("reverted {v}\n"));
                        }
                    }
                    Err(migrations::RevertError::Failed {
                        version,
                        reason,
                        done,
                    }) => {
                        for v in &done {
                            print(format_args!("reverted {v}\n"));
                        }
                        anyhow::bail!("reverting {version} failed: {reason} (it and everything older stay applied)");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            MigrateAction::Status => {
                for (v, at) in migrations::status(&mut conn)? {
                    match at {
                        Some(at) => print(format_args!(
                            "applied {v} {}\n",
                            at.format("%Y-%m-%d %H:%M:%S UTC")
                        )),
                        None => print(format_args!("pending {v}\n")),
                    }
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
