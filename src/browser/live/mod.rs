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
//!
//! Here: the protocol's types and the handle the API holds; `open.rs` opens views (a
//! person's, a run's page, a command run's held browser) and keeps the pool's registry;
//! `view.rs` is a view's task (screencast out, input in, tabs, its end).

mod open;
mod view;

pub use open::LiveHost;
pub(in crate::browser) use open::RunLive;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    use super::view::key_event;
    use super::*;
    use chromiumoxide::cdp::browser_protocol::input::DispatchKeyEventType;

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
