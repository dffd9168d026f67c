//! A view's task: the screencast out, the person's input in, the tabs, and when it ends.

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
use chromiumoxide::cdp::browser_protocol::target::{TargetId, TargetInfo};
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::open::{is_tab, About, TargetStreams};
use super::*;
use crate::browser::Session;

/// The view's task state.
pub(super) struct View {
    pub(super) session: Rc<Session>,
    pub(super) shared: Arc<Shared>,
    /// The tab shown.
    pub(super) page: Page,
    pub(super) frames: Option<EventStream<EventScreencastFrame>>,
    pub(super) seq: u64,
    pub(super) tabs: Vec<TargetInfo>,
    pub(super) about: About,
    /// The tabs brought to the front when they opened.
    pub(super) fronted: std::collections::HashSet<TargetId>,
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
    pub(super) async fn run(
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
                        let info_id = info.target_id.clone();
                        let opened_here = info.opener_id.is_some();
                        self.tabs.push(info);
                        if opened_here {
                            self.bring_forward(&info_id).await;
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
                    let id = info.target_id.clone();
                    let opened_here = info.opener_id.is_some();
                    if let Some(t) = self.tabs.iter_mut().find(|t| t.target_id == id) {
                        *t = info;
                        // Not shown yet (the browser had not attached it): now.
                        if opened_here {
                            self.bring_forward(&id).await;
                        }
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

    pub(super) async fn start_screencast(&mut self) {
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

    /// A popup or a link opened in a new tab comes to the front once, as in a browser (tried
    /// again on the tab's next change while the browser has not attached it yet).
    async fn bring_forward(&mut self, id: &TargetId) {
        if !self.fronted.contains(id) && self.show(id).await.is_ok() {
            self.fronted.insert(id.clone());
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
                    p.accept_language = Some(crate::browser::stealth::accept_language("en-US"));
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

    pub(super) fn publish_state(&self) {
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
pub(super) fn key_event(
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
