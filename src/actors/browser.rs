//! The `browser_pool` actor: owns the browser [`Pool`](crate::browser::Pool) of this node.
//! `RunBrowser` runs a script in its profile's browser (concurrently with other runs); idle
//! browsers are closed every few seconds; on stop every browser is closed and reaped.
//!
//! Rehydration: nothing to read. Profiles live on disk under `<state_dir>/profiles`; a
//! browser is launched on demand, so a restarted pool starts empty and relaunches profiles
//! (with their cookies) when runs need them. A pool that dies leaves no Chromium behind:
//! each process is killed with its group when its handle drops.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use super::Deps;
use crate::browser::{BrowserRun, Pool, PoolConfig, RunFailure};
use crate::supervisor::{Crash, Lifeline, StopChild};

pub const NAME: &str = "browser_pool";
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Run a script.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, RunFailure>")]
pub struct RunBrowser(pub BrowserRun);

/// Process ids of the running browsers (tests and diagnostics).
#[derive(Message)]
#[rtype(result = "Vec<(String, i32)>")]
pub struct BrowserPids;

pub struct BrowserPool {
    deps: Deps,
    lifeline: Lifeline,
    pool: Option<Rc<Pool>>,
}

impl BrowserPool {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            pool: None,
        }
    }
}

impl Actor for BrowserPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let c = &self.deps.config;
        let executable = if c.browser.executable.is_empty() {
            crate::browser::process::find_executable()
        } else {
            Some(PathBuf::from(&c.browser.executable))
        };
        match &executable {
            Some(path) => tracing::info!(actor = NAME, chromium = %path.display(), anti_detection = c.flags.anti_detection, "browser pool ready"),
            None => tracing::warn!(actor = NAME, "no chromium on PATH (browser.executable): browser jobs will fail until it is installed"),
        }
        if !c.flags.anti_detection {
            tracing::warn!(
                actor = NAME,
                "flag anti_detection is off: pages see an automated browser"
            );
        }
        // Rehydration: a browser left by an earlier overseer (killed with -9) on our
        // profiles would hold their locks; it is killed first.
        let leftovers = crate::browser::process::reap_leftovers(&c.state_path("profiles"));
        if leftovers > 0 {
            tracing::warn!(
                actor = NAME,
                killed = leftovers,
                "killed Chromium processes left by an earlier run"
            );
        }
        self.pool = Some(Rc::new(Pool::new(PoolConfig {
            executable: executable.unwrap_or_else(|| PathBuf::from("chromium")),
            profiles_dir: c.state_path("profiles"),
            artifacts_dir: c.state_path("artifacts"),
            max_browsers: c.browser.max_browsers as usize,
            idle_timeout: c.browser.idle_timeout,
            launch_timeout: c.browser.launch_timeout,
            step_timeout: c.browser.step_timeout,
            stealth: c.flags.anti_detection,
        })));
        self.deps.directory.set_browser_pool(ctx.address());
        self.lifeline.ready();
        // Artifacts live as long as the longest-kept runs (runs.failed_retention).
        let dir = c.state_path("artifacts");
        let keep = c.runs.failed_retention;
        ctx.run_interval(c.runs.prune_interval, move |_, _| {
            let dir = dir.clone();
            actix_rt::spawn(async move {
                let pruned = tokio::task::spawn_blocking(move || {
                    crate::browser::prune_artifacts(&dir, keep)
                })
                .await;
                if let Ok(n @ 1..) = pruned {
                    tracing::info!(actor = NAME, deleted = n, "old run artifacts pruned");
                }
            });
        });
        ctx.run_interval(IDLE_CHECK, |act, ctx| {
            if let Some(pool) = act.pool.clone() {
                ctx.spawn(async move { pool.close_idle().await }.into_actor(act));
            }
        });
    }
}

impl Handler<RunBrowser> for BrowserPool {
    type Result = ResponseFuture<Result<serde_json::Value, RunFailure>>;

    fn handle(&mut self, msg: RunBrowser, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool {
                Some(pool) => pool.run(msg.0).await,
                None => Err(RunFailure {
                    kind: "browser",
                    message: "the browser pool is starting".into(),
                }),
            }
        })
    }
}

impl Handler<BrowserPids> for BrowserPool {
    type Result = MessageResult<BrowserPids>;
    fn handle(&mut self, _: BrowserPids, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.pool.as_ref().map(|p| p.pids()).unwrap_or_default())
    }
}

impl Handler<Crash> for BrowserPool {
    type Result = ();
    fn handle(&mut self, _: Crash, _: &mut Self::Context) {
        panic!("fault injection: BrowserPool crashed on request");
    }
}

impl Handler<StopChild> for BrowserPool {
    type Result = ();
    fn handle(&mut self, _: StopChild, ctx: &mut Self::Context) {
        let pool = self.pool.clone();
        ctx.wait(
            async move {
                if let Some(pool) = pool {
                    pool.close_all().await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }
}
