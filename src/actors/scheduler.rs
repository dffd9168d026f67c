//! The `scheduler` actor: turns due jobs into runs and hands due runs to the executor.
//!
//! One tick = fire (lock due jobs with `SKIP LOCKED`, plan, record runs, move next_fire_at;
//! repeated while full batches come back, two fire transactions in flight, each round's runs
//! sent to the executor as soon as it commits) + dispatch (claim pending runs for the slots
//! that are left). Between ticks it sleeps until the next known fire or pending due time, at
//! most `scheduler.poll_interval`, and wakes at once on [`Wake`] (a job created or triggered
//! here, executor slots freed). With every slot taken, due jobs wait for that Wake: a tick
//! without a free slot looks at them (to fire those at risk of a miss) at most once per
//! poll interval.
//!
//! Rehydration: nothing is kept between incarnations; it reads the counts of pending and
//! running runs and the next due time from the tables, then ticks.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::executor::{Capacity, Execute};
use super::{Deps, REHYDRATE_RETRY};
use crate::db::fire::{self, Direct};
use crate::db::jobs;
use crate::db::runs::{self, Handoff};
use crate::jobs::run_state::RunState;
use crate::supervisor::Lifeline;
use crate::telemetry::events;
use crate::telemetry::events::Occurrence;
use crate::telemetry::names;

pub const NAME: &str = "scheduler";
/// Fire transactions per tick at most (then dispatch, then tick again at once).
const MAX_FIRE_ROUNDS: usize = 20;
/// Fire transactions in flight at once: one commits (its WAL flush) and hands its runs to
/// the executor while the next locks and plans (SKIP LOCKED keeps their jobs apart).
const FIRE_LANES: usize = 2;

