//! The `node` actor: registers this process in the `nodes` table and refreshes `last_seen`
//! every `node.heartbeat_interval`, so that other nodes can tell it is alive; and reads the
//! feature flags' runtime overrides every `flags::REFRESH` into this process's
//! `flags::Live`, so that an override set through any node holds here within seconds.
//!
//! Rehydration: (re-)register the row — the id is the process's, stable across restarts of
//! the actor — and read the overrides. A database outage is not a crash: the actor keeps
//! trying and counts failures (the flags keep their last known values).

use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use super::{Deps, REHYDRATE_RETRY};
use crate::db::nodes::{self, Node};
use crate::db::Db;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "node";

pub struct NodeActor {
    db: Db,
    node: Node,
    interval: Duration,
    lifeline: Lifeline,
    beating: bool,
    flags: crate::flags::Live,
    reading_flags: bool,
}

/// This machine's name (as `nodes` and `browser_sessions` record it).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The row describing this process.
pub fn this_node(id: Uuid, now: chrono::DateTime<chrono::Utc>) -> Node {
    Node {
        id,
        hostname: hostname(),
        pid: std::process::id() as i32,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: now,
        last_seen: now,
        stopped_at: None,
    }
}

impl NodeActor {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            db: deps.db.clone(),
            node: this_node(deps.node_id, deps.clock.now()),
            interval: deps.config.node.heartbeat_interval,
            lifeline,
            beating: false,
            flags: deps.flags.clone(),
            reading_flags: false,
        }
    }

    fn refresh_flags(&mut self, ctx: &mut Context<Self>) {
        if self.reading_flags {
            return;
        }
        self.reading_flags = true;
        let db = self.db.clone();
        let epoch = self.flags.epoch();
        ctx.spawn(
            async move { db.run(crate::db::flags::load).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.reading_flags = false;
                    match res {
                        Ok(overrides) => {
                            for (name, percent) in act.flags.refresh(epoch, overrides) {
                                let source = act.flags.view(name).source;
                                tracing::info!(flag = name.as_str(), percent, source = ?source,
                                    "flag changed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reading flag overrides failed"),
                    }
                }),
        );
    }

    fn rehydrate(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let node = self.node.clone();
        ctx.spawn(
            async move { db.run(move |c| nodes::register(c, &node)).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(row) => {
                        tracing::info!(node_id = %row.id, hostname = %row.hostname, "node registered");
                        act.lifeline.ready();
                        ctx.run_interval(act.interval, |act, ctx| act.heartbeat(ctx));
                        act.refresh_flags(ctx);
                        ctx.run_interval(crate::flags::REFRESH, |act, ctx| act.refresh_flags(ctx));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "node registration failed; retrying");
                        ctx.run_later(REHYDRATE_RETRY, |act, ctx| act.rehydrate(ctx));
                    }
                }),
        );
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.beating {
            return;
        }
        self.beating = true;
        let db = self.db.clone();
        let node = self.node.clone();
        ctx.spawn(
            async move {
                db.run(move |c| {
                    if !nodes::touch(c, node.id)? {
                        nodes::register(c, &node)?;
                    }
                    Ok(())
                })
                .await
            }
            .into_actor(self)
            .map(|res, act, _| {
                act.beating = false;
                match res {
                    Ok(()) => metrics::counter!(names::NODE_HEARTBEATS).increment(1),
                    Err(e) => {
                        metrics::counter!(names::NODE_HEARTBEAT_FAILURES).increment(1);
                        tracing::warn!(error = %e, "node heartbeat failed");
                    }
                }
            }),
        );
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.rehydrate(ctx);
    }
}

crate::supervised_actor!(NodeActor);
