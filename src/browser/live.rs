//! A live view: a person drives a profile's browser (the first login, a one-time code, a
//! checkpoint). The view **holds the profile** like a command run does (`hold.rs`): runs of
//! the profile wait until it ends. It streams the page as Chromium paints it
//! (`Page.startScreencast`: a frame only when something changed, so a still page costs
//! nothing) and turns the person's input into CDP input events, in the page the profile's
//! runs get (the same window, user agent and client hints: `open_page`).
//!
//! It ends on `done`, when no input came for `[browser] live_idle`, when nobody has watched
//! it for [`DETACH_GRACE`] (the page was closed), or when its browser dies; then its browser
//! is closed like a released hold's, and the profile's runs go on. The protocol (what
//! [`LiveInput`] and the events look like on the wire) is in `docs/LIVE.md`.
//!
//! Nothing here logs, keeps or returns what the person types or sees: frames live in memory
//! until the next one replaces them.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetUserAgentOverrideParams;
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams, DispatchMouseEventType,
    InsertTextParams, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::page::{
    EventScreencastFrame, GetNavigationHistoryParams, NavigateParams, NavigateToHistoryEntryParams,
    ReloadParams, ScreencastFrameAckParams, StartScreencastFormat, StartScreencastParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CloseTargetParams, EventTargetCreated, EventTargetDestroyed, EventTargetInfoChanged,
    GetTargetsParams, TargetId, TargetInfo,
};
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::run::PageSetup;
use super::{Pool, RunFailure, Session};
use crate::jobs::run_error::RunErrorKind;

/// A view nobody watches (its page closed, its stream dropped) ends after this long; a
/// viewer that reconnects within it (a phone that slept) finds it as it was.
pub const DETACH_GRACE: Duration = Duration::from_secs(15);

/// How long opening a view waits for the profile's runs to finish.
const HOLD_WAIT: Duration = Duration::from_secs(30);

/// Inputs queued per view before a sender waits.
const INPUT_QUEUE: usize = 256;

/// One input of the person (docs/LIVE.md). Coordinates are CSS pixels of the frame
/// (`width` × `height` of the latest frame event). No `Debug`: typed text is never printed.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LiveInput {
    /// A mouse button pressed or released, or the pointer moved (a touch is a left button).
    Mouse {
        action: MouseAction,
        x: f64,
        y: f64,
        #[serde(default)]
        button: Button,
        /// Buttons held during a move (1 left, 2 right, 4 middle).
        #[serde(default)]
        buttons: u8,
        /// 1 for a click, 2 for the second press of a double click.
        #[serde(default = "one")]
        clicks: u8,
        /// Alt 1, Ctrl 2, Meta 4, Shift 8.
        #[serde(default)]
        modifiers: u8,
    },
    /// The wheel turned over (x, y) by (dx, dy) pixels.
    Wheel {
        x: f64,
        y: f64,
        dx: f64,
        dy: f64,
    },
    /// A key pressed or released, by its DOM `key` ("a", "ж", "Enter", "ArrowDown").
    Key {
        action: KeyAction,
        key: String,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        modifiers: u8,
    },
    /// Text inserted at the caret (a paste, an input method's composition).
    Text {
        text: String,
    },
    /// The address bar: go to an http(s) address.
    Navigate {
        url: String,
    },
    Back,
    Forward,
    Reload,
    /// Show this tab (an id from the state event).
    Tab {
        id: String,
    },
    /// Close this tab (not the last one).
    CloseTab {
        id: String,
    },
    /// The person is done: the view ends and the profile's runs go on.
    Done,
}

fn one() -> u8 {
    1
}

#[derive(Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MouseAction {
    Down,
    Up,
    Move,
}

#[derive(Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Button {
    #[default]
    Left,
    Middle,
    Right,
    None,
}

#[derive(Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    Down,
    Up,
}

/// A picture of the page (event `frame`): a JPEG, base64, of `width` × `height` CSS pixels.
#[derive(Debug, Serialize)]
pub struct Frame {
    pub seq: u64,
    pub width: f64,
    pub height: f64,
    pub data: String,
}

