//! Events: the one path by which something noteworthy is reported. Each variant writes its
//! log line and its metrics in [`emit`], and says what it means to a person (severity,
//! subject, body, data) for the notifier, which routes the same events to channels.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::names;

/// How much an event matters; routing rules set a minimum.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// An event with its identity: what makes it unique (a run, a job's fire, a domain's
/// transition), so that the outbox's dedupe key holds it once however often its
/// transaction is replayed.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub event: Event,
    pub identity: String,
}

impl Occurrence {
    pub fn new(identity: impl ToString, event: Event) -> Self {
        Self {
            event,
            identity: identity.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    ActorRestarted {
        actor: &'static str,
        reason: String,
        delay: Duration,
    },
    SupervisorMeltdown {
        actor: &'static str,
        reason: String,
        max_restarts: u32,
        window: Duration,
    },
    /// A run succeeded.
    JobExecuted {
        job: String,
        run_id: uuid::Uuid,
        attempt: i32,
    },
    /// A run failed or timed out (a retry may follow).
    JobError {
        job: String,
        run_id: uuid::Uuid,
        attempt: i32,
        kind: String,
        message: String,
    },
    /// Fires later than misfire_grace were recorded as missed.
    JobMissed { job: String, covers: i32 },
    JobRetryScheduled {
        job: String,
        run_id: uuid::Uuid,
        next_attempt: i32,
        delay_ms: i64,
    },
    /// Retries exhausted: the run is a dead letter.
    JobFailed { job: String, reason: String },
    /// A late result was refused by the fence (the attempt was no longer current).
    RunRefused { run_id: uuid::Uuid },
    /// A domain's circuit opened: browser runs for it wait until `until`.
    CircuitOpened {
        domain: String,
        failures: i32,
        until: chrono::DateTime<chrono::Utc>,
        error: String,
    },
    /// A domain's circuit closed again (a probe run succeeded).
    CircuitClosed { domain: String },
    /// A quota refused a consumption: the window is full until `resets_at`.
    QuotaExhausted {
        quota: String,
        window: String,
        limit: i64,
        resets_at: chrono::DateTime<chrono::Utc>,
    },
    /// A run waits (a quota is exhausted) and starts again at `until`; no retry is used.
    RunDeferred {
        job: String,
        run_id: uuid::Uuid,
        reason: String,
        until: chrono::DateTime<chrono::Utc>,
    },
    /// A running run was rescued by the zombie detector.
    RunZombie {
        job: String,
        run_id: uuid::Uuid,
        attempt: i32,
        reason: String,
    },
}

impl Event {
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
            Event::QuotaExhausted { .. } => "quota.exhausted",
            Event::CircuitOpened { .. } => "circuit.opened",
            Event::CircuitClosed { .. } => "circuit.closed",
            Event::RunDeferred { .. } => "run.deferred",
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Event::JobExecuted { .. }
            | Event::JobRetryScheduled { .. }
            | Event::RunDeferred { .. } => Severity::Info,
            Event::QuotaExhausted { .. } | Event::CircuitOpened { .. } => Severity::Warning,
            Event::CircuitClosed { .. } => Severity::Info,
            Event::ActorRestarted { .. }
            | Event::JobError { .. }
            | Event::JobMissed { .. }
            | Event::RunRefused { .. }
            | Event::RunZombie { .. } => Severity::Warning,
            Event::JobFailed { .. } => Severity::Error,
            Event::SupervisorMeltdown { .. } => Severity::Critical,
        }
    }

    /// One line for a person (an email subject, a chat message's first line).
    pub fn subject(&self) -> String {
        match self {
            Event::ActorRestarted { actor, .. } => format!("actor {actor} crashed and restarted"),
            Event::SupervisorMeltdown { actor, .. } => {
                format!("supervisor meltdown: {actor} keeps crashing; overseer gave up")
            }
            Event::JobExecuted { job, .. } => format!("job {job} succeeded"),
            Event::JobError { job, kind, .. } => format!("job {job} failed ({kind})"),
            Event::JobMissed { job, covers } => format!("job {job} missed {covers} fire(s)"),
            Event::JobRetryScheduled { job, .. } => format!("job {job} will be retried"),
            Event::JobFailed { job, .. } => format!("job {job} failed: dead letter"),
            Event::RunRefused { run_id } => format!("late result of run {run_id} refused"),
            Event::RunZombie { job, reason, .. } => {
                format!("job {job}: run rescued by the zombie detector ({reason})")
            }
            Event::QuotaExhausted { quota, window, .. } => {
                format!("quota {quota} exhausted for this {window}")
            }
            Event::CircuitOpened { domain, .. } => format!("circuit opened for {domain}"),
            Event::CircuitClosed { domain } => format!("circuit closed for {domain}"),
            Event::RunDeferred { job, until, .. } => {
                format!("job {job}: run deferred until {}", until.to_rfc3339())
            }
        }
    }

