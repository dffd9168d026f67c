//! The `zombie_detector` actor: leadership and the once-per-cluster maintenance duties.
//!
//! Leadership is a lease row (`db::leader`) renewed every third of `zombie.lease`; a leader
//! that dies or freezes stops renewing and another node takes over once the lease expired
//! (within 2 × lease). The leader:
//! - sweeps for zombies every `zombie.sweep_interval`, and at once when it sees a node with
//!   running runs go silent: a run is a zombie when its node's `last_seen` is older than
//!   `node_timeout` (or the node is gone or stopped), its `heartbeat_at` is older than
//!   `heartbeat_timeout`, or it has run past its job's `timeout` (+ `timeout_grace`);
//! - rescues each: `zombie` with its reason, the retry policy applied, `run.zombie` emitted,
//!   and a local worker (hung, not dead) cancelled through the executor;
//! - prunes the run history (`runs.retention`) and delivered or failed notifications
//!   (`notify.retention`), and quota windows that ended over a week ago.
//!
//! The `zombie_detection` flag switches the sweeps off (an emergency switch); leadership and
//! pruning go on. Rehydration: read the lease; nothing else is kept between incarnations.

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use super::executor::{emit_completion_events, CancelRuns};
use super::Deps;
use crate::db::runs::{self, RunningRun};
use crate::db::{leader, nodes, notifications};
use crate::jobs::policy::Policy;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "zombie_detector";
const PRUNE_BATCH: i64 = 5_000;

pub struct ZombieDetector {
    deps: Deps,
    lifeline: Lifeline,
    leader: bool,
    electing: bool,
    sweeping: bool,
    last_sweep: Option<Instant>,
    last_prune: Option<Instant>,
}

/// Why a running run is a zombie, if it is one.
pub fn judge(
    run: &RunningRun,
    cfg: &crate::config::ZombieConfig,
    defaults: &crate::jobs::policy::PolicyDefaults,
) -> Option<&'static str> {
    let age =
        |t: Option<chrono::DateTime<Utc>>| t.map(|t| (run.db_now - t).to_std().unwrap_or_default());
    let node_lost = run.node_stopped_at.is_some()
        || match age(run.node_last_seen) {
            None => true,
            Some(a) => a > cfg.node_timeout,
        };
    if node_lost {
        return Some("node_lost");
    }
    if age(run.heartbeat_at.or(run.started_at)).is_some_and(|a| a > cfg.heartbeat_timeout) {
        return Some("heartbeat_timeout");
    }
    let policy = Policy::from_stored(&run.policy, defaults);
    if let (Some(limit), Some(ran)) = (policy.timeout, age(run.started_at)) {
        if ran > limit + cfg.timeout_grace {
            return Some("timeout");
        }
    }
    None
}

