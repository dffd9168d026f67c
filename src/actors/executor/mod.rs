//! The `executor` actor: runs what the scheduler hands it (`Execute`), at most
//! `scheduler.max_concurrency` at once, each under its job's timeout, and records results in
//! batches (one fenced statement per batch). It refreshes the heartbeat of its in-flight runs
//! and wakes the scheduler when slots free up.
//!
//! A panic inside a job kind fails that run (`error_kind = panic`), not the actor. If the
//! actor itself dies, its in-flight runs stay `running` in the table; the next incarnation
//! hands them back (pending, same attempt) before it offers a slot. Runs sent to it that it
//! never handled go back the same way (see `db::runs::Handoff`).
//!
//! Shutdown: no new runs; in-flight runs get most of `server.shutdown_timeout` to finish;
//! those still working then are interrupted and given back (deferred, same attempt) rather
//! than left for the zombie detector; results are flushed; then the actor stops.
//!
//! Why one file of ~630 lines: it is the actor whole — taking runs, recording them in
//! batches, heartbeats, draining — with the quota gate (`gate.rs`) and the kind's guarded
//! work (`work.rs`) in rooms of their own.

mod gate;
mod hand_over;
use hand_over::RunWaits;
pub use hand_over::{HandOver, HandOverOf, HandOverState, StartHandOver};
mod work;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use self::gate::{refund_on_failure, refund_receipts, take_quota};
use self::work::{execute, truncate};
use super::scheduler::Wake;
use super::{Deps, REHYDRATE_RETRY};
use crate::browser::live::LiveHandle;
use crate::db::runs::{self, Claimed, Completion, Handoff};
use crate::jobs::policy::Policy;
use crate::jobs::run_error::RunErrorKind;
use crate::jobs::run_state::RunState;
use crate::kinds::system::Services;
use crate::kinds::{self, RunContext, RunError};
use crate::quota::JobQuota;
use crate::supervisor::Lifeline;
use crate::telemetry::events;
use crate::telemetry::events::Occurrence;
use crate::telemetry::names;
use tokio::sync::watch;

pub const NAME: &str = "executor";
/// Results are written when this many are waiting, or after FLUSH_DELAY.
const FLUSH_BATCH: usize = 256;
const FLUSH_DELAY: Duration = Duration::from_millis(5);
const FLUSH_RETRY: Duration = Duration::from_secs(1);

/// Free execution slots.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Capacity;

/// Runs to execute (already claimed for this node). If the executor is dead or stops
/// before handling it, dropping the message hands the runs back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Execute(pub Handoff);

struct InFlight {
    kind: String,
    /// The job's name, for the run's events.
    job: String,
    handle: Option<SpawnHandle>,
    /// Waiting for a person (`hand_over`): in flight (heartbeats go on) but holding no slot.
    waiting: bool,
    /// The run's wait clock (shared with its kind).
    wait_clock: kinds::Waiting,
    /// Who the run is, for its `run.needs_person`.
    who: crate::kinds::system::ScriptRun,
    /// A command run's program asked for a person: the view and how it stands.
    hand_over: Option<(LiveHandle, watch::Receiver<HandOver>)>,
}

/// The zombie detector rescued these runs while their workers here still run (hung):
/// drop the workers; their results would be refused anyway.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelRuns(pub Vec<Uuid>);

pub struct Executor {
    deps: Deps,
    lifeline: Lifeline,
    http: reqwest::Client,
    in_flight: HashMap<Uuid, InFlight>,
    done: Vec<Completion>,
    flush_timer: Option<SpawnHandle>,
    flushing: bool,
    /// Results being written now: their runs still hold their slots.
    recording: usize,
    draining: bool,
    /// Runs a previous incarnation left `running` here have been handed back; until then
    /// no slot is offered (a run claimed for this incarnation must not be handed back).
    rehydrated: bool,
    secrets: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    /// What kinds reach the rest of the system through.
    services: Services,
    /// `[command]` and where command runs keep their files.
    command: std::sync::Arc<kinds::command::Settings>,
}

