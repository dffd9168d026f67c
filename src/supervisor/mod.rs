//! The root Supervisor: starts every child actor on its own Arbiter, notices each death
//! (a panic in a handler, or the actor stopping with an error) the moment it happens,
//! restarts with backoff under an OTP-style intensity limit, and escalates on meltdown.
//!
//! actix 0.13's own `Supervisor` only restarts an actor whose context stopped; a panicking
//! handler ends the actor's task silently. So every child carries a [`Lifeline`]: a guard
//! owned by the child's context whose `Drop` tells the supervisor the child is gone, with the
//! panic message recorded by our panic hook on that (single-child) Arbiter thread.

mod child;
mod lifeline;
mod panic_hook;
pub mod policy;

pub use self::child::{Crash, StopChild};
pub use self::lifeline::{DeathWatch, FailureCell, Lifeline};
pub use self::panic_hook::install_panic_hook;
pub use crate::stdx::panic::panic_message;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use self::policy::{Decision, RestartPolicy};
use crate::config::SupervisorConfig;
use crate::telemetry::events::{self, Event};

/// OTP restart types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted, whatever the exit.
    Permanent,
    /// Restarted only after an abnormal exit (panic or error).
    Transient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    /// Started, rehydrating from PostgreSQL.
    Starting,
    /// Rehydrated and serving.
    Running,
    /// Died; a restart is scheduled.
    Restarting,
    /// Not restarted any more (meltdown, or a transient child that finished).
    Failed,
    /// Stopped on purpose (shutdown).
    Stopped,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub message: String,
    pub at: DateTime<Utc>,
}

/// What `GET /api/v1/actors` shows for one child.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActorInfo {
    pub name: &'static str,
    pub restart: Restart,
    pub state: ActorState,
    pub restarts: u64,
    pub last_failure: Option<Failure>,
    pub started_at: Option<DateTime<Utc>>,
}

/// Why a child's context ended.
#[derive(Debug, Clone)]
pub enum ExitReason {
    Normal,
    Error(String),
    Panic(String),
}

impl ExitReason {
    /// How a failure is shown (`last_failure`, events, logs).
    pub fn describe(&self) -> String {
        match self {
            ExitReason::Normal => "stopped unexpectedly".to_string(),
            ExitReason::Error(e) => format!("error: {e}"),
            ExitReason::Panic(p) => format!("panic: {p}"),
        }
    }
}

/// The addresses the supervisor keeps of a running child.
#[derive(Clone)]
struct ChildHandle {
    crash: Recipient<Crash>,
    stop: Recipient<StopChild>,
}

type StartFn = Box<dyn Fn(&ArbiterHandle, Lifeline) -> ChildHandle>;

/// How to start one child. Built with [`ChildSpec::new`] from a factory that receives the
/// incarnation's [`Lifeline`]; the actor is constructed on its own Arbiter thread.
pub struct ChildSpec {
    pub name: &'static str,
    pub restart: Restart,
    start: StartFn,
}

