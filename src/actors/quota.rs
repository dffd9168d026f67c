//! The `quota_counter` actor: the one way this process consumes, refunds and reads quotas.
//!
//! `Consume` requests for the same quota are batched: while one batch is in its transaction
//! (`db::quotas::consume_batch`), new requests queue, and go as the next batch the moment it
//! commits. Nothing waits on a timer; under contention a batch carries everyone who arrived
//! meanwhile, so the hot rows are locked once per batch rather than once per request.
//! Requests are answered in arrival order, and the database's row locks make batches from
//! several processes add up exactly.
//!
//! Rehydration: the quota definitions are read (cached for the gauges, refreshed every
//! `GAUGE_EVERY`); limits used for admission are always read inside the consuming
//! transaction. The `quota_enforcement` flag off admits everything, counting and logging
//! what goes over a limit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Deps, REHYDRATE_RETRY};
use crate::db::quotas::{self, Decision, Receipt, WindowUsage};
use crate::db::DbError;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "quota_counter";
const MAX_BATCH: usize = 1024;
const GAUGE_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum QuotaError {
    #[error("no quota named `{0}`")]
    Unknown(String),
    #[error("a cost of {cost} is above the {window} limit of {limit}: it can never be admitted")]
    TooLarge {
        cost: i64,
        window: &'static str,
        limit: i64,
    },
    #[error("the quota counter is unavailable: {0}")]
    Unavailable(String),
}

/// What a consumption got.
#[derive(Debug, Clone)]
pub enum Consumed {
    Admitted {
        receipt: Receipt,
        windows: Vec<WindowUsage>,
    },
    Refused {
        retry_at: DateTime<Utc>,
        blocking: Vec<&'static str>,
        windows: Vec<WindowUsage>,
    },
}

/// Consume `cost` units of `quota`, all windows or none.
#[derive(Message)]
#[rtype(result = "Result<Consumed, QuotaError>")]
pub struct Consume {
    pub quota: String,
    pub cost: i64,
    /// An API call's audit row, written with the decision in the batch's transaction.
    pub audit: Option<crate::db::audit::Entry>,
}

/// Return the units of a receipt.
#[derive(Message)]
#[rtype(result = "Result<(), QuotaError>")]
pub struct RefundReceipt(pub Receipt);

/// Give back `cost` units in the windows that contain now (what was taken and not used).
#[derive(Message)]
#[rtype(result = "Result<(), QuotaError>")]
pub struct RefundUnits {
    pub quota: String,
    pub cost: i64,
    /// An API call's audit row, written in the refund's transaction.
    pub audit: Option<crate::db::audit::Entry>,
}

/// Definitions changed (through this node's API): re-read them for the gauges.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invalidate;

type Reply = oneshot::Sender<Result<Consumed, QuotaError>>;

pub struct QuotaCounter {
    deps: Deps,
    lifeline: Lifeline,
    queued: HashMap<String, VecDeque<(i64, Option<crate::db::audit::Entry>, Reply)>>,
    in_flight: HashSet<String>,
    known: Vec<String>,
}

fn db_error(quota: &str, e: DbError) -> QuotaError {
    match e {
        DbError::NotFound => QuotaError::Unknown(quota.to_string()),
        e => QuotaError::Unavailable(e.to_string()),
    }
}

fn publish(quota: &str, windows: &[WindowUsage]) {
    for w in windows {
        metrics::gauge!(names::QUOTA_REMAINING, "quota" => quota.to_string(), "window" => w.window)
            .set(w.remaining as f64);
    }
}

