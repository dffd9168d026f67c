//! The `rescuer` actor: on the leader, sweeps for zombies every `zombie.sweep_interval`, and
//! at once when the elector sees a node with running runs go silent (`SweepNow`). A running
//! run is a zombie when its node's `last_seen` is older than `node_timeout` (or the node is
//! gone or stopped), its `heartbeat_at` is older than `heartbeat_timeout`, or it has run past
//! its job's `timeout` (+ `timeout_grace`). Each is rescued in one transaction: `zombie`
//! with its reason, the retry policy applied, `run.zombie` emitted; a local worker (hung,
//! not dead) is cancelled through the executor.
//!
//! The `zombie_detection` flag switches the sweeps off (an emergency switch), read at each
//! sweep. Rehydration: none; the table is the state (ready at once).

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use crate::actors::executor::{emit_completion_events, CancelRuns};
use crate::actors::Deps;
use crate::db::runs::{self, RunningRun};
use crate::jobs::policy::Policy;
use crate::jobs::run_error::RunErrorKind;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "rescuer";

/// Sweep now if this node leads (a node went silent, or leadership was just taken).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SweepNow;

pub struct Rescuer {
    deps: Deps,
    lifeline: Lifeline,
    sweeping: bool,
    last_sweep: Option<Instant>,
}

/// Why a running run is a zombie, if it is one.
pub fn judge(
    run: &RunningRun,
    cfg: &crate::config::ZombieConfig,
    defaults: &crate::jobs::policy::PolicyDefaults,
) -> Option<RunErrorKind> {
    let age =
        |t: Option<chrono::DateTime<Utc>>| t.map(|t| (run.db_now - t).to_std().unwrap_or_default());
    let node_lost = run.node_stopped_at.is_some()
        || match age(run.node_last_seen) {
            // No node row: gone, or not written yet (a node that has just started may claim a
            // run before its node actor has registered it). The run's own signs of life decide.
            None => age(run.heartbeat_at.or(run.started_at)).is_none_or(|a| a > cfg.node_timeout),
            Some(a) => a > cfg.node_timeout,
        };
    if node_lost {
        return Some(RunErrorKind::NodeLost);
    }
    if age(run.heartbeat_at.or(run.started_at)).is_some_and(|a| a > cfg.heartbeat_timeout) {
        return Some(RunErrorKind::HeartbeatTimeout);
    }
    let policy = Policy::from_stored(&run.policy, defaults);
    // The time it waited for a person (`hand_over`) is not the job's: as the executor does.
    let waited = std::time::Duration::from_millis(run.waited_ms.max(0) as u64)
        + age(run.waiting_since).unwrap_or_default();
    if let (Some(limit), Some(ran)) = (policy.timeout, age(run.started_at)) {
        if ran.saturating_sub(waited) > limit + cfg.timeout_grace {
            return Some(RunErrorKind::Timeout);
        }
    }
    None
}

impl Rescuer {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            sweeping: false,
            last_sweep: None,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let due = self
            .last_sweep
            .is_none_or(|t| t.elapsed() >= self.deps.config.zombie.sweep_interval);
        if due {
            self.sweep(ctx);
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping
            || !self.deps.leadership.held()
            || !self.deps.flags.on(crate::flags::Name::ZombieDetection)
        {
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
                        .filter_map(|r| {
                            judge(r, &cfg, &defaults).map(|why| (r.id, why.as_str(), r.node_id))
                        })
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
                            s.do_send(crate::actors::scheduler::Wake);
                        }
                    }
                    Err(e) => tracing::warn!(actor = NAME, error = %e, "zombie sweep failed"),
                }
            }),
        );
    }
}

impl Actor for Rescuer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.deps.flags.on(crate::flags::Name::ZombieDetection) {
            tracing::warn!(
                actor = NAME,
                "flag zombie_detection is off: no sweeps on this node"
            );
        }
        self.deps.directory.set_rescuer(ctx.address());
        self.lifeline.ready();
        let z = &self.deps.config.zombie;
        let every = z
            .sweep_interval
            .min(z.lease / 3)
            .max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

impl Handler<SweepNow> for Rescuer {
    type Result = ();
    fn handle(&mut self, _: SweepNow, ctx: &mut Self::Context) {
        self.sweep(ctx);
    }
}

crate::supervised_actor!(Rescuer);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn run(heartbeat: &str, node_last_seen: Option<&str>, stopped: bool) -> RunningRun {
        RunningRun {
            id: uuid::Uuid::nil(),
            node_id: Some(uuid::Uuid::nil()),
            started_at: Some(at(heartbeat)),
            heartbeat_at: Some(at(heartbeat)),
            policy: serde_json::json!({}),
            node_last_seen: node_last_seen.map(at),
            node_stopped_at: stopped.then(|| at("2026-12-01T09:00:00Z")),
            db_now: at("2026-12-01T09:00:10Z"),
            waited_ms: 0,
            waiting_since: None,
        }
    }

    fn config() -> crate::config::Config {
        crate::config::load(&crate::config::Sources::default())
            .unwrap()
            .config
    }

    /// The time a run waited for a person does not count against its job's timeout: past
    /// `timeout + timeout_grace` of work it is a zombie, not before.
    #[test]
    fn time_waited_for_a_person_is_not_the_jobs() {
        let c = config();
        let (z, d) = (&c.zombie, &c.scheduler.defaults);
        let mut r = run("2026-12-01T09:00:09Z", Some("2026-12-01T09:00:09Z"), false);
        r.started_at = Some(at("2026-12-01T08:58:30Z")); // 100 s ago
        r.policy = serde_json::json!({"timeout": "30s"}); // + 10 s grace
        assert_eq!(judge(&r, z, d), Some(RunErrorKind::Timeout));
        r.waited_ms = 65_000;
        assert_eq!(judge(&r, z, d), None, "35 s of work");
        r.waited_ms = 0;
        r.waiting_since = Some(at("2026-12-01T08:59:00Z")); // waiting for 70 s now
        assert_eq!(judge(&r, z, d), None, "30 s of work, then waiting");
        r.waited_ms = 5_000;
        r.waiting_since = Some(at("2026-12-01T09:00:00Z"));
        assert_eq!(judge(&r, z, d), Some(RunErrorKind::Timeout), "85 s of work");
    }

    /// A node that has just started may claim a run before its row exists: its fresh run is
    /// no zombie; a run whose node row is gone and which shows no life is.
    #[test]
    fn a_run_without_a_node_row_is_judged_by_its_own_signs_of_life() {
        let c = config();
        let (z, d) = (&c.zombie, &c.scheduler.defaults);
        assert_eq!(judge(&run("2026-12-01T09:00:09Z", None, false), z, d), None);
        assert_eq!(
            judge(&run("2026-12-01T08:00:00Z", None, false), z, d),
            Some(RunErrorKind::NodeLost)
        );
        assert_eq!(
            judge(
                &run("2026-12-01T09:00:09Z", Some("2026-12-01T09:00:09Z"), true),
                z,
                d
            ),
            Some(RunErrorKind::NodeLost),
            "a stopped node's run"
        );
        assert_eq!(
            judge(
                &run("2026-12-01T09:00:09Z", Some("2026-12-01T09:00:09Z"), false),
                z,
                d
            ),
            None
        );
    }
}