impl ChildSpec {
    pub fn new<A, F>(name: &'static str, restart: Restart, factory: F) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<Crash> + Handler<StopChild>,
        F: Fn(Lifeline) -> A + Clone + Send + 'static,
    {
        let start: StartFn = Box::new(move |arbiter, lifeline| {
            let factory = factory.clone();
            let addr = A::start_in_arbiter(arbiter, move |ctx: &mut Context<A>| {
                let (supervisor, name, generation) = (
                    lifeline.supervisor.clone(),
                    lifeline.name,
                    lifeline.generation,
                );
                DeathWatch::install(ctx, lifeline.failure.clone(), move |reason| {
                    supervisor.do_send(ChildExited {
                        name,
                        generation,
                        reason,
                    })
                });
                factory(lifeline)
            });
            ChildHandle {
                crash: addr.clone().recipient(),
                stop: addr.recipient(),
            }
        });
        Self {
            name,
            restart,
            start,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor actor

struct Child {
    spec: ChildSpec,
    arbiter: Arbiter,
    generation: u64,
    handle: Option<ChildHandle>,
    info: ActorInfo,
}

/// Escalation: what the application hears from the supervisor.
#[derive(Debug, Clone)]
pub enum Escalation {
    /// A child died and is restarted after `delay` (the owner records the event).
    Restarted {
        actor: &'static str,
        reason: String,
        delay: Duration,
    },
    /// The restart intensity was exceeded: the supervisor gave up.
    Meltdown {
        actor: &'static str,
        reason: String,
        max_restarts: u32,
        window: Duration,
    },
}

pub struct Supervisor {
    config: SupervisorConfig,
    /// In start order; stopped in reverse.
    children: Vec<Child>,
    policy: RestartPolicy,
    meltdown: Option<&'static str>,
    shutting_down: bool,
    escalate: Option<UnboundedSender<Escalation>>,
    /// Shutdown waiters, answered when the named child has exited.
    exit_waiters: Vec<(&'static str, tokio::sync::oneshot::Sender<()>)>,
    /// Wall-clock time of starts and failures (`Deps::clock`).
    clock: Arc<dyn crate::stdx::clock::Clock>,
}

impl Supervisor {
    pub fn new(
        config: SupervisorConfig,
        specs: Vec<ChildSpec>,
        escalate: Option<UnboundedSender<Escalation>>,
        clock: Arc<dyn crate::stdx::clock::Clock>,
    ) -> Self {
        install_panic_hook();
        let policy = RestartPolicy::new(&config);
        let children = specs
            .into_iter()
            .map(|spec| Child {
                info: ActorInfo {
                    name: spec.name,
                    restart: spec.restart,
                    state: ActorState::Starting,
                    restarts: 0,
                    last_failure: None,
                    started_at: None,
                },
                arbiter: actor_arbiter(spec.name),
                spec,
                generation: 0,
                handle: None,
            })
            .collect();
        Self {
            config,
            children,
            policy,
            meltdown: None,
            shutting_down: false,
            escalate,
            exit_waiters: Vec::new(),
            clock,
        }
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut Child> {
        self.children.iter_mut().find(|c| c.info.name == name)
    }

    fn start_child(&mut self, index: usize, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let Some(child) = self.children.get_mut(index) else {
            return;
        };
        child.generation += 1;
        let lifeline = Lifeline {
            name: child.spec.name,
            generation: child.generation,
            supervisor: me,
            failure: Arc::new(Mutex::new(None)),
            readied: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        child.info.state = ActorState::Starting;
        child.info.started_at = Some(self.clock.now());
        child.handle = Some((child.spec.start)(&child.arbiter.handle(), lifeline));
        set_up_gauge(child.spec.name, false);
        tracing::info!(
            actor = child.spec.name,
            generation = child.generation,
            "actor starting"
        );
    }

    fn notify_exit_waiters(&mut self) {
        let children = &self.children;
        let running = |name: &str| {
            children
                .iter()
                .any(|c| c.info.name == name && c.handle.is_some())
        };
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.exit_waiters)
            .into_iter()
            .partition(|(name, _)| !running(name));
        self.exit_waiters = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    fn status(&self) -> SupervisorStatus {
        SupervisorStatus {
            meltdown: self.meltdown,
            actors: self.children.iter().map(|c| c.info.clone()).collect(),
        }
    }
}

/// An Arbiter (thread) for one child. Its thread enters a span named after the child for
/// good, so every log line the actor (or a job it runs) writes carries `actor = <name>`.
fn actor_arbiter(name: &'static str) -> Arbiter {
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(move || {
        let span = tracing::info_span!("actor", actor = name);
        std::mem::forget(span.entered());
    });
    arbiter
}

fn set_up_gauge(actor: &'static str, up: bool) {
    metrics::gauge!(crate::telemetry::names::ACTOR_UP, "actor" => actor).set(if up {
        1.0
    } else {
        0.0
    });
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!(crate::telemetry::names::SUPERVISOR_MELTDOWN).set(0.0);
        for child in &self.children {
            // A series per actor from the start, so that increase() sees the first restart.
            metrics::counter!(crate::telemetry::names::ACTOR_RESTARTS, "actor" => child.spec.name)
                .increment(0);
        }
        for i in 0..self.children.len() {
            self.start_child(i, ctx);
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for child in &self.children {
            child.arbiter.stop();
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ChildReady {
    name: &'static str,
    generation: u64,
}

impl Handler<ChildReady> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ChildReady, _: &mut Self::Context) {
        if let Some(child) = self.child_mut(msg.name) {
            if child.generation == msg.generation && child.handle.is_some() {
                child.info.state = ActorState::Running;
                set_up_gauge(msg.name, true);
                tracing::info!(
                    actor = msg.name,
                    generation = msg.generation,
                    "actor running (rehydrated)"
                );
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ChildExited {
    name: &'static str,
    generation: u64,
    reason: ExitReason,
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let shutting_down = self.shutting_down;
        let Some(index) = self.children.iter().position(|c| c.info.name == msg.name) else {
            return;
        };
        let child = &mut self.children[index];
        if child.generation != msg.generation {
            return; // a stale incarnation
        }
        child.handle = None;
        set_up_gauge(msg.name, false);
        if shutting_down {
            child.info.state = ActorState::Stopped;
            tracing::info!(actor = msg.name, "actor stopped");
            self.notify_exit_waiters();
            return;
        }
        let message = match &msg.reason {
            ExitReason::Normal if child.spec.restart == Restart::Transient => {
                child.info.state = ActorState::Stopped;
                tracing::info!(actor = msg.name, "transient actor finished");
                return;
            }
            other => other.describe(),
        };
        child.info.last_failure = Some(Failure {
            message: message.clone(),
            at: self.clock.now(),
        });
        if self.meltdown.is_some() {
            child.info.state = ActorState::Failed;
            return;
        }
        match self.policy.on_death(msg.name, Instant::now()) {
            Decision::RestartAfter(delay) => {
                let child = &mut self.children[index];
                child.info.state = ActorState::Restarting;
                child.info.restarts += 1;
                events::emit(Event::ActorRestarted {
                    actor: msg.name,
                    reason: message.clone(),
                    delay,
                });
                if let Some(tx) = &self.escalate {
                    let _ = tx.send(Escalation::Restarted {
                        actor: msg.name,
                        reason: message.clone(),
                        delay,
                    });
                }
                ctx.run_later(delay, move |this, ctx| {
                    if !this.shutting_down && this.meltdown.is_none() {
                        this.start_child(index, ctx);
                    }
                });
            }
            Decision::Meltdown => {
                self.children[index].info.state = ActorState::Failed;
                self.meltdown = Some(msg.name);
                events::emit(Event::SupervisorMeltdown {
                    actor: msg.name,
                    reason: message.clone(),
                    max_restarts: self.config.max_restarts,
                    window: self.config.restart_window,
                });
                if let Some(tx) = &self.escalate {
                    let _ = tx.send(Escalation::Meltdown {
                        actor: msg.name,
                        reason: message,
                        max_restarts: self.config.max_restarts,
                        window: self.config.restart_window,
                    });
                }
            }
        }
    }
}

/// The supervisor's view for `/ready` and `GET /api/v1/actors`.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorStatus {
    pub meltdown: Option<&'static str>,
    pub actors: Vec<ActorInfo>,
}

#[derive(Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CrashError {
    #[error("no actor named `{0}`")]
    Unknown(String),
    #[error("actor `{0}` is not running")]
    NotRunning(String),
}

/// Fault injection: make the named child panic inside a handler.
#[derive(Message)]
#[rtype(result = "Result<(), CrashError>")]
pub struct CrashChild(pub String);

impl Handler<CrashChild> for Supervisor {
    type Result = Result<(), CrashError>;
    fn handle(&mut self, msg: CrashChild, _: &mut Self::Context) -> Self::Result {
        let child = self
            .child_mut(&msg.0)
            .ok_or_else(|| CrashError::Unknown(msg.0.clone()))?;
        let handle = child
            .handle
            .as_ref()
            .ok_or_else(|| CrashError::NotRunning(msg.0.clone()))?;
        tracing::warn!(actor = child.info.name, "fault injection: crashing actor");
        handle.crash.do_send(Crash);
        Ok(())
    }
}

/// A round trip through the supervisor's mailbox (the systemd watchdog uses it).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Ping;

impl Handler<Ping> for Supervisor {
    type Result = bool;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> bool {
        self.meltdown.is_none()
    }
}

/// Stops every child in reverse start order, waiting for each (up to `timeout` in all).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub timeout: Duration,
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let deadline = tokio::time::Instant::now() + msg.timeout;
        let mut steps = Vec::new();
        for child in self.children.iter().rev() {
            if let Some(handle) = child.handle.clone() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.exit_waiters.push((child.info.name, tx));
                steps.push((child.info.name, handle, rx));
            }
        }
        let fut = async move {
            // One at a time, newest first: a child may depend on those started before it.
            for (name, handle, exited) in steps {
                let _ = handle.stop.send(StopChild).await;
                if tokio::time::timeout_at(deadline, exited).await.is_err() {
                    tracing::warn!(
                        actor = name,
                        "actor did not stop before the shutdown timeout"
                    );
                }
            }
        };
        Box::pin(actix::fut::wrap_future(fut))
    }
}