/// The tabs and the one shown (event `state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PageState {
    /// A run's view (`hand_over`): the run that waits for the person, and why. Done then
    /// means Continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub url: String,
    pub title: String,
    pub active: String,
    pub tabs: Vec<Tab>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tab {
    pub id: String,
    pub url: String,
    pub title: String,
}

/// Why a view ended (event `ended`, and the audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The person pressed Done.
    Done,
    /// No input for `[browser] live_idle`.
    Idle,
    /// Nobody watched it for `DETACH_GRACE`, or its last tab closed.
    Closed,
    /// Its browser died.
    BrowserDied,
    /// overseer's browser pool stopped.
    Stopped,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Done => "done",
            Ended::Idle => "idle",
            Ended::Closed => "closed",
            Ended::BrowserDied => "browser_died",
            Ended::Stopped => "stopped",
        }
    }
}

/// What the view is doing, shared between its task and everyone holding its handle.
struct Shared {
    frame: watch::Sender<Option<Arc<Frame>>>,
    state: watch::Sender<PageState>,
    ended: watch::Sender<Option<Ended>>,
    viewers: watch::Sender<usize>,
}

/// A live view as the API sees it (Send: it crosses from the pool's thread to the HTTP
/// workers'). Cloned freely; the view lives in its task, not in the handle.
#[derive(Clone)]
pub struct LiveHandle {
    pub id: Uuid,
    pub profile: String,
    /// The token (or dashboard session's token) that opened it.
    pub opened_by: String,
    pub started_at: DateTime<Utc>,
    /// Set for a run's own view (`hand_over`): the run that waits, and why.
    pub run_id: Option<Uuid>,
    pub reason: Option<String>,
    input: mpsc::Sender<LiveInput>,
    shared: Arc<Shared>,
    /// Who has sent input so far (for a run's view, each gets an audit row).
    drivers: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// The view has ended; inputs go nowhere.
#[derive(Debug, thiserror::Error)]
#[error("the live view has ended ({0})")]
pub struct ViewEnded(pub &'static str);

impl LiveHandle {
    /// Queues the person's inputs, in order.
    pub async fn send(&self, inputs: Vec<LiveInput>) -> Result<(), ViewEnded> {
        for input in inputs {
            if let Some(why) = self.ended() {
                return Err(ViewEnded(why.as_str()));
            }
            self.input
                .send(input)
                .await
                .map_err(|_| ViewEnded(self.ended().unwrap_or(Ended::Stopped).as_str()))?;
        }
        Ok(())
    }

    /// True the first time `who` drives this view.
    pub fn first_input_by(&self, who: &str) -> bool {
        self.drivers
            .lock()
            .map(|mut d| d.insert(who.to_string()))
            .unwrap_or(false)
    }

    /// Ends the view (as `done` would), without waiting.
    pub fn end(&self) {
        let _ = self.input.try_send(LiveInput::Done);
    }

    pub fn ended(&self) -> Option<Ended> {
        *self.shared.ended.borrow()
    }

    /// Waits until the view ends.
    pub async fn wait_ended(&self) -> Ended {
        let mut rx = self.shared.ended.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                return Ended::Stopped;
            }
        }
    }

    /// Someone watches: the latest frame, the tabs and the end, each as it changes. The
    /// view counts its viewers while these live.
    pub fn watch(&self) -> Viewer {
        self.shared.viewers.send_modify(|n| *n += 1);
        Viewer {
            frame: self.shared.frame.subscribe(),
            state: self.shared.state.subscribe(),
            ended: self.shared.ended.subscribe(),
            shared: self.shared.clone(),
        }
    }

    pub fn viewers(&self) -> usize {
        *self.shared.viewers.borrow()
    }

    pub fn state(&self) -> PageState {
        self.shared.state.borrow().clone()
    }
}

