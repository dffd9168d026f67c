//! The `scheduler` actor: turns due jobs into runs and hands due runs to the executor.
//!
//! One tick = fire (lock due jobs with `SKIP LOCKED`, plan, record runs, move next_fire_at;
//! repeated while full batches come back) + dispatch (ask the executor for free slots, claim
//! that many pending runs, send them in one `Execute` message). Between ticks it sleeps until
//! the next known fire or pending due time, at most `scheduler.poll_interval`, and wakes at
//! once on [`Wake`] (a job created or triggered here, executor slots freed).
//!
//! Rehydration: nothing is kept between incarnations; it reads the counts of pending and
//! running runs and the next due time from the tables, then ticks.

use std::time::{Duration, Instant};

use actix::prelude::*;

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

pub struct Scheduler {
    deps: Deps,
    lifeline: Lifeline,
    ticking: bool,
    again: bool,
    timer: Option<SpawnHandle>,
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
}

impl Scheduler {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            ticking: false,
            again: false,
            timer: None,
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
        let fut = async move {
            let batch = cfg.batch_size as i64;
            let defaults = cfg.defaults.clone();
            let capacity = match &executor {
                Some(ex) => ex.send(Capacity).await.unwrap_or(0),
                None => 0,
            };
            let mut slots = capacity;
            let (mut fired_jobs, mut runs_created, mut events) = (0, 0, Vec::new());
            // Every run committed as running here is in `to_run` from the moment its
            // transaction returns: executed, or handed back if it is dropped.
            let mut to_run = Handoff::new(&db, node, Vec::new());
            let mut failure = None;
            let mut more_due = false;
            let mut next_job = None;
            for round in 0..MAX_FIRE_ROUNDS {
                let defaults = defaults.clone();
                let routing = routing.clone();
                // With an executor here, runs start directly from the fire (and what cannot
                // start yet is held back, see `fire_due`); without, every fire is pending.
                let direct = executor.is_some().then_some(Direct { node, slots });
                let handoff_db = db.clone();
                let clock = clock.clone();
                let out = db
                    .run(move |c| {
                        let out =
                            fire::fire_due(c, clock.now(), batch, &defaults, direct, &routing)?;
                        let started = Handoff::new(&handoff_db, node, out.started);
                        let held = (out.held_back > 0).then_some(out.held_until).flatten();
                        Ok((out.jobs, out.runs, out.events, out.next_due, started, held))
                    })
                    .await;
                let (jobs, runs, evs, next_due, started, held) = match out {
                    Ok(out) => out,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                fired_jobs += jobs;
                runs_created += runs;
                events.extend(evs);
                slots -= started.len().min(slots);
                to_run.absorb(started);
                next_job = next_due;
                if let Some(until) = held {
                    // No slot left: the held-back jobs wait for the executor's Wake, or
                    // until they would be at risk.
                    next_job = Some(until);
                    break;
                }
                if (jobs as i64) < batch {
                    break;
                }
                more_due = round + 1 == MAX_FIRE_ROUNDS;
            }
            // Older pending runs (retries, queued, triggered, blocked earlier) take the
            // slots that are left.
            let mut next_run = None;
            if failure.is_none() {
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
                        to_run.absorb(claimed);
                        match next {
                            Ok(next) => next_run = next,
                            Err(e) => failure = Some(e),
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            // What was committed is dispatched whatever failed after it. A dead executor
            // drops the message, and with it the hand-off: the runs go back to pending.
            let dispatched = to_run.len();
            if let (Some(ex), false) = (&executor, to_run.is_empty()) {
                for run in to_run.iter() {
                    metrics::histogram!(names::RUN_LATENESS)
                        .record(run.lateness_ms as f64 / 1000.0);
                }
                ex.do_send(Execute(to_run));
            }
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
            })
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.ticking = false;
            metrics::histogram!(names::SCHEDULER_TICK_DURATION)
                .record(started.elapsed().as_secs_f64());
            let poll = act.deps.config.scheduler.poll_interval;
            let sleep = match res {
                Ok(r) => {
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
        if self.ticking {
            self.again = true;
        } else {
            self.schedule_tick(ctx, Duration::ZERO);
        }
    }
}

crate::supervised_actor!(Scheduler);