impl Executor {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("overseer/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            deps: deps.clone(),
            lifeline,
            http,
            in_flight: HashMap::new(),
            done: Vec::new(),
            flush_timer: None,
            flushing: false,
            recording: 0,
            draining: false,
            rehydrated: false,
            secrets: std::sync::Arc::new(deps.config.browser.secrets.clone()),
            services: super::system::for_runs(deps),
            command: std::sync::Arc::new(command_settings(&deps.config)),
        }
    }

    fn max(&self) -> usize {
        self.deps.config.scheduler.max_concurrency as usize
    }

    fn start_run(&mut self, run: Claimed, ctx: &mut Context<Self>) {
        let defaults = &self.deps.config.scheduler.defaults;
        let policy = Policy::from_stored(&run.policy, defaults);
        let run_id = run.id;
        let kind_name = run.kind.clone();
        self.in_flight.insert(
            run_id,
            InFlight {
                kind: kind_name.clone(),
                job: run.job_name.clone(),
                handle: None,
                waiting: false,
                wait_clock: kinds::Waiting::default(),
                who: crate::kinds::system::ScriptRun {
                    job_id: run.job_id,
                    job_name: run.job_name.clone(),
                    run_id,
                    attempt: run.attempt,
                },
                hand_over: None,
            },
        );
        metrics::gauge!(names::EXECUTOR_IN_FLIGHT).set(self.in_flight.len() as f64);
        let rctx = RunContext {
            run_id,
            job_id: run.job_id,
            job_name: run.job_name.clone(),
            fire_at: run.fire_at,
            attempt: run.attempt,
            metadata: run.metadata.clone(),
            http: self.http.clone(),
            routing: self.deps.routing.clone(),
            secrets: self.secrets.clone(),
            quota: serde_json::from_value(run.quota.clone()).unwrap_or_default(),
            services: self.services.clone(),
            command: self.command.clone(),
            api_url: self.deps.directory.api_url().unwrap_or_default(),
            timezone: run.timezone.clone(),
            clock: self.deps.clock.clone(),
            waiting: {
                let me = ctx.address();
                kinds::Waiting::new(move |waiting| me.do_send(RunWaits { run_id, waiting }))
            },
        };
        let waiting = rctx.waiting.clone();
        if let Some(f) = self.in_flight.get_mut(&run_id) {
            f.wait_clock = waiting.clone();
        }
        let started = Instant::now();
        let quota: Vec<JobQuota> = rctx.quota.clone();
        let counter = self.deps.directory.quota_counter();
        let now = self.deps.clock.now();
        let clock = self.deps.clock.clone();
        // When the kind's work begins (after the quota gate), for `runs.began_at`.
        let began = std::rc::Rc::new(std::cell::Cell::new(None));
        let began_in = began.clone();
        // The root of the run's trace (whatever the actor's thread is in); no secret is a field.
        let span = tracing::debug_span!(
            parent: None,
            "run",
            otel.name = %format!("run {}", run.job_name),
            otel.status_code = tracing::field::Empty,
            run_id = %run_id,
            job = %run.job_name,
            kind = %run.kind,
            attempt = run.attempt,
            fire_at = %run.fire_at,
            outcome = tracing::field::Empty,
            error_kind = tracing::field::Empty,
        );
        let run_span = span.clone();
        let registry = self.deps.kinds.clone();
        let fut = async move {
            let Some(kind) = registry.get(kind_name.as_str()) else {
                return Ran::Done(Err(RunError::new(
                    RunErrorKind::UnknownKind,
                    format!("no job kind `{kind_name}` in this build"),
                )));
            };
            let gate = tracing::debug_span!("quota.gate", quotas = quota.len());
            let receipts = match take_quota(&quota, counter.as_ref(), now)
                .instrument(gate)
                .await
            {
                Ok(r) => r,
                Err(gate) => return gate,
            };
            began_in.set(Some(clock.now()));
            let work = tracing::debug_span!(
                "kind.execute",
                otel.name = %format!("{} work", kind_name),
                kind = %kind_name
            );
            let result = execute(kind, rctx, run.payload, policy.timeout, waiting)
                .instrument(work)
                .await;
            match result {
                // The kind chose to wait (an open circuit): everything taken goes back.
                Err(RunError {
                    defer_until: Some(until),
                    message,
                    ..
                }) => {
                    refund_receipts(counter.as_ref(), receipts).await;
                    Ran::Deferred {
                        until,
                        reason: message,
                    }
                }
                Err(e) => {
                    refund_on_failure(&quota, receipts, counter.as_ref()).await;
                    Ran::Done(Err(e))
                }
                ok => Ran::Done(ok),
            }
        };
        let fut = async move {
            let ran = fut.await;
            let (outcome, error_kind) = match &ran {
                Ran::Done(Ok(_)) => ("succeeded", None),
                Ran::Done(Err(e)) if e.kind == RunErrorKind::Timeout => {
                    ("timed_out", Some(e.kind.as_str()))
                }
                Ran::Done(Err(e)) => ("failed", Some(e.kind.as_str())),
                Ran::Deferred { .. } => ("deferred", None),
            };
            run_span.record("outcome", outcome);
            if let Some(kind) = error_kind {
                run_span.record("error_kind", kind);
                run_span.record("otel.status_code", "ERROR");
            }
            ran
        }
        .instrument(span);
        let handle = ctx.spawn(fut.into_actor(self).map(move |ran, act, ctx| {
            let (kind, job_name) = act
                .in_flight
                .remove(&run_id)
                .map(|f| {
                    if let Some((view, _)) = &f.hand_over {
                        view.end();
                    }
                    (f.kind, f.job)
                })
                .unwrap_or_default();
            metrics::gauge!(names::EXECUTOR_IN_FLIGHT).set(act.in_flight.len() as f64);
            let result = match ran {
                Ran::Done(result) => result,
                Ran::Deferred { until, reason } => {
                    act.done
                        .push(Completion::deferred(run_id, job_name, until, reason));
                    act.schedule_flush(ctx);
                    return;
                }
            };
            metrics::histogram!(names::RUN_DURATION, "kind" => kind.clone())
                .record(started.elapsed().as_secs_f64());
            let completion = match result {
                Ok(output) => Completion {
                    run_id,
                    job_name,
                    state: RunState::Succeeded,
                    defer_until: None,
                    output: Some(act.bounded(output)),
                    error_kind: None,
                    error_message: None,
                    began_at: began.get(),
                    interrupted: false,
                },
                Err(e) => Completion {
                    run_id,
                    job_name,
                    state: if e.kind == RunErrorKind::Timeout {
                        RunState::TimedOut
                    } else {
                        RunState::Failed
                    },
                    defer_until: None,
                    output: e.output.map(|o| act.bounded(o)),
                    error_kind: Some(e.kind.to_string()),
                    error_message: Some(truncate(&e.message, 2000)),
                    began_at: began.get(),
                    interrupted: false,
                },
            };
            metrics::counter!(names::RUNS_FINISHED, "kind" => kind, "state" => completion.state.as_str())
                .increment(1);
            act.done.push(completion);
            act.schedule_flush(ctx);
        }));
        if let Some(f) = self.in_flight.get_mut(&run_id) {
            f.handle = Some(handle);
        }
    }

    /// Caps a run's output at `scheduler.max_output_bytes`.
    fn bounded(&self, output: Value) -> Value {
        let max = self.deps.config.scheduler.max_output_bytes;
        let text = output.to_string();
        if text.len() <= max {
            output
        } else {
            json!({
                "truncated": true,
                "bytes": text.len(),
                "excerpt": truncate(&text, max.saturating_sub(100)),
            })
        }
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.done.len() >= FLUSH_BATCH || self.draining {
            if let Some(t) = self.flush_timer.take() {
                ctx.cancel_future(t);
            }
            self.flush(ctx);
        } else if self.flush_timer.is_none() {
            self.flush_timer = Some(ctx.run_later(FLUSH_DELAY, |act, ctx| {
                act.flush_timer = None;
                act.flush(ctx);
            }));
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.done.is_empty() {
            self.maybe_finish_drain(ctx);
            return;
        }
        self.flushing = true;
        let batch = std::mem::take(&mut self.done);
        self.recording = batch.len();
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let defaults = self.deps.config.scheduler.defaults.clone();
        let routing = self.deps.routing.clone();
        let kept = batch.clone();
        let clock = self.deps.clock.clone();
        ctx.spawn(
            async move {
                db.run(move |c| runs::complete(c, node, &batch, clock.now(), &defaults, &routing))
                    .await
            }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.flushing = false;
                    act.recording = 0;
                    match res {
                        Ok(evs) => {
                            emit_completion_events(evs);
                            if let Some(s) = act.deps.directory.scheduler() {
                                s.do_send(Wake);
                            }
                            if !act.done.is_empty() {
                                act.schedule_flush(ctx);
                            }
                            act.maybe_finish_drain(ctx);
                        }
                        Err(e) => {
                            tracing::warn!(actor = NAME, error = %e, results = kept.len(), "recording run results failed; retrying");
                            let mut again = kept;
                            again.append(&mut act.done);
                            act.done = again;
                            ctx.run_later(FLUSH_RETRY, |act, ctx| act.flush(ctx));
                        }
                    }
                }),
        );
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.in_flight.keys().copied().collect();
        let sent = ids.clone();
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let clock = self.deps.clock.clone();
        ctx.spawn(
            async move {
                db.run(move |c| runs::heartbeat(c, node, &ids, clock.now()))
                    .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                Ok(still_ours) => {
                    // Runs no longer ours (the job was cancelled, or another node rescued
                    // them): their work ends now, their result would be refused anyway.
                    let gone: Vec<Uuid> = sent
                        .into_iter()
                        .filter(|id| !still_ours.contains(id) && act.in_flight.contains_key(id))
                        .collect();
                    if !gone.is_empty() {
                        act.cancel_workers(
                            gone,
                            "no longer running here (cancelled or rescued)",
                            ctx,
                        );
                    }
                }
                Err(e) => tracing::warn!(actor = NAME, error = %e, "run heartbeat failed"),
            }),
        );
    }

    /// Drops the workers of these runs (their futures end: a command's group, a browser
    /// run's page) and frees their slots.
    fn cancel_workers(&mut self, ids: Vec<Uuid>, why: &str, ctx: &mut Context<Self>) {
        for id in ids {
            if let Some(f) = self.in_flight.remove(&id) {
                if let Some(h) = f.handle {
                    ctx.cancel_future(h);
                }
                tracing::warn!(actor = NAME, run_id = %id, why, "worker cancelled");
            }
        }
        metrics::gauge!(names::EXECUTOR_IN_FLIGHT).set(self.in_flight.len() as f64);
        self.maybe_finish_drain(ctx);
        if let Some(s) = self.deps.directory.scheduler() {
            s.do_send(Wake);
        }
    }

    fn maybe_finish_drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining && self.in_flight.is_empty() && self.done.is_empty() && !self.flushing {
            ctx.stop();
        }
    }
}

