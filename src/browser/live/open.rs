//! Opening views: a person's (holding the profile), a run's own page (`hand_over`), a command
//! run's held browser; the registry of views of a pool.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::page::NavigateParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CloseTargetParams, EventTargetCreated, EventTargetDestroyed, EventTargetInfoChanged,
    GetTargetsParams, TargetInfo,
};
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use chrono::Utc;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::view::View;
use super::*;
use crate::browser::run::PageSetup;
use crate::browser::{Pool, RunFailure, Session};
use crate::jobs::run_error::RunErrorKind;

impl Pool {
    /// Opens a live view of `profile` (at `url`, if given): holds the profile (waiting for
    /// its runs to finish), opens a page with the profile's identity and starts the view's
    /// task. `on_end` is called once when it has ended and the profile is free again.
    pub async fn open_live(
        pool: Rc<Pool>,
        id: Uuid,
        profile: &str,
        url: Option<String>,
        opened_by: String,
        idle: Duration,
    ) -> Result<LiveHandle, RunFailure> {
        // Its runs finish first (a new run waits behind the view); not forever.
        match tokio::time::timeout(HOLD_WAIT, pool.hold(id, profile)).await {
            Ok(held) => {
                held?;
            }
            Err(_) => {
                pool.pending_holds.borrow_mut().remove(&id);
                return Err(RunFailure {
                    kind: RunErrorKind::BrowserBusy,
                    message: format!(
                        "profile {profile} is still in use by its runs after {}s; try again when they are done",
                        HOLD_WAIT.as_secs()
                    ),
                });
            }
        }
        let opened = pool.live_page(profile, url.as_deref()).await;
        let (page, streams, tabs) = match opened {
            Ok(o) => o,
            Err(e) => {
                pool.release(id).await;
                return Err(e);
            }
        };
        let about = About {
            id,
            opened_by,
            run_id: None,
            reason: None,
            alone: Some(idle),
            all_tabs: true,
        };
        let session = pool.session(profile);
        let released = pool.clone();
        let handle = pool.start_view(session, about, page, streams, tabs, async move {
            released.release(id).await;
        });
        tracing::info!(live_id = %id, profile, "live view opened");
        Ok(handle)
    }

    /// A live view of a run's own page (`hand_over`): no hold (the run has its page), the
    /// run's page and the tabs it opens, until the run ends it; the page stays the run's.
    pub(super) async fn attach_live(
        &self,
        session: &Rc<Session>,
        run_id: Uuid,
        page: &Page,
        reason: &str,
        all_tabs: bool,
    ) -> Result<LiveHandle, String> {
        let streams = {
            let guard = session.chromium.lock().await;
            let chromium = guard
                .as_ref()
                .ok_or("the profile's browser is not running")?;
            TargetStreams::of(&chromium.browser)
                .await
                .map_err(|e| e.message)?
        };
        let mine = page
            .execute(
                chromiumoxide::cdp::browser_protocol::target::GetTargetInfoParams {
                    target_id: Some(page.target_id().clone()),
                },
            )
            .await
            .map(|r| r.result.target_info)
            .map_err(|e| e.to_string())?;
        let about = About {
            id: Uuid::now_v7(),
            opened_by: format!("run {run_id}"),
            run_id: Some(run_id),
            reason: Some(reason.to_string()),
            alone: None,
            all_tabs,
        };
        let (id, page) = (about.id, page.clone());
        let handle = self.start_view(
            session.clone(),
            about,
            page.clone(),
            streams,
            vec![mine],
            async move {
                let _ = page
                    .execute(
                        chromiumoxide::cdp::browser_protocol::page::StopScreencastParams::default(),
                    )
                    .await;
            },
        );
        tracing::info!(live_id = %id, %run_id, profile = %session.profile, "live view of a run's page opened");
        Ok(handle)
    }

    /// A live view of the browser a command run holds (its program asked for a person):
    /// its newest tab shown, every tab listed; the program's pages stay its own.
    pub async fn attach_held(&self, run_id: Uuid, reason: &str) -> Result<LiveHandle, String> {
        let session = self
            .holds
            .borrow()
            .get(&run_id)
            .map(|h| h.session())
            .ok_or("the run holds no browser profile (payload.browser_profile)")?;
        let page = {
            let guard = session.chromium.lock().await;
            let chromium = guard
                .as_ref()
                .ok_or("the profile's browser is not running")?;
            let tabs = chromium
                .browser
                .execute(GetTargetsParams::default())
                .await
                .map_err(|e| e.to_string())?
                .result
                .target_infos;
            let newest = tabs
                .iter()
                .filter(|t| is_tab(t))
                .max_by_key(|t| t.url != "about:blank")
                .ok_or("the program has no page open")?;
            chromium
                .browser
                .get_page(newest.target_id.clone())
                .await
                .map_err(|e| e.to_string())?
        };
        self.attach_live(&session, run_id, &page, reason, true)
            .await
    }