/// One viewer's receivers (`LiveHandle::watch`).
pub struct Viewer {
    pub frame: watch::Receiver<Option<Arc<Frame>>>,
    pub state: watch::Receiver<PageState>,
    pub ended: watch::Receiver<Option<Ended>>,
    shared: Arc<Shared>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.shared
            .viewers
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Whether the address bar may go there: http(s) only (a `file:` or `chrome:` address
/// would show the server's files and settings), and `about:blank`. A bare host gets https.
pub fn address(input: &str) -> Result<String, String> {
    let input = input.trim();
    if input == "about:blank" {
        return Ok(input.to_string());
    }
    let with_scheme = if input.contains("://") {
        input.to_string()
    } else {
        format!("https://{input}")
    };
    match url::Url::parse(&with_scheme) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u.into()),
        Ok(u) => Err(format!(
            "only http and https addresses can be opened, not {}:",
            u.scheme()
        )),
        Err(e) => Err(format!("not an address: {e}")),
    }
}

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

fn is_tab(t: &TargetInfo) -> bool {
    t.r#type == "page" && !t.url.starts_with("chrome://") && !t.url.starts_with("devtools://")
}

/// The browser's target events, for the tabs.
struct TargetStreams {
    created: EventStream<EventTargetCreated>,
    destroyed: EventStream<EventTargetDestroyed>,
    changed: EventStream<EventTargetInfoChanged>,
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
pub(super) struct RunLive<'a> {
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
struct About {
    id: Uuid,
    opened_by: String,
    run_id: Option<Uuid>,
    reason: Option<String>,
    /// A person's own view, holding the profile: it ends by itself after this long without
    /// input, or when nobody watches it. None: a run's view, which the run ends.
    alone: Option<Duration>,
    /// Every tab of the browser is shown (it is the view's, or a command run's alone); else
    /// only the page and the tabs it opens.
    all_tabs: bool,
}

/// The view's task state.
struct View {
    session: Rc<Session>,
    shared: Arc<Shared>,
    /// The tab shown.
    page: Page,
    frames: Option<EventStream<EventScreencastFrame>>,
    seq: u64,
    tabs: Vec<TargetInfo>,
    about: About,
}

/// What woke the view.
enum Wake {
    Frame(Option<Arc<EventScreencastFrame>>),
    Input(Option<LiveInput>),
    Viewers,
    Created(TargetInfo),
    Destroyed(TargetId),
    Changed(TargetInfo),
    End(Ended),
}

impl View {
    async fn run(
        &mut self,
        mut inputs: mpsc::Receiver<LiveInput>,
        mut targets: TargetStreams,
        mut died: watch::Receiver<u64>,
    ) -> Ended {
        let mut viewers = self.shared.viewers.subscribe();
        let mut last_input = tokio::time::Instant::now();
        // Set while nobody watches (after someone did, or from the start).
        let mut unwatched: Option<tokio::time::Instant> = None;
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let idle = self.about.alone;
        loop {
            let frames = self.frames.as_mut();
            let wake = tokio::select! {
                f = async { match frames { Some(s) => s.next().await, None => std::future::pending().await } } => Wake::Frame(f),
                i = inputs.recv() => Wake::Input(i),
                r = viewers.changed() => if r.is_ok() { Wake::Viewers } else { Wake::End(Ended::Stopped) },
                Some(e) = targets.created.next() => Wake::Created(e.target_info.clone()),
                Some(e) = targets.destroyed.next() => Wake::Destroyed(e.target_id.clone()),
                Some(e) = targets.changed.next() => Wake::Changed(e.target_info.clone()),
                _ = died.changed() => Wake::End(Ended::BrowserDied),
                _ = tokio::time::sleep_until(idle.map(|i| last_input + i).unwrap_or(far)) => Wake::End(Ended::Idle),
                _ = tokio::time::sleep_until(unwatched.filter(|_| idle.is_some()).map(|t| t + DETACH_GRACE).unwrap_or(far)) => Wake::End(Ended::Closed),
            };
            match wake {
                Wake::End(why) => return why,
                Wake::Frame(Some(frame)) => self.frame(&frame).await,
                // The shown tab's session ended (closed): show another, if any is left.
                Wake::Frame(None) => {
                    self.frames = None;
                    let current = self.page.target_id().clone();
                    self.tabs.retain(|t| t.target_id != current);
                    if !self.show_any().await {
                        return Ended::Closed;
                    }
                }
                Wake::Input(None) => return Ended::Stopped,
                Wake::Input(Some(LiveInput::Done)) => return Ended::Done,
                Wake::Input(Some(input)) => {
                    last_input = tokio::time::Instant::now();
                    // A failed input (a tab that just closed, a navigation refused) is the
                    // person's to see on the page; the view goes on.
                    let _ = self.apply(input).await;
                }
                Wake::Viewers => {
                    let watched = *viewers.borrow_and_update() > 0;
                    unwatched = match (watched, unwatched) {
                        (true, _) => None,
                        (false, Some(since)) => Some(since),
                        (false, None) => Some(tokio::time::Instant::now()),
                    };
                }
                Wake::Created(info) => {
                    // A run's view shows the tabs its page opens, not its neighbours'.
                    let ours = self.about.all_tabs
                        || info
                            .opener_id
                            .as_ref()
                            .is_some_and(|o| self.tabs.iter().any(|t| t.target_id == *o));
                    if ours
                        && is_tab(&info)
                        && !self.tabs.iter().any(|t| t.target_id == info.target_id)
                    {
                        let opened_here = info.opener_id.is_some();
                        let id = info.target_id.clone();
                        self.tabs.push(info);
                        // A popup or a link opened in a new tab comes to the front, as in
                        // a browser.
                        if opened_here {
                            let _ = self.show(&id).await;
                        }
                        self.publish_state();
                    }
                }
                Wake::Destroyed(id) => {
                    let before = self.tabs.len();
                    self.tabs.retain(|t| t.target_id != id);
                    if id == *self.page.target_id() {
                        self.frames = None;
                        if !self.show_any().await {
                            return Ended::Closed;
                        }
                    } else if before != self.tabs.len() {
                        self.publish_state();
                    }
                }
                Wake::Changed(info) => {
                    if let Some(t) = self.tabs.iter_mut().find(|t| t.target_id == info.target_id) {
                        *t = info;
                        self.publish_state();
                    }
                }
            }
        }
    }