impl ZombieDetector {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            leader: false,
            electing: false,
            sweeping: false,
            last_sweep: None,
            last_prune: None,
        }
    }

    fn lease_ms(&self) -> i64 {
        self.deps.config.zombie.lease.as_millis() as i64
    }

    fn elect(&mut self, ctx: &mut Context<Self>) {
        if self.electing {
            return;
        }
        self.electing = true;
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let lease_ms = self.lease_ms();
        let node_timeout = self.deps.config.zombie.node_timeout;
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let lease = leader::acquire(c, leader::MAINTENANCE, node, lease_ms)?;
                    let silent = if lease.node_id == node {
                        nodes::silent_with_running_runs(c, node_timeout)?
                    } else {
                        0
                    };
                    Ok((lease, silent))
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.electing = false;
                match res {
                    Ok((lease, silent)) => {
                        // Rehydrated: who leads is known (the first election read the lease).
                        act.lifeline.ready();
                        let now_leader = lease.node_id == node;
                        if now_leader != act.leader {
                            if now_leader {
                                tracing::info!(actor = NAME, node_id = %node, "this node is the leader (maintenance duties)");
                            } else {
                                tracing::info!(actor = NAME, leader = %lease.node_id, "this node is not the leader");
                            }
                        }
                        act.leader = now_leader;
                        metrics::gauge!(names::LEADER).set(if now_leader { 1.0 } else { 0.0 });
                        if now_leader {
                            let due = act
                                .last_sweep
                                .is_none_or(|t| t.elapsed() >= act.deps.config.zombie.sweep_interval);
                            if due || silent > 0 {
                                act.sweep(ctx);
                            }
                            let prune_due = act
                                .last_prune
                                .is_none_or(|t| t.elapsed() >= act.deps.config.runs.prune_interval);
                            if prune_due {
                                act.prune(ctx);
                            }
                        }
                    }
                    Err(e) => {
                        // Cannot renew: act as a follower until the database answers again.
                        if act.leader {
                            tracing::warn!(actor = NAME, error = %e, "lost contact with the lease; stepping down");
                        }
                        act.leader = false;
                        metrics::gauge!(names::LEADER).set(0.0);
                    }
                }
            }),
        );
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping || !self.deps.flags.on(crate::flags::Name::ZombieDetection) {
            return;
        }
        self.sweeping = true;
        self.last_sweep = Some(Instant::now());
        let db = self.deps.db.clone();
        let clock = self.deps.clock.clone();
        let cfg = self.deps.config.zombie.clone();
        let defaults = self.deps.config.scheduler.defaults.clone();
        let routing = self.deps.routing.clone();
        let me = self.deps.node_id;
        let started = Instant::now();
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let running = runs::running(c)?;
                    let zombies: Vec<_> = running
                        .iter()
                        .filter_map(|r| judge(r, &cfg, &defaults).map(|why| (r.id, why, r.node_id)))
                        .collect();
                    let ids: Vec<_> = zombies.iter().map(|z| (z.0, z.1)).collect();
                    let events = runs::rescue_zombies(c, &ids, clock.now(), &defaults, &routing)?;
                    let local: Vec<_> = zombies
                        .iter()
                        .filter(|z| z.2 == Some(me))
                        .map(|z| z.0)
                        .collect();
                    Ok((events, local))
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, _| {
                act.sweeping = false;
                metrics::histogram!(names::ZOMBIE_SWEEP_DURATION)
                    .record(started.elapsed().as_secs_f64());
                match res {
                    Ok((evs, local)) => {
                        emit_completion_events(evs);
                        if !local.is_empty() {
                            // Our own worker hung: cancel it (its result would be refused anyway).
                            if let Some(ex) = act.deps.directory.executor() {
                                ex.do_send(CancelRuns(local));
                            }
                        }
                        if let Some(s) = act.deps.directory.scheduler() {
                            s.do_send(super::scheduler::Wake);
                        }
                    }
                    Err(e) => tracing::warn!(actor = NAME, error = %e, "zombie sweep failed"),
                }
            }),
        );
    }

    /// History retention: deletes old terminal runs in batches (leader only; the advisory
    /// lock in `prune_batch_exclusive` also keeps a stale leader from pruning alongside),
    /// old notifications, the audit log, quota windows and expired dashboard sessions.
    fn prune(&mut self, ctx: &mut Context<Self>) {
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
            .map(|res, _, _| match res {
                Ok((runs, notes)) => {
                    if runs > 0 {
                        metrics::counter!(names::RUNS_PRUNED).increment(runs as u64);
                        tracing::info!(actor = NAME, deleted = runs, "old runs pruned");
                    }
                    if notes > 0 {
                        metrics::counter!(names::NOTIFICATIONS_PRUNED).increment(notes as u64);
                        tracing::info!(actor = NAME, deleted = notes, "old notifications pruned");
                    }
                }
                Err(e) => tracing::warn!(actor = NAME, error = %e, "pruning failed"),
            }),
        );
    }
}

impl Actor for ZombieDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(names::LEADER).set(0.0);
        if !self.deps.flags.on(crate::flags::Name::ZombieDetection) {
            tracing::warn!(
                actor = NAME,
                "flag zombie_detection is off: no sweeps on this node"
            );
        }
        // Rehydrate: whoever holds the lease is read from the table by the first election,
        // which reports ready (elections repeat every third of the lease).
        self.elect(ctx);
        let every = (self.deps.config.zombie.lease / 3).max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.elect(ctx));
    }
}

impl ZombieDetector {
    /// `StopChild`: see [`crate::supervised_actor`].
    fn stop_child(&mut self, ctx: &mut Context<Self>) {
        // Hand leadership over at once instead of letting the lease run out.
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let was_leader = self.leader;
        ctx.wait(
            async move {
                if was_leader {
                    let _ = db
                        .run(move |c| leader::release(c, leader::MAINTENANCE, node))
                        .await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }
}

crate::supervised_actor!(ZombieDetector, stop = stop_child);
