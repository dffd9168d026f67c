//! The `database` actor: owns the view of the database's health. It probes PostgreSQL on a
//! schedule (a query and the migration state), publishes `overseer_database_up`, and logs
//! outages once per transition instead of once per failed call. Every `BACKLOG_INTERVAL`
//! it also reads what the database says about the cluster's work — runs pending, running and
//! deferred, the oldest due run's wait, open circuits — for the gauges alerts watch.
//!
//! Rehydration: its first probe; it is `running` once the database has answered. Until then
//! `CurrentHealth` answers `None` (unknown), which `/ready` reports as not ready.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::db::{migrations, Db, DbError};
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "database";
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
pub const BACKLOG_INTERVAL: Duration = Duration::from_secs(10);

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Up,
    PendingMigrations,
    Down(String),
}

/// Probes the database: it answers a query and has no pending migration.
async fn probe(db: &Db) -> Health {
    let result = db
        .run(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("SELECT 1").execute(conn)?;
            migrations::has_pending(conn)
        })
        .await;
    match result {
        Ok(false) => Health::Up,
        Ok(true) => Health::PendingMigrations,
        Err(DbError::Unavailable(e)) => Health::Down(e),
        Err(e) => Health::Down(e.to_string()),
    }
}

/// The health the last probe found (`None` before the first probe ended).
#[derive(Message)]
#[rtype(result = "Option<Health>")]
pub struct CurrentHealth;

pub struct DatabaseActor {
    db: Db,
    directory: super::directory::Directory,
    lifeline: Lifeline,
    last: Option<Health>,
    probing: bool,
    reading_backlog: bool,
}

impl DatabaseActor {
    pub fn new(db: Db, directory: super::directory::Directory, lifeline: Lifeline) -> Self {
        Self {
            db,
            directory,
            lifeline,
            last: None,
            probing: false,
            reading_backlog: false,
        }
    }

    fn backlog(&mut self, ctx: &mut Context<Self>) {
        if self.reading_backlog {
            return;
        }
        self.reading_backlog = true;
        let db = self.db.clone();
        ctx.spawn(
            async move { db.run(crate::db::runs::backlog).await }
                .into_actor(self)
                .map(|res, act, _| {
                    act.reading_backlog = false;
                    match res {
                        Ok(b) => {
                            for (state, n) in [
                                ("pending", b.pending),
                                ("running", b.running),
                                ("deferred", b.deferred),
                            ] {
                                metrics::gauge!(names::RUNS_CURRENT, "state" => state)
                                    .set(n as f64);
                            }
                            metrics::gauge!(names::RUNS_OLDEST_DUE).set(b.oldest_due.max(0.0));
                            metrics::gauge!(names::CIRCUITS_OPEN).set(b.circuits_open as f64);
                        }
                        // The probe reports outages; this is only a gauge.
                        Err(e) => tracing::debug!(error = %e, "reading the backlog failed"),
                    }
                }),
        );
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        if self.probing {
            return;
        }
        self.probing = true;
        let db = self.db.clone();
        let started = Instant::now();
        ctx.spawn(
            async move { probe(&db).await }
                .into_actor(self)
                .map(move |health, act, _| {
                    act.probing = false;
                    metrics::histogram!(names::DATABASE_PROBE_DURATION)
                        .record(started.elapsed().as_secs_f64());
                    act.record(health);
                }),
        );
    }

    fn record(&mut self, health: Health) {
        let up = !matches!(health, Health::Down(_));
        metrics::gauge!(names::DATABASE_UP).set(if up { 1.0 } else { 0.0 });
        let was_up = self.last.as_ref().map(|h| !matches!(h, Health::Down(_)));
        match (was_up, &health) {
            (Some(false), _) if up => {
                tracing::info!("database reachable again");
                self.lifeline.ready();
            }
            (None, _) if up => self.lifeline.ready(),
            (None | Some(true), Health::Down(e)) => {
                tracing::error!(error = %e, "database unreachable");
            }
            _ => {}
        }
        if health == Health::PendingMigrations && self.last != Some(Health::PendingMigrations) {
            tracing::warn!("database has pending migrations: run `overseer migrate run`");
        }
        self.last = Some(health);
    }
}

impl Actor for DatabaseActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Rehydrate: nothing from a previous incarnation is kept; the first probe decides.
        self.directory.set_database(ctx.address());
        self.probe(ctx);
        ctx.run_interval(PROBE_INTERVAL, |act, ctx| act.probe(ctx));
        self.backlog(ctx);
        ctx.run_interval(BACKLOG_INTERVAL, |act, ctx| act.backlog(ctx));
    }
}

impl Handler<CurrentHealth> for DatabaseActor {
    type Result = Option<Health>;
    fn handle(&mut self, _: CurrentHealth, _: &mut Self::Context) -> Option<Health> {
        self.last.clone()
    }
}

crate::supervised_actor!(DatabaseActor);