/// How long a shutdown lets in-flight runs finish before it interrupts them: most of
/// `server.shutdown_timeout`, leaving a quarter of it (at most 5 s) to record them as given
/// back and to stop the actors after the executor.
fn interrupt_after(shutdown_timeout: Duration) -> Duration {
    shutdown_timeout.saturating_sub((shutdown_timeout / 4).min(Duration::from_secs(5)))
}

/// Where command runs of this node keep their files.
fn command_settings(c: &crate::config::Config) -> kinds::command::Settings {
    kinds::command::Settings {
        config: c.command.clone(),
        work_dir: if c.command.work_dir.is_empty() {
            c.state_path("work")
        } else {
            c.command.work_dir.clone().into()
        },
        artifacts_dir: c.state_path("artifacts"),
        results_dir: c.state_path("command-results"),
    }
}

/// What became of a run this executor took.
enum Ran {
    Done(Result<Value, RunError>),
    /// A quota had no room: the run waits until `until` (no attempt used).
    Deferred {
        until: DateTime<Utc>,
        reason: String,
    },
}

/// The event path for recorded results (also used by the zombie detector's rescues). The
/// outbox rows were written with the results; this is the log lines and metrics.
pub fn emit_completion_events(evs: Vec<Occurrence>) {
    for o in evs {
        events::emit(o.event);
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.directory.set_executor(ctx.address());
        metrics::gauge!(names::EXECUTOR_IN_FLIGHT).set(0.0);
        let every = self.deps.config.scheduler.heartbeat_interval;
        ctx.run_interval(every, |act, ctx| act.heartbeat(ctx));
        self.rehydrate(ctx);
    }
}

