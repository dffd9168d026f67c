//! A command run's hold on a profile: the profile's browser, launched (or reused) under the
//! pool's limits and flags, for that run alone. Browser runs and other holds of the profile
//! wait until it is released. On release the browser is closed, so the DevTools endpoint
//! the program was given dies with the hold and the pages it left are gone; the next run
//! relaunches the profile (cookies and logins are on disk).

use std::rc::Rc;

use uuid::Uuid;

use super::run::Launch;
use super::{Busy, Pool, RunFailure, Session};
use crate::jobs::run_error::RunErrorKind;

/// What the holder gets.
#[derive(Debug, Clone)]
pub struct Held {
    /// The browser's DevTools websocket on loopback (`OVERSEER_CDP_URL`).
    pub cdp_url: String,
    /// Changes when the browser dies during the hold.
    pub died: tokio::sync::watch::Receiver<u64>,
}

pub(super) struct Hold {
    session: Rc<Session>,
    _exclusive: tokio::sync::OwnedRwLockWriteGuard<()>,
    _busy: Busy,
}

impl Hold {
    pub(super) fn session(&self) -> Rc<Session> {
        self.session.clone()
    }
}

impl Pool {
    /// Holds `profile` for `run_id`: waits until no other run uses it, launches its browser
    /// if needed, and closes pages earlier runs parked.
    pub async fn hold(&self, run_id: Uuid, profile: &str) -> Result<Held, RunFailure> {
        self.pending_holds.borrow_mut().insert(run_id, false);
        let held = self.take_hold(run_id, profile).await;
        self.pending_holds.borrow_mut().remove(&run_id);
        held
    }

    async fn take_hold(&self, run_id: Uuid, profile: &str) -> Result<Held, RunFailure> {
        let session = self.session(profile);
        let exclusive = session.exclusive.clone().write_owned().await;
        let busy = Busy::enter(&session);
        let cdp_url = {
            let mut guard = session.chromium.lock().await;
            if guard.is_some() && !session.alive.get() {
                self.replace_dead(&session, &mut guard).await;
            }
            if guard.is_none() {
                let launch = Launch {
                    profile,
                    viewport: None,
                    locale: "en-US",
                };
                self.launch_into(&session, &mut guard, &launch).await?;
            }
            for (_, page) in session.idle_pages.borrow_mut().drain(..) {
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(5), page.close()).await;
                });
            }
            match guard.as_ref() {
                Some(c) => c.ws_url().to_string(),
                None => {
                    return Err(RunFailure {
                        kind: RunErrorKind::BrowserLaunch,
                        message: "the browser is not running".into(),
                    })
                }
            }
        };
        let died = session.deaths.subscribe();
        let released = self.pending_holds.borrow().get(&run_id) == Some(&true);
        if released {
            // The run ended while it waited for the profile.
            self.close_session(&session).await;
            return Err(RunFailure {
                kind: RunErrorKind::Cancelled,
                message: "the run ended before it held its profile".into(),
            });
        }
        self.holds.borrow_mut().insert(
            run_id,
            Hold {
                session,
                _exclusive: exclusive,
                _busy: busy,
            },
        );
        tracing::info!(%run_id, profile, "profile held by a command run");
        Ok(Held { cdp_url, died })
    }

    /// Ends a hold: the profile's browser is closed (its endpoint and the program's pages go
    /// with it) and the profile is free again. False when the run held nothing.
    pub async fn release(&self, run_id: Uuid) -> bool {
        let Some(hold) = self.holds.borrow_mut().remove(&run_id) else {
            // Still waiting for the profile: it is released as soon as it is held.
            if let Some(released) = self.pending_holds.borrow_mut().get_mut(&run_id) {
                *released = true;
            }
            return false;
        };
        self.close_session(&hold.session).await;
        self.publish();
        tracing::info!(%run_id, profile = %hold.session.profile, "profile released");
        drop(hold);
        true
    }
}
