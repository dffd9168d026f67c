//! The `notifier` actor: delivers the `notifications` outbox.
//!
//! Every `notify.poll_interval` (at once again while rounds come back full) it claims up to
//! `notify.batch_size` due rows (`db::notifications::claim`, SKIP LOCKED, so several nodes
//! share the work without overlap), delivers them with up to `notify.concurrency` in flight,
//! and records every outcome in one statement: sent; retried after exponential backoff
//! (`backoff_initial` doubling to `backoff_max`, ±10 % jitter); or failed (a permanent error,
//! or `max_attempts` used up).
//!
//! Rehydration: none needed. Pending rows are the state; a row claimed by an incarnation that
//! died is claimed again once its claim expires (`Routing::claim_timeout`).
//! The `notifications` flag switches delivery off on this node (rows keep being written),
//! read at every round: a runtime override takes effect at the next one.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use rand::Rng;

use super::{Deps, REHYDRATE_RETRY};
use crate::db::notifications::{self, Outcome};
use crate::notify::channel::{Deliverer, DeliveryError};
use crate::notify::settings::NotifyConfig;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "notifier";
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

pub struct Notifier {
    deps: Deps,
    lifeline: Lifeline,
    deliverer: Option<Rc<Deliverer>>,
    /// What the last round found the `notifications` flag to be (its changes are logged).
    delivering: bool,
    busy: bool,
    again: bool,
}

/// The delay before attempt `attempts + 1`, after `attempts` failed ones (without jitter).
pub fn backoff(cfg: &NotifyConfig, attempts: i32) -> Duration {
    let step = attempts.saturating_sub(1).max(0) as u32;
    crate::stdx::backoff::exponential(cfg.backoff_initial, cfg.backoff_max, step)
}

/// What to record after one delivery attempt.
pub fn outcome(
    cfg: &NotifyConfig,
    attempts: i32,
    result: Result<(), DeliveryError>,
    now: DateTime<Utc>,
) -> Outcome {
    match result {
        Ok(()) => Outcome::Sent,
        Err(DeliveryError::Permanent(e)) => Outcome::Failed(e),
        Err(DeliveryError::Transient(e)) if attempts >= cfg.max_attempts as i32 => {
            Outcome::Failed(format!("{e} (gave up after {attempts} attempts)"))
        }
        Err(DeliveryError::Transient(e)) => {
            let base = backoff(cfg, attempts).as_secs_f64();
            let jittered = base * rand::thread_rng().gen_range(0.9..=1.1);
            let delay = chrono::Duration::milliseconds((jittered * 1000.0) as i64);
            Outcome::Retry(now + delay, e)
        }
    }
}

