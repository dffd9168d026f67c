//! Builds and runs the whole application from a [`Config`]: the database (managed cluster or
//! URL), migrations, the supervisor and its children, the admin API, systemd notifications,
//! and the orderly shutdown. `main` calls [`serve`]; the integration tests run the same binary.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{signal, SignalKind};
use uuid::Uuid;

use crate::actors::{self, Deps};
use crate::api::{self, auth::TokenSet, ApiState};
use crate::config::database_url::DatabaseUrl;
use crate::config::Config;
use crate::db::cluster::{ClusterError, ClusterOptions, ManagedCluster};
use crate::db::{migrations, nodes, Db, DbError};
use crate::notify::Routing;
use crate::supervisor::{Escalation, Ping, Shutdown, Supervisor};
use crate::telemetry;
use crate::telemetry::events::Event;

/// Writes a supervisor event to the notification outbox (these have no transaction of
/// their own: the identity is this node and a fresh id).
async fn record_escalation(db: Db, routing: Arc<Routing>, node_id: Uuid, e: Escalation) {
    let event = match &e {
        Escalation::Restarted {
            actor,
            reason,
            delay,
        } => Event::ActorRestarted {
            actor,
            reason: reason.clone(),
            delay: *delay,
        },
        Escalation::Meltdown {
            actor,
            reason,
            max_restarts,
            window,
        } => Event::SupervisorMeltdown {
            actor,
            reason: reason.clone(),
            max_restarts: *max_restarts,
            window: *window,
        },
    };
    let rows = routing.rows([(event, format!("{node_id}:{}", Uuid::new_v4()))]);
    if rows.is_empty() {
        return;
    }
    if let Err(e) = db
        .run(move |c| crate::db::notifications::enqueue(c, &rows))
        .await
    {
        tracing::warn!(error = %e, "could not record a supervisor notification");
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Db(e.into())
    }
}

/// Exit codes of `overseer serve` (documented in the README).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const CONFIG: i32 = 2;
    /// The supervisor gave up (restart intensity exceeded): systemd restarts the process.
    pub const MELTDOWN: i32 = 70;
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state directory {0} is in use by another overseer process (its lock file is held)")]
    StateDirLocked(PathBuf),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("binding the admin API to {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(String),
    /// A configuration error only found against the database (a declarative job naming a
    /// quota that does not exist).
    #[error("invalid configuration: {0}")]
    Config(crate::config::ConfigError),
}

#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Use a temporary managed cluster deleted at exit (ignored when a URL is configured).
    pub ephemeral: bool,
    /// Where each flag's configured value came from (`flags.<name>` → its layer), for
    /// `GET /api/v1/flags`.
    pub flag_origins: std::collections::BTreeMap<String, crate::config::Origin>,
}

/// Holds the state directory for this process's lifetime (released by the kernel even on
/// `kill -9`, so a crashed overseer never blocks the next one).
struct StateLock(#[allow(dead_code)] Flock<File>);

fn lock_state_dir(config: &Config) -> Result<StateLock, AppError> {
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir).map_err(|source| AppError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("overseer.lock");
    let file = File::create(&path).map_err(|source| AppError::StateDir {
        path: path.clone(),
        source,
    })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map(StateLock)
        .map_err(|_| AppError::StateDirLocked(dir.clone()))
}

/// Runs `overseer serve` to completion; returns the process exit code.
pub fn serve(
    config: Config,
    declarative: Vec<crate::declarative::Declared>,
    opts: ServeOptions,
) -> Result<i32, AppError> {
    let started = std::time::Instant::now();
    let flags = config.flag_map();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        state_dir = %config.state_dir.display(),
        flags = ?flags,
        "overseer starting"
    );
    let live_flags = crate::flags::Live::new(config.flags, &opts.flag_origins);

    let configured_url = config.database_url();
    let _lock = lock_state_dir(&config)?;
    let mut cluster = match &configured_url {
        Some(_) => None,
        None => {
            let opts = if opts.ephemeral {
                ClusterOptions::ephemeral()
            } else {
                ClusterOptions::persistent(&config.state_dir)
            };
            Some(ManagedCluster::start(&opts)?)
        }
    };
    let url: DatabaseUrl = match (&configured_url, &cluster) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => c.url(),
        (None, None) => unreachable!("a cluster is started when no URL is configured"),
    };
    tracing::info!(database = %url, managed = cluster.is_some(), "database selected");

    let result = run_with_database(
        config,
        &declarative,
        url,
        cluster.is_some(),
        live_flags,
        started,
    );
    if let Some(c) = cluster.as_mut() {
        match c.stop() {
            Ok(()) => tracing::info!("managed PostgreSQL cluster stopped"),
            Err(e) => tracing::error!(error = %e, "stopping the managed PostgreSQL cluster failed"),
        }
    }
    result
}