impl Executor {
    /// An executor holds nothing across incarnations. Runs still `running` on this node
    /// belong to a previous incarnation that died (their workers died with it): they go
    /// back to pending with the same attempt, now rather than after a zombie sweep. Until
    /// that is done the executor offers no slot.
    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let orphans = runs::running_on(c, node)?;
                    runs::hand_back(c, node, &orphans)
                })
                .await
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(handed_back) => {
                    if handed_back > 0 {
                        metrics::counter!(names::RUNS_HANDED_BACK).increment(handed_back as u64);
                        tracing::warn!(
                            actor = NAME,
                            handed_back,
                            "runs a previous executor left running were handed back"
                        );
                    }
                    act.rehydrated = true;
                    tracing::info!(actor = NAME, max_concurrency = act.max(), "executor ready");
                    act.lifeline.ready();
                    if let Some(s) = act.deps.directory.scheduler() {
                        s.do_send(Wake);
                    }
                }
                Err(e) => {
                    tracing::warn!(actor = NAME, error = %e, "executor rehydration failed; retrying");
                    ctx.run_later(REHYDRATE_RETRY, |act, ctx| act.rehydrate(ctx));
                }
            }),
        );
    }
}

impl Handler<Capacity> for Executor {
    type Result = usize;
    fn handle(&mut self, _: Capacity, _: &mut Self::Context) -> usize {
        if self.draining || !self.rehydrated {
            return 0;
        }
        // A run holds its slot until its result is recorded, so at most max_concurrency of
        // this node's runs are `running` in the table at any time — besides those waiting for
        // a person, which hold none (one that goes on takes its slot back at once, so for a
        // while more may run).
        let working = self.in_flight.values().filter(|f| !f.waiting).count();
        self.max()
            .saturating_sub(working + self.done.len() + self.recording)
    }
}

