//! Runs that wait for a person: a `hand_over` step's run (its slot is free meanwhile:
//! `RunWaits`) and a command run's program asking for one (`StartHandOver`, `HandOverOf`:
//! the view followed until Continue or the timeout, which ends the program).

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::{Executor, NAME};
use crate::actors::scheduler::Wake;
use crate::actors::system::announce_waiting;
use crate::browser::live::LiveHandle;

/// A command run's program asks for a person (`POST /api/v1/runs/{id}/hand-over`): `view` is
/// the live view of its held browser. Answers how it stands, as it changes; a second ask
/// while one is open joins it.
#[derive(Message)]
#[rtype(result = "Result<watch::Receiver<HandOver>, String>")]
pub struct StartHandOver {
    pub run_id: Uuid,
    pub reason: String,
    pub timeout: Duration,
    pub view: LiveHandle,
}

/// How the run's hand-over stands (None: it asked for none, or it is not running here).
#[derive(Message)]
#[rtype(result = "Option<watch::Receiver<HandOver>>")]
pub struct HandOverOf(pub Uuid);

/// A hand-over, as the program polls it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HandOver {
    /// waiting, done (the person pressed Continue) or timed_out (the run fails)
    pub state: HandOverState,
    pub live_id: Uuid,
    /// The dashboard page of its live view.
    pub link: String,
    pub reason: String,
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HandOverState {
    Waiting,
    Done,
    TimedOut,
}

/// A run began (`true`) or ended (`false`) waiting for a person (`kinds::Waiting`).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct RunWaits {
    pub(super) run_id: Uuid,
    pub(super) waiting: bool,
}

impl Handler<RunWaits> for Executor {
    type Result = ();
    fn handle(&mut self, msg: RunWaits, _: &mut Self::Context) {
        if let Some(f) = self.in_flight.get_mut(&msg.run_id) {
            f.waiting = msg.waiting;
        }
        // Its slot is free while it waits: the scheduler may send another run.
        if msg.waiting {
            if let Some(s) = self.deps.directory.scheduler() {
                s.do_send(Wake);
            }
        }
    }
}

impl Handler<HandOverOf> for Executor {
    type Result = Option<watch::Receiver<HandOver>>;
    fn handle(&mut self, msg: HandOverOf, _: &mut Self::Context) -> Self::Result {
        self.in_flight
            .get(&msg.0)
            .and_then(|f| f.hand_over.as_ref())
            .map(|(_, rx)| rx.clone())
    }
}

impl Handler<StartHandOver> for Executor {
    type Result = ResponseActFuture<Self, Result<watch::Receiver<HandOver>, String>>;

    fn handle(&mut self, msg: StartHandOver, ctx: &mut Self::Context) -> Self::Result {
        let Some(f) = self.in_flight.get_mut(&msg.run_id) else {
            msg.view.end();
            return Box::pin(actix::fut::ready(Err(
                "the run is not running on this node".to_string(),
            )));
        };
        if let Some((_, rx)) = &f.hand_over {
            msg.view.end();
            return Box::pin(actix::fut::ready(Ok(rx.clone())));
        }
        let deadline = self.deps.clock.now()
            + chrono::Duration::from_std(msg.timeout).unwrap_or(chrono::Duration::MAX);
        let (tx, rx) = watch::channel(HandOver {
            state: HandOverState::Waiting,
            live_id: msg.view.id,
            link: format!("/ui/#/live/{}", msg.view.id),
            reason: msg.reason.clone(),
            deadline,
        });
        f.hand_over = Some((msg.view.clone(), rx.clone()));
        let (deps, who, clock) = (self.deps.clone(), f.who.clone(), f.wait_clock.clone());
        let (view, reason, timeout, run_id) = (msg.view, msg.reason, msg.timeout, msg.run_id);
        // Announced, then followed until the person is done or the time is up.
        let announced = {
            let (deps, who, reason, view) =
                (deps.clone(), who.clone(), reason.clone(), view.clone());
            async move { announce_waiting(&deps, &who, &reason, deadline, view.id).await }
        };
        ctx.spawn(
            async move {
                if let Err(e) = announced.await {
                    tracing::warn!(actor = NAME, %run_id, error = %e, "a hand-over could not be announced");
                    view.end();
                    return;
                }
                clock.begin();
                let state = tokio::select! {
                    _ = view.wait_ended() => HandOverState::Done,
                    _ = tokio::time::sleep(timeout) => {
                        clock.give_up(format!(
                            "nobody took over within {} ({reason})",
                            crate::stdx::duration::format_duration(timeout)
                        ));
                        HandOverState::TimedOut
                    }
                };
                view.end();
                clock.end();
                let _ = deps
                    .db
                    .run(move |c| crate::db::runs::set_waiting(c, run_id, None))
                    .await;
                tx.send_modify(|h| h.state = state);
            }
            .into_actor(self),
        );
        Box::pin(actix::fut::ready(Ok(rx)))
    }
}
