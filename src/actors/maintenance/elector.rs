//! The `elector` actor: the leadership lease. Every third of `zombie.lease` it takes or
//! renews the `maintenance` row of `leader_lease` (expiry judged by PostgreSQL's clock, so
//! node clocks do not matter), keeps [`Leadership`](super::Leadership) for the rescuer and
//! the cleaner, and — as leader — asks the rescuer to sweep at once when a node with running
//! runs has gone silent. A clean stop releases the lease at once.
//!
//! Rehydration: its first election reads who holds the lease.

use std::time::Duration;

use actix::prelude::*;

use super::cleaner::PruneIfDue;
use super::rescuer::SweepNow;
use crate::actors::Deps;
use crate::db::{leader, nodes};
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "elector";

pub struct Elector {
    deps: Deps,
    lifeline: Lifeline,
    leader: bool,
    electing: bool,
}

impl Elector {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            leader: false,
            electing: false,
        }
    }

    fn elect(&mut self, ctx: &mut Context<Self>) {
        if self.electing {
            return;
        }
        self.electing = true;
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let lease = self.deps.config.zombie.lease;
        let lease_ms = lease.as_millis() as i64;
        let node_timeout = self.deps.config.zombie.node_timeout;
        ctx.spawn(
            async move {
                db.run(move |c| {
                    let lease = leader::acquire(c, leader::MAINTENANCE, node, lease_ms)?;
                    let silent = if lease.node_id == node {
                        nodes::silent_with_running_runs(c, node_timeout)?
                    } else {
                        0
                    };
                    Ok((lease, silent))
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, _| {
                act.electing = false;
                match res {
                    Ok((held, silent)) => {
                        // Rehydrated: who leads is known (the first election read the lease).
                        act.lifeline.ready();
                        let now_leader = held.node_id == node;
                        if now_leader != act.leader {
                            if now_leader {
                                tracing::info!(actor = NAME, node_id = %node, "this node is the leader (maintenance duties)");
                            } else {
                                tracing::info!(actor = NAME, leader = %held.node_id, "this node is not the leader");
                            }
                        }
                        metrics::gauge!(names::LEADER).set(if now_leader { 1.0 } else { 0.0 });
                        let became = now_leader && !act.leader;
                        act.leader = now_leader;
                        if now_leader {
                            act.deps.leadership.renewed(lease);
                            // A new leader looks at once; a silent node's runs are rescued at
                            // once.
                            if became || silent > 0 {
                                if let Some(r) = act.deps.directory.rescuer() {
                                    r.do_send(SweepNow);
                                }
                            }
                            if became {
                                if let Some(c) = act.deps.directory.cleaner() {
                                    c.do_send(PruneIfDue);
                                }
                            }
                        } else {
                            act.deps.leadership.lost();
                        }
                    }
                    Err(e) => {
                        // Cannot renew: act as a follower until the database answers again.
                        if act.leader {
                            tracing::warn!(actor = NAME, error = %e, "lost contact with the lease; stepping down");
                        }
                        act.leader = false;
                        act.deps.leadership.lost();
                        metrics::gauge!(names::LEADER).set(0.0);
                    }
                }
            }),
        );
    }

    /// `StopChild`: see [`crate::supervised_actor`].
    fn stop_child(&mut self, ctx: &mut Context<Self>) {
        // Hand leadership over at once instead of letting the lease run out.
        self.deps.leadership.lost();
        let db = self.deps.db.clone();
        let node = self.deps.node_id;
        let was_leader = self.leader;
        ctx.wait(
            async move {
                if was_leader {
                    let _ = db
                        .run(move |c| leader::release(c, leader::MAINTENANCE, node))
                        .await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }
}

impl Actor for Elector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A new incarnation leads only once it has renewed the lease itself.
        self.deps.leadership.lost();
        metrics::gauge!(names::LEADER).set(0.0);
        self.elect(ctx);
        let every = (self.deps.config.zombie.lease / 3).max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.elect(ctx));
    }
}

crate::supervised_actor!(Elector, stop = stop_child);