/// Writes `[[jobs]]` through the API's one write path (`api::jobs::write`): the same
/// reference checks, each job upserted by name (`source = config`) with an audit row whose
/// actor is `config` and whose source names the file and key — only when something changed.
/// Declarative jobs that left the configuration are paused (never deleted), audited alike.
/// All in one transaction: a job naming a quota, channel or program that does not exist (or
/// is not allowed) stops start-up with a configuration error naming its key, and nothing of
/// the configuration's jobs is written.
fn write_declarative_jobs(
    db: &Db,
    refs: &api::jobs::References,
    declared: &[crate::declarative::Declared],
) -> Result<(), AppError> {
    use crate::db::jobs as db_jobs;
    use diesel::Connection;
    let mut conn = db.get_blocking()?;
    let now = chrono::Utc::now();
    let entry = |source: String| crate::db::audit::Entry {
        at: now,
        actor: Some("config".into()),
        outcome: "ok",
        source: Some(source),
        ..Default::default()
    };
    conn.transaction::<_, AppError, _>(|c| {
        for d in declared {
            let checked = refs.check(c, &d.def)?.map_err(|problems| {
                AppError::Config(crate::config::ConfigError::Key {
                    key: format!("{}.{}", d.key, problems[0].path),
                    origin: d.origin.clone(),
                    expected: problems[0].message.clone(),
                })
            })?;
            let source = format!("{} ({})", d.origin, d.key);
            let job = api::jobs::write(
                c,
                checked,
                api::jobs::Write::Upsert,
                "config",
                entry(source),
                now,
            )?;
            tracing::info!(job = %job.name, state = %job.state, "declarative job upserted");
        }
        let keep: Vec<String> = declared.iter().map(|d| d.def.name.clone()).collect();
        for name in db_jobs::pause_config_jobs_except(c, &keep, now)? {
            tracing::warn!(job = %name, "declarative job no longer in the configuration: paused (not deleted)");
            let mut e = entry("configuration (no longer declared)".into());
            e.action = "job.pause".into();
            e.target = Some(format!("job/{name}"));
            e.status = 200;
            e.diff = Some(serde_json::json!({"state": {"from": "active", "to": "paused"}}));
            crate::db::audit::record(c, &e)?;
        }
        Ok(())
    })
}

/// Upserts `[[quotas]]` (`source = config`; the API cannot change them). A quota that left
/// the configuration is kept, with its usage, and handed to the API (`source = api`).
fn upsert_declarative_quotas(db: &Db, defs: &[crate::quota::QuotaDef]) -> Result<(), AppError> {
    use crate::db::quotas as db_quotas;
    let mut conn = db.get_blocking()?;
    let now = chrono::Utc::now();
    for def in defs {
        db_quotas::upsert(&mut conn, def, "config", now)?;
        tracing::info!(quota = %def.name, "declarative quota upserted");
    }
    let keep: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    for name in db_quotas::release_config_quotas_except(&mut conn, &keep, now)? {
        tracing::warn!(quota = %name, "declarative quota no longer in the configuration: kept, now managed through the API");
    }
    Ok(())
}