    /// A frame: shown to the viewers (replacing the last one), then acknowledged so that
    /// Chromium sends the next when the page changes again.
    async fn frame(&mut self, f: &EventScreencastFrame) {
        self.seq += 1;
        let data: &str = f.data.as_ref();
        self.shared.frame.send_replace(Some(Arc::new(Frame {
            seq: self.seq,
            width: f.metadata.device_width,
            height: f.metadata.device_height,
            data: data.to_string(),
        })));
        let _ = self
            .page
            .execute(ScreencastFrameAckParams::new(f.session_id))
            .await;
    }

    async fn start_screencast(&mut self) {
        self.frames = self
            .page
            .event_listener::<EventScreencastFrame>()
            .await
            .ok();
        let params = StartScreencastParams {
            format: Some(StartScreencastFormat::Jpeg),
            quality: Some(70),
            max_width: Some(1920),
            max_height: Some(1080),
            every_nth_frame: Some(1),
        };
        if let Err(e) = self.page.execute(params).await {
            tracing::warn!(profile = %self.session.profile, error = %e, "live view: the screencast did not start");
        }
    }

    /// Shows the first tab left; false when none is.
    async fn show_any(&mut self) -> bool {
        let Some(id) = self.tabs.first().map(|t| t.target_id.clone()) else {
            return false;
        };
        self.show(&id).await.is_ok()
    }

    /// Shows the tab `id`: the screencast moves there, with the profile's identity set on
    /// the tab (a tab the site opened got none).
    async fn show(&mut self, id: &TargetId) -> Result<(), String> {
        let page = {
            let guard = self.session.chromium.lock().await;
            let chromium = guard.as_ref().ok_or("the browser is not running")?;
            let page = chromium
                .browser
                .get_page(id.clone())
                .await
                .map_err(|e| e.to_string())?;
            if self.session.stealth.get() {
                let known = self.session.identity.borrow().clone();
                if let Some(identity) = known {
                    let mut p = SetUserAgentOverrideParams::new(identity.user_agent.clone());
                    p.accept_language = Some(super::stealth::accept_language("en-US"));
                    p.user_agent_metadata = identity.hints.clone();
                    let _ = page.execute(p).await;
                }
            }
            page
        };
        let old = std::mem::replace(&mut self.page, page);
        if *old.target_id() != *id {
            let _ = old
                .execute(
                    chromiumoxide::cdp::browser_protocol::page::StopScreencastParams::default(),
                )
                .await;
        }
        let _ = self.page.bring_to_front().await;
        self.start_screencast().await;
        self.publish_state();
        Ok(())
    }