    /// The details, plain text.
    pub fn body(&self) -> String {
        match self {
            Event::ActorRestarted { actor, reason, delay } => format!(
                "The supervised actor `{actor}` died ({reason}) and is restarted after {} ms.",
                delay.as_millis()
            ),
            Event::SupervisorMeltdown { actor, reason, max_restarts, window } => format!(
                "`{actor}` died more than {max_restarts} times within {} s (last: {reason}). \
                 The supervisor stopped restarting it.",
                window.as_secs()
            ),
            Event::JobExecuted { job, run_id, attempt } => {
                format!("Run {run_id} of job `{job}` succeeded (attempt {attempt}).")
            }
            Event::JobError { job, run_id, attempt, kind, message } => format!(
                "Run {run_id} of job `{job}` failed on attempt {attempt}: {kind}: {message}"
            ),
            Event::JobMissed { job, covers } => format!(
                "Job `{job}` was due but not fired within its misfire grace; \
                 {covers} fire(s) were recorded as missed."
            ),
            Event::JobRetryScheduled { job, run_id, next_attempt, delay_ms } => format!(
                "Run {run_id} of job `{job}` failed; attempt {next_attempt} starts in {delay_ms} ms."
            ),
            Event::JobFailed { job, reason } => format!(
                "Job `{job}` failed and has no retry left ({reason}). \
                 The run is a dead letter: requeue it with POST /api/v1/runs/{{id}}/requeue."
            ),
            Event::RunRefused { run_id } => format!(
                "A late result for run {run_id} was refused: the attempt was no longer current."
            ),
            Event::RunZombie { job, run_id, attempt, reason } => format!(
                "Run {run_id} (attempt {attempt}) of job `{job}` was running but its worker \
                 could not finish it ({reason}). The retry policy applies."
            ),
            Event::QuotaExhausted { quota, window, limit, resets_at } => format!(
                "Quota `{quota}` used all {limit} units of this {window}; it resets at {}. \
                 Runs that need it wait until then.",
                resets_at.to_rfc3339()
            ),
            Event::RunDeferred { job, run_id, reason, until } => format!(
                "Run {run_id} of job `{job}` waits ({reason}) and starts again at {}.",
                until.to_rfc3339()
            ),
            Event::CircuitOpened { domain, failures, until, error } => format!(
                "Browser runs for {domain} failed {failures} times in a row (last: {error}). \
                 They wait until {} and then one run tries again.",
                until.to_rfc3339()
            ),
            Event::CircuitClosed { domain } => {
                format!("A browser run for {domain} succeeded; runs for it go ahead again.")
            }
        }
    }

    /// The machine-readable fields (a webhook's `data`).
    pub fn data(&self) -> Value {
        match self {
            Event::ActorRestarted {
                actor,
                reason,
                delay,
            } => {
                json!({"actor": actor, "reason": reason, "restart_delay_ms": delay.as_millis() as u64})
            }
            Event::SupervisorMeltdown {
                actor,
                reason,
                max_restarts,
                window,
            } => json!({
                "actor": actor, "reason": reason, "max_restarts": max_restarts,
                "window_s": window.as_secs()
            }),
            Event::JobExecuted {
                job,
                run_id,
                attempt,
            } => {
                json!({"job": job, "run_id": run_id, "attempt": attempt})
            }
            Event::JobError {
                job,
                run_id,
                attempt,
                kind,
                message,
            } => json!({
                "job": job, "run_id": run_id, "attempt": attempt, "error_kind": kind,
                "error": message
            }),
            Event::JobMissed { job, covers } => json!({"job": job, "covers": covers}),
            Event::JobRetryScheduled {
                job,
                run_id,
                next_attempt,
                delay_ms,
            } => json!({
                "job": job, "run_id": run_id, "next_attempt": next_attempt, "delay_ms": delay_ms
            }),
            Event::JobFailed { job, reason } => json!({"job": job, "reason": reason}),
            Event::RunRefused { run_id } => json!({"run_id": run_id}),
            Event::RunZombie {
                job,
                run_id,
                attempt,
                reason,
            } => {
                json!({"job": job, "run_id": run_id, "attempt": attempt, "reason": reason})
            }
            Event::QuotaExhausted {
                quota,
                window,
                limit,
                resets_at,
            } => {
                json!({"quota": quota, "window": window, "limit": limit, "resets_at": resets_at})
            }
            Event::RunDeferred {
                job,
                run_id,
                reason,
                until,
            } => {
                json!({"job": job, "run_id": run_id, "reason": reason, "until": until})
            }
            Event::CircuitOpened {
                domain,
                failures,
                until,
                error,
            } => {
                json!({"domain": domain, "failures": failures, "until": until, "error": error})
            }
            Event::CircuitClosed { domain } => json!({"domain": domain}),
        }
    }
}

pub fn emit(event: Event) {
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
            ..
        } => {
            metrics::counter!(names::ZOMBIES, "reason" => reason.to_string()).increment(1);
            tracing::warn!(event = name, job, %run_id, reason, "zombie run rescued");
        }
        Event::CircuitOpened {
            domain,
            failures,
            until,
            ..
        } => {
            tracing::warn!(event = name, domain, failures, until = %until, "circuit opened");
        }
        Event::CircuitClosed { domain } => {
            tracing::info!(event = name, domain, "circuit closed");
        }
        Event::QuotaExhausted {
            quota,
            window,
            limit,
            resets_at,
        } => {
            tracing::warn!(event = name, quota, window, limit, resets_at = %resets_at, "quota exhausted");
        }
        Event::RunDeferred {
            job,
            run_id,
            reason,
            until,
        } => {
            tracing::info!(event = name, job, %run_id, reason, until = %until, "run deferred");
        }
        Event::RunRefused { run_id } => {
            tracing::warn!(event = name, %run_id, "late result refused: the attempt is no longer current");
        }
    }
}
