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
    /// A run succeeded.
    JobExecuted {
        job: &'a str,
        run_id: uuid::Uuid,
        attempt: i32,
    },
    /// A run failed or timed out (a retry may follow).
    JobError {
        job: &'a str,
        run_id: uuid::Uuid,
        attempt: i32,
        kind: &'a str,
        message: &'a str,
    },
    /// Fires later than misfire_grace were recorded as missed.
    JobMissed { job: &'a str, covers: i32 },
    JobRetryScheduled {
        job: &'a str,
        run_id: uuid::Uuid,
        next_attempt: i32,
        delay_ms: i64,
    },
    /// Retries exhausted: the run is a dead letter.
    JobFailed { job: &'a str, reason: &'a str },
    /// A late result was refused by the fence (the attempt was no longer current).
    RunRefused { run_id: uuid::Uuid },
    /// A running run was rescued by the zombie detector.
    RunZombie {
        job: &'a str,
        run_id: uuid::Uuid,
        reason: &'a str,
    },
}

impl Event<'_> {
    /// The stable, dotted event name (what notification routing will match on).
    pub fn name(&self) -> &'static str {
        match self {
            Event::ActorRestarted { .. } => "actor.restarted",
            Event::SupervisorMeltdown { .. } => "supervisor.meltdown",
            Event::JobExecuted { .. } => "job.executed",
            Event::JobError { .. } => "job.error",
            Event::JobMissed { .. } => "job.missed",
            Event::JobRetryScheduled { .. } => "job.retry_scheduled",
            Event::JobFailed { .. } => "job.failed",
            Event::RunRefused { .. } => "run.refused",
            Event::RunZombie { .. } => "run.zombie",
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
        Event::JobExecuted {
            job,
            run_id,
            attempt,
        } => {
            tracing::debug!(event = name, job, %run_id, attempt, "run succeeded");
        }
        Event::JobError {
            job,
            run_id,
            attempt,
            kind,
            message,
        } => {
            tracing::warn!(event = name, job, %run_id, attempt, error_kind = kind, error = message, "run failed");
        }
        Event::JobMissed { job, covers } => {
            tracing::warn!(
                event = name,
                job,
                covers,
                "fires missed (later than misfire_grace)"
            );
        }
        Event::JobRetryScheduled {
            job,
            run_id,
            next_attempt,
            delay_ms,
        } => {
            tracing::info!(event = name, job, %run_id, next_attempt, delay_ms, "retry scheduled");
        }
        Event::JobFailed { job, reason } => {
            tracing::error!(
                event = name,
                job,
                reason,
                "job failed: retries exhausted (dead letter)"
            );
        }
        Event::RunZombie {
            job,
            run_id,
            reason,
        } => {
            tracing::warn!(event = name, job, %run_id, reason, "zombie run rescued");
        }
        Event::RunRefused { run_id } => {
            tracing::warn!(event = name, %run_id, "late result refused: the attempt is no longer current");
        }
    }
}