    fn publish_state(&self) {
        let active = self.page.target_id();
        let shown = self.tabs.iter().find(|t| t.target_id == *active);
        let state = PageState {
            run_id: self.about.run_id,
            reason: self.about.reason.clone(),
            url: shown.map(|t| t.url.clone()).unwrap_or_default(),
            title: shown.map(|t| t.title.clone()).unwrap_or_default(),
            active: active.as_ref().to_string(),
            tabs: self
                .tabs
                .iter()
                .map(|t| Tab {
                    id: t.target_id.as_ref().to_string(),
                    url: t.url.clone(),
                    title: t.title.clone(),
                })
                .collect(),
        };
        self.shared.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// One input, as CDP input events or navigation of the shown tab.
    async fn apply(&mut self, input: LiveInput) -> Result<(), String> {
        let page = self.page.clone();
        let run = |e: chromiumoxide::error::CdpError| e.to_string();
        match input {
            LiveInput::Mouse {
                action,
                x,
                y,
                button,
                buttons,
                clicks,
                modifiers,
            } => {
                let kind = match action {
                    MouseAction::Down => DispatchMouseEventType::MousePressed,
                    MouseAction::Up => DispatchMouseEventType::MouseReleased,
                    MouseAction::Move => DispatchMouseEventType::MouseMoved,
                };
                let mut p = DispatchMouseEventParams::new(kind, x, y);
                p.button = Some(match (action, button) {
                    (MouseAction::Move, _) | (_, Button::None) => MouseButton::None,
                    (_, Button::Left) => MouseButton::Left,
                    (_, Button::Middle) => MouseButton::Middle,
                    (_, Button::Right) => MouseButton::Right,
                });
                p.buttons = Some(buttons as i64);
                if !matches!(action, MouseAction::Move) {
                    p.click_count = Some(clicks.max(1) as i64);
                }
                p.modifiers = (modifiers != 0).then_some(modifiers as i64);
                page.execute(p).await.map_err(run)?;
            }
            LiveInput::Wheel { x, y, dx, dy } => {
                let mut p = DispatchMouseEventParams::new(DispatchMouseEventType::MouseWheel, x, y);
                p.delta_x = Some(dx);
                p.delta_y = Some(dy);
                page.execute(p).await.map_err(run)?;
            }
            LiveInput::Key {
                action,
                key,
                code,
                modifiers,
            } => {
                page.execute(key_event(action, &key, code, modifiers))
                    .await
                    .map_err(run)?;
            }
            LiveInput::Text { text } => {
                page.execute(InsertTextParams::new(text))
                    .await
                    .map_err(run)?;
            }
            LiveInput::Navigate { url } => {
                let url = address(&url)?;
                // Not awaited: a slow site must not hold the person's other inputs.
                tokio::spawn(async move {
                    let _ = page.execute(NavigateParams::new(url)).await;
                });
            }
            LiveInput::Back | LiveInput::Forward => {
                let step: i64 = if matches!(input, LiveInput::Back) {
                    -1
                } else {
                    1
                };
                let history = page
                    .execute(GetNavigationHistoryParams::default())
                    .await
                    .map_err(run)?;
                let i = history.result.current_index + step;
                if let Some(entry) = usize::try_from(i)
                    .ok()
                    .and_then(|i| history.result.entries.get(i))
                {
                    page.execute(NavigateToHistoryEntryParams::new(entry.id))
                        .await
                        .map_err(run)?;
                }
            }
            LiveInput::Reload => {
                page.execute(ReloadParams::default()).await.map_err(run)?;
            }
            LiveInput::Tab { id } => {
                let id = TargetId::from(id);
                if self.tabs.iter().any(|t| t.target_id == id) {
                    self.show(&id).await?;
                }
            }
            LiveInput::CloseTab { id } => {
                let id = TargetId::from(id);
                if self.tabs.len() > 1 && self.tabs.iter().any(|t| t.target_id == id) {
                    let guard = self.session.chromium.lock().await;
                    if let Some(chromium) = guard.as_ref() {
                        if let Ok(tab) = chromium.browser.get_page(id).await {
                            let _ = tab.close().await;
                        }
                    }
                }
            }
            LiveInput::Done => {}
        }
        Ok(())
    }
}

/// A key event as a keyboard sends it: a printable key (no Ctrl, Alt or Meta held) types
/// its character, in any script; others are raw key downs ("Enter" still submits).
fn key_event(
    action: KeyAction,
    key: &str,
    code: Option<String>,
    modifiers: u8,
) -> DispatchKeyEventParams {
    let def = chromiumoxide::keys::get_key_definition(key);
    let commanding = modifiers & (1 | 2 | 4) != 0;
    let text = def
        .and_then(|d| d.text)
        .map(str::to_string)
        .or_else(|| (key.chars().count() == 1).then(|| key.to_string()))
        .filter(|_| !commanding);
    let kind = match (action, &text) {
        (KeyAction::Up, _) => DispatchKeyEventType::KeyUp,
        (KeyAction::Down, Some(_)) => DispatchKeyEventType::KeyDown,
        (KeyAction::Down, None) => DispatchKeyEventType::RawKeyDown,
    };
    let mut p = DispatchKeyEventParams::new(kind);
    p.key = Some(key.to_string());
    p.code = code.or_else(|| def.map(|d| d.code.to_string()));
    p.windows_virtual_key_code = def.map(|d| d.key_code);
    p.native_virtual_key_code = def.map(|d| d.key_code);
    p.modifiers = (modifiers != 0).then_some(modifiers as i64);
    if matches!(action, KeyAction::Down) {
        p.unmodified_text = text.clone();
        p.text = text;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_bar_opens_web_addresses_only() {
        assert_eq!(address("example.com").unwrap(), "https://example.com/");
        assert_eq!(
            address("http://127.0.0.1:8080/a?b=1").unwrap(),
            "http://127.0.0.1:8080/a?b=1"
        );
        assert_eq!(address("about:blank").unwrap(), "about:blank");
        for bad in [
            "file:///etc/passwd",
            "chrome://settings",
            "javascript:alert(1)",
            "view-source:http://x",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn printable_keys_type_their_character_in_any_script() {
        let p = key_event(KeyAction::Down, "ж", None, 0);
        assert_eq!(p.text.as_deref(), Some("ж"));
        assert!(matches!(p.r#type, DispatchKeyEventType::KeyDown));
        let p = key_event(KeyAction::Down, "a", None, 2);
        assert_eq!(p.text, None, "Ctrl+A types nothing");
        assert!(matches!(p.r#type, DispatchKeyEventType::RawKeyDown));
        let p = key_event(KeyAction::Down, "Enter", None, 0);
        assert_eq!(p.text.as_deref(), Some("\r"));
        assert_eq!(p.windows_virtual_key_code, Some(13));
        let p = key_event(KeyAction::Up, "a", None, 0);
        assert_eq!(p.text, None);
        assert!(matches!(p.r#type, DispatchKeyEventType::KeyUp));
    }

    #[test]
    fn inputs_parse_as_documented() {
        let inputs: Vec<LiveInput> = serde_json::from_str(
            r#"[{"type":"mouse","action":"down","x":10,"y":20},
                {"type":"wheel","x":1,"y":2,"dx":0,"dy":100},
                {"type":"key","action":"down","key":"Enter"},
                {"type":"text","text":"héllo"},
                {"type":"navigate","url":"example.com"},
                {"type":"back"},{"type":"tab","id":"ABC"},{"type":"done"}]"#,
        )
        .unwrap();
        assert_eq!(inputs.len(), 8);
        assert!(serde_json::from_str::<LiveInput>(r#"{"type":"mouse","x":1}"#).is_err());
        assert!(serde_json::from_str::<LiveInput>(r#"{"type":"fly"}"#).is_err());
    }
}