impl Handler<Execute> for Executor {
    type Result = ();
    fn handle(&mut self, msg: Execute, ctx: &mut Self::Context) {
        for run in msg.0.take() {
            if self.draining {
                // Claimed but not started: give it back to wait (fenced; no attempt used).
                self.done.push(Completion::deferred(
                    run.id,
                    run.job_name,
                    self.deps.clock.now(),
                    "the node was shutting down".into(),
                ));
                continue;
            }
            self.start_run(run, ctx);
        }
        self.schedule_flush(ctx);
    }
}

impl Handler<CancelRuns> for Executor {
    type Result = ();
    fn handle(&mut self, msg: CancelRuns, ctx: &mut Self::Context) {
        self.cancel_workers(msg.0, "hung worker rescued as a zombie", ctx);
    }
}

impl Executor {
    /// `StopChild`: see [`crate::supervised_actor`].
    fn stop_child(&mut self, ctx: &mut Context<Self>) {
        self.draining = true;
        if !self.in_flight.is_empty() {
            tracing::info!(
                actor = NAME,
                in_flight = self.in_flight.len(),
                "waiting for in-flight runs"
            );
        }
        let waited = interrupt_after(self.deps.config.server.shutdown_timeout);
        ctx.run_later(waited, move |act, ctx| act.interrupt(waited, ctx));
        self.flush(ctx);
    }

    /// The shutdown waited long enough: runs still working are ended here (a command's
    /// process group gets SIGTERM, then SIGKILL after its `kill_grace`; a browser run's page
    /// is let go) and given back — deferred until now, the same attempt, to run again on
    /// another node or after the restart. Left `running`, the zombie detector would rescue
    /// them as zombies: a failure that uses an attempt (or the last one) for a restart the
    /// operator asked for. Quota units they took stay taken: the work may have used them.
    fn interrupt(&mut self, waited: Duration, ctx: &mut Context<Self>) {
        if self.in_flight.is_empty() {
            return;
        }
        let now = self.deps.clock.now();
        let message = format!(
            "interrupted: the node shut down (after waiting {} s for the run to finish); \
             it runs again, same attempt",
            waited.as_secs_f64()
        );
        for (run_id, f) in std::mem::take(&mut self.in_flight) {
            if let Some(h) = f.handle {
                ctx.cancel_future(h);
            }
            tracing::warn!(actor = NAME, run_id = %run_id, job = %f.job, "run interrupted by the shutdown; given back to run again");
            self.done.push(Completion {
                interrupted: true,
                ..Completion::deferred(run_id, f.job, now, message.clone())
            });
        }
        metrics::gauge!(names::EXECUTOR_IN_FLIGHT).set(0.0);
        self.schedule_flush(ctx);
    }
}

crate::supervised_actor!(Executor, stop = stop_child);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shutdown_interrupts_runs_a_quarter_of_its_timeout_before_the_end_at_most_5_s() {
        let s = Duration::from_secs;
        assert_eq!(interrupt_after(s(30)), s(25));
        assert_eq!(interrupt_after(s(60)), s(55));
        assert_eq!(interrupt_after(s(3)), Duration::from_millis(2250));
        assert_eq!(interrupt_after(Duration::ZERO), Duration::ZERO);
    }
}