pub struct Scheduler {
    deps: Deps,
    lifeline: Lifeline,
    ticking: bool,
    again: bool,
    timer: Option<SpawnHandle>,
    /// See [`TickResult::recheck`].
    recheck_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Look at the tables now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

struct TickResult {
    fired_jobs: usize,
    runs_created: usize,
    events: Vec<Occurrence>,
    dispatched: usize,
    capacity: usize,
    more_due: bool,
    sleep: Duration,
    /// Due jobs were held back for want of a slot: until then, a tick without a free slot
    /// does not look at them again.
    recheck: Option<chrono::DateTime<chrono::Utc>>,
}

impl Scheduler {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            ticking: false,
            again: false,
            timer: None,
            recheck_at: None,
        }
    }

    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                db.run(|c| {
                    Ok((
                        runs::count_in_state(c, RunState::Pending)?,
                        runs::count_in_state(c, RunState::Running)?,
                        jobs::next_due(c)?,
                    ))
                })
                .await
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok((pending, running, next_due)) => {
                    tracing::info!(
                        actor = NAME,
                        pending,
                        running,
                        next_due = ?next_due,
                        "scheduler rehydrated from the tables"
                    );
                    act.lifeline.ready();
                    act.tick(ctx);
                }
                Err(e) => {
                    tracing::warn!(actor = NAME, error = %e, "scheduler rehydration failed; retrying");
                    ctx.run_later(REHYDRATE_RETRY, |act, ctx| act.rehydrate(ctx));
                }
            }),
        );
    }

    fn schedule_tick(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.timer = Some(ctx.run_later(after, |act, ctx| {
            act.timer = None;
            act.tick(ctx);
        }));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            self.again = true;
            return;
        }
        self.ticking = true;
        self.again = false;
        let db = self.deps.db.clone();
        let clock = self.deps.clock.clone();
        let cfg = self.deps.config.scheduler.clone();
        let node = self.deps.node_id;
        let routing = self.deps.routing.clone();
        let executor = self.deps.directory.executor();
        let started = Instant::now();
        let recheck_at = self.recheck_at;
        // A lane's share of the free slots: a quarter of them, so that one round's runs are
        // recorded while the next rounds fire (at least 64: small nodes fire in one round).
        let pipeline_round = (cfg.max_concurrency as usize / 4).max(64);
        let fut = async move {
            let batch = cfg.batch_size as i64;
            let defaults = cfg.defaults.clone();
            let capacity = match &executor {
                Some(ex) => ex.send(Capacity).await.unwrap_or(0),
                None => 0,
            };
            let mut slots = capacity;
            let (mut fired_jobs, mut runs_created, mut events) = (0, 0, Vec::new());
            let mut dispatched = 0;
            // Every run committed as running here is in a hand-off from the moment its
            // transaction returns: executed, or handed back if it is dropped.
            let dispatch = |handoff: Handoff, dispatched: &mut usize| {
                if let (Some(ex), false) = (&executor, handoff.is_empty()) {
                    *dispatched += handoff.len();
                    for run in handoff.iter() {
                        metrics::histogram!(names::RUN_LATENESS)
                            .record(run.lateness_ms as f64 / 1000.0);
                    }
                    ex.do_send(Execute(handoff));
                }
            };
            let mut failure = None;
            let mut next_job = None;
            // No free slot, and the due jobs were held back less than a poll interval ago
            // and are not at risk yet: a fire round would only lock them to hold them back
            // again. The executor's Wake (a slot freed) or the timer comes back.
            let idle_wait =
                executor.is_some() && capacity == 0 && recheck_at.is_some_and(|t| clock.now() < t);
            // Kept until it passes or a new hold-back replaces it: jobs fired since do not
            // matter, and one that came due since is looked at by the deadline's poll bound.
            let mut recheck = recheck_at;
            if idle_wait {
                next_job = recheck_at;
            }
            // Fire rounds, up to FIRE_LANES in flight: each has its own share of the free
            // slots (given back when it returns), and SKIP LOCKED gives each its own jobs.
            let mut lanes = FuturesUnordered::new();
            let mut rounds = 0;
            let mut stop = idle_wait;
            // One lane until a round comes back full: a light load is one transaction per
            // tick, not a second one that finds the due jobs locked by the first.
            let mut width = 1;
            loop {
                while !stop && rounds < MAX_FIRE_ROUNDS {
                    let share = match &executor {
                        // A round without a slot is only worth it as the tick's only round:
                        // it fires what is at risk and holds the rest back.
                        Some(_) if slots == 0 && !(rounds == 0 && lanes.is_empty()) => break,
                        Some(_) if lanes.len() >= width => break,
                        Some(_) => slots.min(pipeline_round),
                        None if !lanes.is_empty() => break,
                        None => 0,
                    };
                    slots -= share;
                    // With an executor here, runs start directly from the fire (and what
                    // cannot start yet is held back, see `fire_due`); without, every fire
                    // is pending.
                    let direct = executor.is_some().then_some(Direct { node, slots: share });
                    // A round locks no more due jobs than it can start (plus those it fires
                    // as pending anyway), and at most a quarter of the node's slots: the
                    // executor records one round's results while the next are fired.
                    let limit = if share > 0 {
                        batch.min(share as i64)
                    } else {
                        batch
                    };
                    let (defaults, routing) = (defaults.clone(), routing.clone());
                    let (handoff_db, fire_clock) = (db.clone(), clock.clone());
                    let fire = db.run(move |c| {
                        let out = fire::fire_due(
                            c,
                            fire_clock.now(),
                            limit,
                            &defaults,
                            direct,
                            &routing,
                        )?;
                        let started = Handoff::new(&handoff_db, node, out.started);
                        let held = (out.held_back > 0).then_some(out.held_until).flatten();
                        Ok((out.jobs, out.runs, out.events, out.next_due, started, held))
                    });
                    lanes.push(async move { (fire.await, share, limit) });
                    rounds += 1;
                }
                let Some((out, share, limit)) = lanes.next().await else {
                    break;
                };
                let (jobs, runs, evs, next_due, started, round_held) = match out {
                    Ok(out) => out,
                    Err(e) => {
                        failure = Some(e);
                        slots += share;
                        stop = true;
                        continue;
                    }
                };
                fired_jobs += jobs;
                runs_created += runs;
                events.extend(evs);
                slots += share - started.len().min(share);
                dispatch(started, &mut dispatched);
                next_job = next_due;
                if let Some(until) = round_held {
                    // No slot left: the held-back jobs wait for the executor's Wake, or
                    // until they would be at risk (looked at again at least every poll
                    // interval: a job that came due since may have a shorter grace).
                    let poll = chrono::Duration::from_std(cfg.poll_interval)
                        .unwrap_or(chrono::Duration::MAX);
                    let at = until.min(clock.now() + poll);
                    next_job = Some(at);
                    recheck = Some(at);
                    stop = true;
                }
                if (jobs as i64) < limit {
                    stop = true;
                } else {
                    width = FIRE_LANES;
                }
            }
            // Every round was full and the budget is spent: more is due now. (When every
            // slot is taken, the executor's Wake brings the next round.)
            let more_due = !stop && rounds == MAX_FIRE_ROUNDS && (executor.is_none() || slots > 0);
            // Older pending runs (retries, queued, triggered, blocked earlier) take the
            // slots that are left.
            let mut next_run = None;
            if failure.is_none() && !idle_wait {
                let handoff_db = db.clone();
                let clock = clock.clone();
                let claimed = db
                    .run(move |c| {
                        runs::promote_deferred(c, clock.now())?;
                        let claimed = runs::claim(c, node, clock.now(), slots as i64)?;
                        let claimed = Handoff::new(&handoff_db, node, claimed);
                        Ok((claimed, runs::next_pending_due(c)))
                    })
                    .await;
                match claimed {
                    Ok((claimed, next)) => {
                        dispatch(claimed, &mut dispatched);
                        match next {
                            Ok(next) => next_run = next,
                            Err(e) => failure = Some(e),
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            // What was committed was dispatched whatever failed after it. A dead executor
            // drops the message, and with it the hand-off: the runs go back to pending.
            if let Some(e) = failure {
                return Err((e, dispatched));
            }
            let now = clock.now();
            // Pending runs already due were either just dispatched, wait for a free slot
            // (the executor wakes us), or wait behind a queued run: none is a reason to spin.
            let next = [next_job, next_run.filter(|t| *t > now)]
                .into_iter()
                .flatten()
                .min();
            let sleep = match next {
                Some(t) if t <= now => Duration::ZERO,
                Some(t) => (t - now).to_std().unwrap_or(cfg.poll_interval),
                None => cfg.poll_interval,
            }
            .min(cfg.poll_interval);
            Ok::<_, (crate::db::DbError, usize)>(TickResult {
                fired_jobs,
                runs_created,
                events,
                dispatched,
                capacity,
                more_due,
                sleep,
                recheck,
            })
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.ticking = false;
            metrics::histogram!(names::SCHEDULER_TICK_DURATION)
                .record(started.elapsed().as_secs_f64());
            let poll = act.deps.config.scheduler.poll_interval;
            let sleep = match res {
                Ok(r) => {
                    act.recheck_at = r.recheck;
                    metrics::counter!(names::JOBS_FIRED).increment(r.fired_jobs as u64);
                    metrics::counter!(names::RUNS_CREATED).increment(r.runs_created as u64);
                    metrics::counter!(names::RUNS_DISPATCHED).increment(r.dispatched as u64);
                    for o in r.events {
                        events::emit(o.event);
                    }
                    // Full dispatch or full fire rounds: more work is waiting now. A run
                    // that could not get a slot waits for the executor's Wake.
                    let slots_full = r.capacity > 0 && r.dispatched == r.capacity;
                    if r.more_due || slots_full || act.again {
                        Duration::ZERO
                    } else {
                        r.sleep
                    }
                }
                Err((e, dispatched)) => {
                    metrics::counter!(names::RUNS_DISPATCHED).increment(dispatched as u64);
                    tracing::warn!(actor = NAME, error = %e, dispatched, "scheduler tick failed");
                    poll
                }
            };
            act.schedule_tick(ctx, sleep);
        }));
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.directory.set_scheduler(ctx.address());
        self.rehydrate(ctx);
    }
}

impl Handler<Wake> for Scheduler {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        // Not before rehydration has ended: its end starts the first tick.
        if !self.lifeline.is_ready() {
            return;
        }
        if self.ticking {
            self.again = true;
        } else {
            self.schedule_tick(ctx, Duration::ZERO);
        }
    }
}

crate::supervised_actor!(Scheduler);
