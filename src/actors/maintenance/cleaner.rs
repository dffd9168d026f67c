//! The `cleaner` actor: on the leader, every `runs.prune_interval`, deletes what retention
//! says is history — old terminal runs in batches (`runs.retention`, `failed_retention`; the
//! advisory lock in `prune_batch_exclusive` also keeps a stale leader from pruning alongside),
//! delivered or failed notifications (`notify.retention`), the audit log (as long as the run
//! history keeps anything), quota windows that ended over a week ago, and dashboard sessions
//! idle past their expiry.
//!
//! Rehydration: none; the tables are the state (ready at once).

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::actors::Deps;
use crate::db::{notifications, runs};
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "cleaner";
const PRUNE_BATCH: i64 = 5_000;

/// Prune now if this node leads and the last pruning is older than `runs.prune_interval`
/// (sent by the elector when this node has just become the leader).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PruneIfDue;

pub struct Cleaner {
    deps: Deps,
    lifeline: Lifeline,
    pruning: bool,
    last_prune: Option<Instant>,
}

impl Cleaner {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            pruning: false,
            last_prune: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let due = self
            .last_prune
            .is_none_or(|t| t.elapsed() >= self.deps.config.runs.prune_interval);
        if due && !self.pruning && self.deps.leadership.held() {
            self.prune(ctx);
        }
    }

    /// History retention: deletes old terminal runs in batches (leader only; the advisory
    /// lock in `prune_batch_exclusive` also keeps a stale leader from pruning alongside),
    /// old notifications, the audit log, quota windows and expired dashboard sessions.
    fn prune(&mut self, ctx: &mut Context<Self>) {
        self.pruning = true;
        self.last_prune = Some(Instant::now());
        let db = self.deps.db.clone();
        let clock = self.deps.clock.clone();
        let runs_cfg = self.deps.config.runs.clone();
        let notify_keep = chrono::Duration::from_std(self.deps.config.notify.retention)
            .unwrap_or(chrono::Duration::MAX);
        let session_idle = self.deps.config.ui.session_idle;
        ctx.spawn(
            async move {
                let keep =
                    chrono::Duration::from_std(runs_cfg.retention).unwrap_or(chrono::Duration::MAX);
                let keep_failed = chrono::Duration::from_std(runs_cfg.failed_retention)
                    .unwrap_or(chrono::Duration::MAX);
                let mut total = 0usize;
                for _ in 0..100 {
                    let clock = clock.clone();
                    let n = db
                        .run(move |c| {
                            runs::prune_batch_exclusive(
                                c,
                                clock.now(),
                                keep,
                                keep_failed,
                                PRUNE_BATCH,
                            )
                        })
                        .await?;
                    match n {
                        Some(n) => {
                            total += n;
                            if (n as i64) < PRUNE_BATCH {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                let mut notes = 0usize;
                if let Some(cutoff) = clock.now().checked_sub_signed(notify_keep) {
                    for _ in 0..100 {
                        let n = db
                            .run(move |c| notifications::prune_batch(c, cutoff, PRUNE_BATCH))
                            .await?;
                        notes += n;
                        if (n as i64) < PRUNE_BATCH {
                            break;
                        }
                    }
                }
                // The audit log lives as long as the run history keeps anything.
                if let Some(cutoff) = clock.now().checked_sub_signed(keep.max(keep_failed)) {
                    for _ in 0..100 {
                        let n = db
                            .run(move |c| crate::db::audit::prune_batch(c, cutoff, PRUNE_BATCH))
                            .await?;
                        metrics::counter!(names::AUDIT_PRUNED).increment(n as u64);
                        if (n as i64) < PRUNE_BATCH {
                            break;
                        }
                    }
                }
                // Quota windows that ended a week ago are history nobody reads.
                let cutoff = clock.now() - chrono::Duration::days(7);
                db.run(move |c| crate::db::quotas::prune(c, cutoff)).await?;
                // Dashboard sessions idle past their expiry (refused already; gone now).
                let idle = chrono::Duration::from_std(session_idle)
                    .unwrap_or(chrono::Duration::minutes(30));
                let since = clock.now() - idle;
                db.run(move |c| crate::db::ui_sessions::prune(c, since))
                    .await?;
                Ok::<_, crate::db::DbError>((total, notes))
            }
            .into_actor(self)
            .map(|res, act, _| match res {
                Ok((runs, notes)) => {
                    act.pruning = false;
                    if runs > 0 {
                        metrics::counter!(names::RUNS_PRUNED).increment(runs as u64);
                        tracing::info!(actor = NAME, deleted = runs, "old runs pruned");
                    }
                    if notes > 0 {
                        metrics::counter!(names::NOTIFICATIONS_PRUNED).increment(notes as u64);
                        tracing::info!(actor = NAME, deleted = notes, "old notifications pruned");
                    }
                }
                Err(e) => {
                    act.pruning = false;
                    tracing::warn!(actor = NAME, error = %e, "pruning failed");
                }
            }),
        );
    }
}

impl Actor for Cleaner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.directory.set_cleaner(ctx.address());
        self.lifeline.ready();
        let every = (self.deps.config.zombie.lease / 3).max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<PruneIfDue> for Cleaner {
    type Result = ();
    fn handle(&mut self, _: PruneIfDue, ctx: &mut Self::Context) {
        self.tick(ctx);
    }
}

crate::supervised_actor!(Cleaner);
