//! The `BrowserSession` actor: one per profile, supervised by the pool (its death watch), runs
//! scripts in the profile's browser and fails when that browser dies.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use super::{BrowserPool, SessionDown};
use crate::browser::{BrowserRun, Pool, RunFailure, RunOutcome};
use crate::jobs::run_error::RunErrorKind;
use crate::supervisor::{DeathWatch, FailureCell};

/// One profile's browser session: runs scripts in the profile's browser. It fails (stops)
/// when its browser dies; its death watch tells the pool, which starts a new one.
pub struct BrowserSession {
    pub(super) profile: String,
    pub(super) pool: Rc<Pool>,
    pub(super) parent: Addr<BrowserPool>,
    pub(super) generation: u64,
    /// Why it failed, for its death watch.
    pub(super) failure: FailureCell,
}

/// Run a script in this session's browser.
#[derive(Message)]
#[rtype(result = "Result<RunOutcome, RunFailure>")]
pub(super) struct RunInSession(pub(super) BrowserRun);

/// How often a session checks that its browser is alive (between runs).
const SESSION_CHECK: Duration = Duration::from_millis(500);

impl BrowserSession {
    fn fail(&self, ctx: &mut Context<Self>, reason: String) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(reason);
        }
        ctx.stop();
    }
}

impl Actor for BrowserSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The supervisor's death watch: the pool hears of this session's end, however it ends.
        let (parent, profile, generation) =
            (self.parent.clone(), self.profile.clone(), self.generation);
        DeathWatch::install(ctx, self.failure.clone(), move |reason| {
            parent.do_send(SessionDown {
                profile,
                generation,
                reason: reason.describe(),
            })
        });
        // Rehydration: a browser the previous session left dead is reaped before any run.
        let (pool, profile) = (self.pool.clone(), self.profile.clone());
        ctx.wait(async move { pool.reap_dead(&profile).await }.into_actor(self));
        // A browser that dies between runs (killed, crashed) fails the session at once.
        ctx.run_interval(SESSION_CHECK, |act, ctx| {
            if !act.parent.connected() {
                // The pool died (it is restarted with new sessions): this one ends with it,
                // releasing its browser.
                act.fail(ctx, "its pool stopped".into());
            } else if act.pool.browser_dead(&act.profile) {
                act.fail(ctx, "its browser died".into());
            }
        });
    }
}

impl Handler<RunInSession> for BrowserSession {
    type Result = ResponseActFuture<Self, Result<RunOutcome, RunFailure>>;

    fn handle(&mut self, msg: RunInSession, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(
            async move { pool.run(msg.0).await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    if result
                        .as_ref()
                        .is_err_and(|f| f.kind == RunErrorKind::BrowserCrashed)
                    {
                        act.fail(ctx, "its browser died during a run".into());
                    }
                    result
                }),
        )
    }
}