impl Notifier {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            deliverer: None,
            delivering: true,
            busy: false,
            again: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        // Read when acting: `PUT /api/v1/flags/notifications` takes effect at the next round.
        let on = self.deps.flags.on(crate::flags::Name::Notifications);
        if on != self.delivering {
            self.delivering = on;
            if on {
                tracing::info!(
                    actor = NAME,
                    "flag notifications is on: delivering the outbox"
                );
            } else {
                tracing::warn!(
                    actor = NAME,
                    "flag notifications is off: nothing is delivered from this node (the outbox keeps filling)"
                );
            }
        }
        if !on {
            return;
        }
        let Some(deliverer) = self.deliverer.clone() else {
            return;
        };
        self.busy = true;
        self.again = false;
        let db = self.deps.db.clone();
        let clock = self.deps.clock.clone();
        let cfg = self.deps.config.notify.clone();
        let claim_ms = self.deps.routing.claim_timeout().as_millis() as i64;
        let fut = async move {
            let batch = cfg.batch_size as i64;
            let claimed = db
                .run(move |c| notifications::claim(c, batch, claim_ms))
                .await?;
            let n = claimed.len();
            if n == 0 {
                return Ok(0);
            }
            let results: Vec<_> = stream::iter(claimed)
                .map(|msg| {
                    let d = deliverer.clone();
                    async move {
                        let started = Instant::now();
                        let result = d.deliver(&msg).await;
                        metrics::histogram!(names::NOTIFY_DURATION, "channel" => msg.channel.clone())
                            .record(started.elapsed().as_secs_f64());
                        (msg, result)
                    }
                })
                .buffer_unordered(cfg.concurrency as usize)
                .collect()
                .await;
            let mut outcomes = Vec::with_capacity(results.len());
            for (msg, result) in results {
                let o = outcome(&cfg, msg.attempts, result, clock.now());
                let label = match &o {
                    Outcome::Sent => "sent",
                    Outcome::Retry(at, e) => {
                        tracing::warn!(actor = NAME, notification_id = %msg.id, channel = %msg.channel,
                            attempt = msg.attempts, retry_at = %at, error = %e, "delivery failed; will retry");
                        "retry"
                    }
                    Outcome::Failed(e) => {
                        tracing::error!(actor = NAME, notification_id = %msg.id, channel = %msg.channel,
                            attempt = msg.attempts, error = %e, "delivery failed for good");
                        "failed"
                    }
                };
                metrics::counter!(names::NOTIFICATIONS, "channel" => msg.channel.clone(), "outcome" => label)
                    .increment(1);
                outcomes.push((msg.id, o));
            }
            db.run(move |c| notifications::record(c, &outcomes, clock.now()))
                .await?;
            Ok::<_, crate::db::DbError>(n)
        };
        let full = self.deps.config.notify.batch_size as usize;
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            match res {
                Ok(n) if n >= full => act.again = true,
                Ok(_) => {}
                // The database is down: the next poll tries again (rows are not lost).
                Err(e) => tracing::warn!(actor = NAME, error = %e, "notification round failed"),
            }
            if act.again {
                act.tick(ctx);
            }
        }));
    }

    fn backlog(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        ctx.spawn(
            async move { db.run(notifications::pending_count).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(n) => {
                        metrics::gauge!(names::NOTIFICATIONS_PENDING).set(n as f64);
                        // Rehydrated: the outbox's backlog was read.
                        act.lifeline.ready();
                    }
                    Err(e) => {
                        tracing::warn!(actor = NAME, error = %e, "reading the outbox backlog failed");
                        if !act.lifeline.is_ready() {
                            ctx.run_later(REHYDRATE_RETRY, |act, ctx| act.backlog(ctx));
                        }
                    }
                }),
        );
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match Deliverer::new(self.deps.routing.clone()) {
            Ok(d) => self.deliverer = Some(Rc::new(d)),
            Err(e) => {
                self.lifeline.fail(e.to_string());
                ctx.stop();
                return;
            }
        }
        // Rehydration: the outbox's backlog; ready once it is read. Delivery rounds claim
        // from the table, so nothing else is kept between incarnations.
        self.backlog(ctx);
        ctx.run_interval(BACKLOG_EVERY, |act, ctx| act.backlog(ctx));
        // Every round asks the flag, so turning it off or on needs no restart.
        self.tick(ctx);
        ctx.run_interval(self.deps.config.notify.poll_interval, |act, ctx| {
            act.tick(ctx)
        });
    }
}

// Deliveries in flight are abandoned; their claims expire and another round (here
// after a restart, or on another node) sends them again with the same id.
crate::supervised_actor!(Notifier);
#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = NotifyConfig::shipped().unwrap();
        assert_eq!(backoff(&cfg, 1), Duration::from_secs(1));
        assert_eq!(backoff(&cfg, 2), Duration::from_secs(2));
        assert_eq!(backoff(&cfg, 4), Duration::from_secs(8));
        assert_eq!(backoff(&cfg, 40), Duration::from_secs(300));
    }

    #[test]
    fn outcomes() {
        let cfg = NotifyConfig::shipped().unwrap();
        assert!(matches!(outcome(&cfg, 1, Ok(()), t0()), Outcome::Sent));
        assert!(matches!(
            outcome(
                &cfg,
                1,
                Err(DeliveryError::Permanent("HTTP 400".into())),
                t0()
            ),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            outcome(
                &cfg,
                1,
                Err(DeliveryError::Transient("HTTP 503".into())),
                t0()
            ),
            Outcome::Retry(..)
        ));
        assert!(matches!(
            outcome(
                &cfg,
                8,
                Err(DeliveryError::Transient("HTTP 503".into())),
                t0()
            ),
            Outcome::Failed(_)
        ));
    }
}