    /// Starts a view's task; `after` runs once it has ended.
    fn start_view(
        &self,
        session: Rc<Session>,
        about: About,
        page: Page,
        streams: TargetStreams,
        tabs: Vec<TargetInfo>,
        after: impl std::future::Future<Output = ()> + 'static,
    ) -> LiveHandle {
        let died = session.deaths.subscribe();
        let (input, inputs) = mpsc::channel(INPUT_QUEUE);
        let shared = Arc::new(Shared {
            frame: watch::channel(None).0,
            state: watch::channel(PageState::default()).0,
            ended: watch::channel(None).0,
            viewers: watch::channel(0).0,
        });
        let handle = LiveHandle {
            id: about.id,
            profile: session.profile.clone(),
            opened_by: about.opened_by.clone(),
            started_at: Utc::now(),
            run_id: about.run_id,
            reason: about.reason.clone(),
            input,
            shared: shared.clone(),
            drivers: Default::default(),
        };
        self.lives.borrow_mut().insert(about.id, handle.clone());
        let lives = self.lives.clone();
        let mut view = View {
            session,
            shared,
            page,
            frames: None,
            seq: 0,
            tabs,
            about,
            fronted: Default::default(),
        };
        tokio::task::spawn_local(async move {
            view.start_screencast().await;
            view.publish_state();
            let why = view.run(inputs, streams, died).await;
            // The frame is dropped with the view; only the reason stays.
            view.shared.frame.send_replace(None);
            after.await;
            view.shared.ended.send_replace(Some(why));
            lives.borrow_mut().remove(&view.about.id);
            tracing::info!(live_id = %view.about.id, profile = %view.session.profile, reason = why.as_str(), "live view ended");
        });
        handle
    }

    /// The live views of this pool that have not ended, oldest first.
    pub fn live_views(&self) -> Vec<LiveHandle> {
        let mut views: Vec<LiveHandle> = self
            .lives
            .borrow()
            .values()
            .filter(|h| h.ended().is_none())
            .cloned()
            .collect();
        views.sort_by_key(|h| h.started_at);
        views
    }

    /// The view's first page (with the profile's identity, as its runs get), the browser's
    /// target events, and its tabs.
    async fn live_page(
        &self,
        profile: &str,
        url: Option<&str>,
    ) -> Result<(Page, TargetStreams, Vec<TargetInfo>), RunFailure> {
        let fail = |message: String| RunFailure {
            kind: RunErrorKind::BrowserPage,
            message,
        };
        let session = self.session(profile);
        let guard = session.chromium.lock().await;
        let chromium = guard
            .as_ref()
            .ok_or_else(|| fail("the profile's browser is not running".into()))?;
        let browser = &chromium.browser;
        let streams = TargetStreams::of(browser).await?;
        let setup = PageSetup {
            user_agent: None,
            locale: "en-US",
            viewport: None,
            timezone: None,
        };
        let page = tokio::time::timeout(
            self.cfg.launch_timeout,
            self.open_page(chromium, &session, &setup),
        )
        .await
        .map_err(|_| fail("opening a page took longer than browser.launch_timeout".into()))??;
        if let Some(url) = url {
            let _ = page.execute(NavigateParams::new(url.to_string())).await;
        }
        let mut tabs: Vec<TargetInfo> = browser
            .execute(GetTargetsParams::default())
            .await
            .map(|r| r.result.target_infos)
            .unwrap_or_default()
            .into_iter()
            .filter(is_tab)
            .collect();
        // The blank tab Chromium starts with is nobody's: closed, not shown.
        for blank in tabs
            .iter()
            .filter(|t| t.url == "about:blank" && t.target_id != *page.target_id())
        {
            let _ = browser
                .execute(CloseTargetParams::new(blank.target_id.clone()))
                .await;
        }
        tabs.retain(|t| t.url != "about:blank" || t.target_id == *page.target_id());
        Ok((page, streams, tabs))
    }
}

pub(super) fn is_tab(t: &TargetInfo) -> bool {
    t.r#type == "page" && !t.url.starts_with("chrome://") && !t.url.starts_with("devtools://")
}

/// The browser's target events, for the tabs.
pub(super) struct TargetStreams {
    pub(super) created: EventStream<EventTargetCreated>,
    pub(super) destroyed: EventStream<EventTargetDestroyed>,
    pub(super) changed: EventStream<EventTargetInfoChanged>,
}

impl TargetStreams {
    async fn of(browser: &chromiumoxide::Browser) -> Result<Self, RunFailure> {
        let fail = |e: chromiumoxide::error::CdpError| RunFailure {
            kind: RunErrorKind::BrowserPage,
            message: e.to_string(),
        };
        Ok(TargetStreams {
            created: browser.event_listener().await.map_err(fail)?,
            destroyed: browser.event_listener().await.map_err(fail)?,
            changed: browser.event_listener().await.map_err(fail)?,
        })
    }
}

/// Opens the live view of a run's page (`hand_over`), for the engine.
pub trait LiveHost {
    fn attach<'a>(
        &'a self,
        page: &'a Page,
        reason: &'a str,
    ) -> futures_util::future::LocalBoxFuture<'a, Result<LiveHandle, String>>;
}

/// A run's pool and session, as its live host.
pub(in crate::browser) struct RunLive<'a> {
    pub pool: &'a Pool,
    pub session: &'a Rc<Session>,
    pub run_id: Uuid,
}

impl LiveHost for RunLive<'_> {
    fn attach<'a>(
        &'a self,
        page: &'a Page,
        reason: &'a str,
    ) -> futures_util::future::LocalBoxFuture<'a, Result<LiveHandle, String>> {
        Box::pin(
            self.pool
                .attach_live(self.session, self.run_id, page, reason, false),
        )
    }
}

/// Whose view it is.
pub(super) struct About {
    pub(super) id: Uuid,
    pub(super) opened_by: String,
    pub(super) run_id: Option<Uuid>,
    pub(super) reason: Option<String>,
    /// A person's own view, holding the profile: it ends by itself after this long without
    /// input, or when nobody watches it. None: a run's view, which the run ends.
    pub(super) alone: Option<Duration>,
    /// Every tab of the browser is shown (it is the view's, or a command run's alone); else
    /// only the page and the tabs it opens.
    pub(super) all_tabs: bool,
}