impl QuotaCounter {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            queued: HashMap::new(),
            in_flight: HashSet::new(),
            known: Vec::new(),
        }
    }

    fn flush(&mut self, quota: String, ctx: &mut Context<Self>) {
        if self.in_flight.contains(&quota) {
            return;
        }
        let Some(queue) = self.queued.get_mut(&quota) else {
            return;
        };
        let n = queue.len().min(MAX_BATCH);
        if n == 0 {
            return;
        }
        let mut costs = Vec::with_capacity(n);
        let mut audits = Vec::with_capacity(n);
        let mut batch = Vec::with_capacity(n);
        for (cost, audit, reply) in queue.drain(..n) {
            costs.push(cost);
            audits.push(audit);
            batch.push((cost, reply));
        }
        self.in_flight.insert(quota.clone());
        let db = self.deps.db.clone();
        let routing = self.deps.routing.clone();
        let enforce = self.deps.flags.on(crate::flags::Name::QuotaEnforcement);
        let name = quota.clone();
        let clock = self.deps.clock.clone();
        ctx.spawn(
            async move {
                db.run(move |c| {
                    quotas::consume_batch(c, &name, &costs, &audits, enforce, clock.now(), &routing)
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.in_flight.remove(&quota);
                match res {
                    Ok(decisions) => {
                        let mut last = None;
                        for ((cost, reply), d) in batch.into_iter().zip(decisions) {
                            let answer = match d {
                                Decision::Admitted {
                                    receipt,
                                    windows,
                                    over_limit,
                                } => {
                                    metrics::counter!(names::QUOTA_CONSUMED, "quota" => quota.clone())
                                        .increment(cost as u64);
                                    if over_limit {
                                        metrics::counter!(names::QUOTA_OVER_LIMIT, "quota" => quota.clone())
                                            .increment(cost as u64);
                                        tracing::warn!(actor = NAME, quota = %quota, cost,
                                            "over the limit, admitted: quota_enforcement is off");
                                    }
                                    last = Some(windows.clone());
                                    Ok(Consumed::Admitted { receipt, windows })
                                }
                                Decision::Refused {
                                    retry_at,
                                    blocking,
                                    windows,
                                } => {
                                    metrics::counter!(names::QUOTA_REJECTED, "quota" => quota.clone())
                                        .increment(1);
                                    last = Some(windows.clone());
                                    Ok(Consumed::Refused {
                                        retry_at,
                                        blocking,
                                        windows,
                                    })
                                }
                                Decision::TooLarge { window, limit } => Err(QuotaError::TooLarge {
                                    cost,
                                    window,
                                    limit,
                                }),
                            };
                            let _ = reply.send(answer);
                        }
                        if let Some(w) = last {
                            publish(&quota, &w);
                        }
                    }
                    Err(e) => {
                        let err = db_error(&quota, e);
                        for (_, reply) in batch {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                }
                if act.queued.get(&quota).is_some_and(|q| !q.is_empty()) {
                    act.flush(quota, ctx);
                } else {
                    act.queued.remove(&quota);
                }
            }),
        );
    }

    /// Re-reads the definitions and publishes every quota's remaining units.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let clock = self.deps.clock.clone();
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let now = clock.now();
                    let mut out = Vec::new();
                    for row in quotas::list(c)? {
                        let windows = quotas::usage(c, &row.def(), now)?;
                        out.push((row.name, windows));
                    }
                    Ok(out)
                })
                .await
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(all) => {
                    let names: Vec<String> = all.iter().map(|q| q.0.clone()).collect();
                    for gone in act.known.iter().filter(|n| !names.contains(n)) {
                        for w in ["hour", "day", "week"] {
                            metrics::gauge!(names::QUOTA_REMAINING, "quota" => gone.clone(), "window" => w)
                                .set(f64::NAN);
                        }
                    }
                    for (name, windows) in &all {
                        publish(name, windows);
                    }
                    act.known = names;
                    // Rehydrated: the definitions were read.
                    act.lifeline.ready();
                }
                Err(e) => {
                    tracing::warn!(actor = NAME, error = %e, "reading quotas failed");
                    if !act.lifeline.is_ready() {
                        ctx.run_later(REHYDRATE_RETRY, |act, ctx| act.refresh(ctx));
                    }
                }
            }),
        );
    }
}

impl Actor for QuotaCounter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.deps.flags.on(crate::flags::Name::QuotaEnforcement) {
            tracing::warn!(
                actor = NAME,
                "flag quota_enforcement is off: over-limit consumption is admitted (and counted)"
            );
        }
        self.deps.directory.set_quota_counter(ctx.address());
        // Rehydration: the definitions (for the gauges); ready once they are read.
        self.refresh(ctx);
        ctx.run_interval(GAUGE_EVERY, |act, ctx| act.refresh(ctx));
    }
}

impl Handler<Consume> for QuotaCounter {
    type Result = ResponseFuture<Result<Consumed, QuotaError>>;

    fn handle(&mut self, msg: Consume, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queued
            .entry(msg.quota.clone())
            .or_default()
            .push_back((msg.cost, msg.audit, tx));
        self.flush(msg.quota, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(QuotaError::Unavailable("the quota counter stopped".into()))
            })
        })
    }
}

impl Handler<RefundReceipt> for QuotaCounter {
    type Result = ResponseFuture<Result<(), QuotaError>>;

    fn handle(&mut self, msg: RefundReceipt, _: &mut Self::Context) -> Self::Result {
        let db = self.deps.db.clone();
        Box::pin(async move {
            let receipt = msg.0;
            let quota = receipt.quota.clone();
            let cost = receipt.cost;
            db.run(move |c| quotas::refund(c, &receipt))
                .await
                .map_err(|e| db_error(&quota, e))?;
            metrics::counter!(names::QUOTA_REFUNDED, "quota" => quota).increment(cost as u64);
            Ok(())
        })
    }
}

impl Handler<RefundUnits> for QuotaCounter {
    type Result = ResponseFuture<Result<(), QuotaError>>;

    fn handle(&mut self, msg: RefundUnits, _: &mut Self::Context) -> Self::Result {
        let db = self.deps.db.clone();
        let now = self.deps.clock.now();
        Box::pin(async move {
            let RefundUnits { quota, cost, audit } = msg;
            let name = quota.clone();
            db.run(move |c| {
                use diesel::Connection;
                c.transaction(|c| {
                    let def = quotas::get(c, &name)?.def();
                    let receipt = quotas::Receipt {
                        quota: name,
                        cost,
                        windows: def
                            .windows_at(now)
                            .iter()
                            .map(|w| (w.kind, w.start))
                            .collect(),
                    };
                    quotas::refund(c, &receipt)?;
                    if let Some(entry) = &audit {
                        crate::db::audit::record(c, entry)?;
                    }
                    Ok(())
                })
            })
            .await
            .map_err(|e| db_error(&quota, e))?;
            metrics::counter!(names::QUOTA_REFUNDED, "quota" => quota).increment(cost as u64);
            Ok(())
        })
    }
}

impl Handler<Invalidate> for QuotaCounter {
    type Result = ();
    fn handle(&mut self, _: Invalidate, ctx: &mut Self::Context) {
        self.refresh(ctx);
    }
}

// Queued requests are answered "unavailable" when their senders are dropped.
crate::supervised_actor!(QuotaCounter);
