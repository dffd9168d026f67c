//! Events: the one path by which something noteworthy is reported. Each variant writes its
//! log line and its metrics in [`emit`]; the notifier will route the same events later.

use std::time::Duration;

use super::names;

#[derive(Debug)]
pub enum Event<'a> {
    ActorRestarted {
        actor: &'static str,
        reason: &'a str,
        delay: Duration,
    },
    SupervisorMeltdown {
        actor: &'static str,
        reason: &'a str,
        max_restarts: u32,
        window: Duration,
    },
}

impl Event<'_> {
    /// The stable, dotted event name (what notification routing will match on).
    pub fn name(&self) -> &'static str {
        match self {
            Event::ActorRestarted { .. } => "actor.restarted",
            Event::SupervisorMeltdown { .. } => "supervisor.meltdown",
        }
    }
}

pub fn emit(event: Event<'_>) {
    let name = event.name();
    metrics::counter!(names::EVENTS, "event" => name).increment(1);
    match event {
        Event::ActorRestarted {
            actor,
            reason,
            delay,
        } => {
            metrics::counter!(names::ACTOR_RESTARTS, "actor" => actor).increment(1);
            tracing::warn!(
                event = name,
                actor,
                reason,
                restart_delay_ms = delay.as_millis() as u64,
                "actor died; restarting"
            );
        }
        Event::SupervisorMeltdown {
            actor,
            reason,
            max_restarts,
            window,
        } => {
            metrics::gauge!(names::SUPERVISOR_MELTDOWN).set(1.0);
            tracing::error!(
                event = name,
                actor,
                reason,
                max_restarts,
                window_s = window.as_secs(),
                "supervisor meltdown: restart intensity exceeded; not restarting"
            );
        }
    }
}