fn run_with_database(
    config: Config,
    declarative: &[crate::declarative::Declared],
    url: DatabaseUrl,
    managed: bool,
    flags: crate::flags::Live,
    started: std::time::Instant,
) -> Result<i32, AppError> {
    let db = Db::new(
        &url,
        config.database.pool_size,
        config.database.connect_timeout,
    );
    if config.database.migrate_on_start {
        let applied = migrations::run_pending(&mut *db.get_blocking()?)?;
        if !applied.is_empty() {
            tracing::info!(applied = ?applied, "migrations applied");
        }
    }

    // Runtime flag overrides hold from the first moment (the node actor keeps them fresh).
    flags.set_overrides(crate::db::flags::load(&mut *db.get_blocking()?)?);
    for (name, view) in flags.views() {
        if view.source == crate::flags::Source::Runtime {
            tracing::info!(flag = name, percent = view.percent, set_by = ?view.set_by,
                "flag overridden at runtime");
        }
    }
    if !flags.on(crate::flags::Name::AntiDetection) {
        tracing::info!("flag anti_detection is off (or partly rolled out): browser sessions will not all hide automation");
    }
    if !flags.on(crate::flags::Name::ZombieDetection) {
        tracing::warn!("flag zombie_detection is off: stuck runs will not be rescued");
    }

    upsert_declarative_quotas(&db, &crate::declarative::quotas(&config))?;
    let routing = Arc::new(Routing::from_config(&config.notify));
    let kinds = Arc::new(crate::declarative::kinds(&config));
    let refs = api::jobs::References {
        kinds: kinds.clone(),
        routing: routing.clone(),
        command: config.command.clone(),
    };
    write_declarative_jobs(&db, &refs, declarative)?;

    let mut tokens = TokenSet::from_config(&config.auth.tokens);
    if tokens.is_empty() && managed {
        let path = config.state_path("admin.token");
        let hash =
            api::auth::bootstrap_admin_token(&path).map_err(|source| AppError::StateDir {
                path: path.clone(),
                source,
            })?;
        tokens.add_hash("bootstrap-admin", crate::config::Role::Admin, &hash);
        tracing::info!(path = %path.display(), "admin token file (mode 0600) in use; no tokens configured");
    } else if tokens.is_empty() {
        tracing::warn!("no API tokens configured: every /api/v1 request will get 401");
    }

    let system = actix_rt::System::new();
    system
        .block_on(run(
            Arc::new(config),
            db,
            routing,
            kinds,
            tokens,
            flags,
            started,
        ))
        .map_err(|e| AppError::Runtime(e.to_string()))?
}

/// The URL a program on this host reaches the API at (a wildcard bind is reached on
/// loopback).
pub fn api_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

async fn run(
    config: Arc<Config>,
    db: Db,
    routing: Arc<Routing>,
    kinds: Arc<crate::kinds::Registry>,
    tokens: TokenSet,
    flags: crate::flags::Live,
    started: std::time::Instant,
) -> Result<Result<i32, AppError>, std::io::Error> {
    let prometheus = telemetry::prometheus();
    {
        use crate::jobs::Kinds;
        let names = kinds.names();
        let channels: Vec<&str> = routing.channels().map(|c| c.name.as_str()).collect();
        crate::telemetry::names::register_zeros(&names, &channels);
    }
    {
        let handle = prometheus.clone();
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }

    let node_id = Uuid::new_v4();
    let directory = crate::actors::directory::Directory::default();
    let deps = Deps {
        config: config.clone(),
        db: db.clone(),
        node_id,
        directory: directory.clone(),
        routing: routing.clone(),
        clock: Arc::new(crate::stdx::clock::SystemClock),
        flags: flags.clone(),
        kinds: kinds.clone(),
        leadership: Default::default(),
    };
    let (escalate_tx, mut escalate_rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = Supervisor::new(
        config.supervisor.clone(),
        actors::children(&deps),
        Some(escalate_tx),
        deps.clock.clone(),
    )
    .start();

    let openapi = serde_json::to_string(&api::openapi_document()).unwrap_or_else(|_| "{}".into());
    let directory_for_commands = directory.clone();
    let state = ApiState {
        config: config.clone(),
        db: db.clone(),
        supervisor: supervisor.clone(),
        directory,
        node_id,
        routing: routing.clone(),
        prometheus,
        openapi: Arc::new(openapi),
        flags,
        kinds,
    };
    let bind = config.bind_addr();
    let (server, addrs) = match api::server(state, tokens, bind, crate::ui::configure) {
        Ok(s) => s,
        Err(source) => return Ok(Err(AppError::Bind { addr: bind, source })),
    };
    for addr in &addrs {
        tracing::info!(addr = %addr, "admin API listening");
    }
    if let Some(addr) = addrs.first() {
        directory_for_commands.set_api_url(api_url(*addr));
    }
    let server_handle = server.handle();
    let server_task = actix_rt::spawn(server);

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(
        node_id = %node_id,
        startup_ms = started.elapsed().as_millis() as u64,
        "overseer started"
    );
    spawn_watchdog(supervisor.clone());

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let exit_on_meltdown = config.supervisor.exit_on_meltdown;
    let code = loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break exit::OK; }
            _ = sigint.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break exit::OK; }
            Some(escalation) = escalate_rx.recv() => {
                let actor = match &escalation {
                    Escalation::Restarted { .. } => {
                        // Recorded in the background; the process carries on.
                        actix_rt::spawn(record_escalation(db.clone(), routing.clone(), node_id, escalation));
                        continue;
                    }
                    Escalation::Meltdown { actor, .. } => *actor,
                };
                // Recorded before exiting, so the meltdown notification goes out (from the
                // outbox, by this node after its restart or by another node).
                let recording = record_escalation(db.clone(), routing.clone(), node_id, escalation);
                if tokio::time::timeout(Duration::from_secs(3), recording).await.is_err() {
                    tracing::warn!("could not record the meltdown notification in time");
                }
                if exit_on_meltdown {
                    tracing::error!(actor, "exiting after supervisor meltdown (supervisor.exit_on_meltdown)");
                    break exit::MELTDOWN;
                }
                tracing::error!(actor, "supervisor meltdown; staying up, not ready (exit_on_meltdown = false)");
            }
        }
    };

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // 1. Stop accepting HTTP; in-flight requests get up to shutdown_timeout.
    server_handle.stop(true).await;
    let _ = server_task.await;
    // 2. Actors, in reverse start order.
    let timeout = config.server.shutdown_timeout;
    if supervisor.send(Shutdown { timeout }).await.is_err() {
        tracing::warn!("supervisor was gone before shutdown");
    }
    // 3. Runs claimed here that no executor took go back before we leave.
    let left = tokio::task::spawn_blocking(move || crate::db::runs::wait_for_hand_backs(timeout))
        .await
        .unwrap_or(0);
    if left > 0 {
        tracing::warn!(
            hand_backs = left,
            "runs still being handed back at exit; the zombie detector will rescue them"
        );
    }
    // 4. Tell the other nodes we left on purpose.
    if let Err(e) = db.run(move |c| nodes::mark_stopped(c, node_id)).await {
        tracing::warn!(error = %e, "could not mark this node stopped");
    }
    actix_rt::System::current().stop();
    tracing::info!(exit_code = code, "overseer stopped");
    Ok(Ok(code))
}

/// The systemd watchdog interval, as `sd_watchdog_enabled(3)` reads it: `WATCHDOG_USEC`, and
/// `WATCHDOG_PID` when set must be ours.
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then_some(usec)
}

/// Sends WATCHDOG=1 at half the systemd watchdog interval, only after a round trip through
/// the supervisor's mailbox succeeded (a wedged supervisor or a meltdown stops the pings).
fn spawn_watchdog(supervisor: Addr<Supervisor>) {
    let Some(usec) = watchdog_usec() else {
        return;
    };
    let period = Duration::from_micros(usec / 2);
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            match tokio::time::timeout(period, supervisor.send(Ping)).await {
                Ok(Ok(true)) => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
                other => {
                    tracing::warn!(result = ?other.map(|r| r.ok()), "watchdog: supervisor round trip failed")
                }
            }
        }
    });
}
