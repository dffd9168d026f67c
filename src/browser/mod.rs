//! Browser sessions: the only module that imports chromiumoxide.
//!
//! A [`Pool`] keeps one Chromium per **profile** (a persistent `user-data-dir` under
//! `<state_dir>/profiles/<name>`, so cookies and logins survive restarts of overseer and of
//! Chromium). A `browser` run takes a fresh page in its profile's browser, installs the
//! anti-detection script when the flag is on, runs its steps ([`steps`]), and closes the
//! page. Browsers unused for `idle_timeout` are closed cleanly and relaunched on demand; a
//! browser that died (killed, crashed, connection lost) is noticed through its CDP handler
//! and replaced on the next run; the run that was using it fails and is retried per its job.
//! The `browser_pool` actor (actors/browser.rs) owns the pool.

mod artifacts;
pub mod engine;
mod hold;
mod input;
pub mod live;
mod page_js;
pub mod politeness;
pub mod process;
mod run;
pub mod script;
pub mod stealth;
mod world;

pub use artifacts::prune_artifacts;
pub use hold::Held;
use run::connection_lost;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetFocusEmulationEnabledParams, SetLocaleOverrideParams,
    SetTimezoneOverrideParams, SetUserAgentOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::page::{
    SetWebLifecycleStateParams, SetWebLifecycleStateState,
};
use serde_json::{json, Value};
use uuid::Uuid;

use self::engine::{Env, ScriptOutput};
use self::process::{Chromium, LaunchOptions};
use self::script::Step;
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::secrets::scrub;
use crate::telemetry::names;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    #[error("cannot launch Chromium: {0}")]
    Launch(String),
    /// Chromium started and died before it was ready (seen rarely, under load: started
    /// again once).
    #[error("cannot launch Chromium: {0}")]
    Crashed(String),
}

/// Settings of the pool (from `[browser]` and the flags).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub executable: PathBuf,
    pub profiles_dir: PathBuf,
    pub artifacts_dir: PathBuf,
    pub max_browsers: usize,
    /// Pages one browser has open for runs at once (more runs wait for a slot).
    pub max_pages: usize,
    pub idle_timeout: Duration,
    pub launch_timeout: Duration,
    pub step_timeout: Duration,
    /// Whether a profile's browser hides automation (decided at each launch).
    pub stealth: Stealth,
    pub politeness: politeness::PolitenessConfig,
}

/// Anti-detection per profile: the `anti_detection` flag as it is now (a runtime override
/// may roll it out to a share of the profiles), asked each time a profile's browser starts.
#[derive(Clone)]
pub struct Stealth(std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl Stealth {
    pub fn always(on: bool) -> Self {
        Stealth(std::sync::Arc::new(move |_| on))
    }
    pub fn by(decide: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Stealth(std::sync::Arc::new(decide))
    }
    pub fn for_profile(&self, profile: &str) -> bool {
        (self.0)(profile)
    }
}

impl std::fmt::Debug for Stealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stealth(per profile)")
    }
}

/// One run of a script.
#[derive(Clone)]
pub struct BrowserRun {
    pub run_id: Uuid,
    pub profile: String,
    /// Parsed once per version of the job's script (`kinds::browser`), shared.
    pub steps: std::sync::Arc<Vec<Step>>,
    pub viewport: Option<(u32, u32)>,
    pub user_agent: Option<String>,
    pub locale: String,
    pub timezone: Option<String>,
    pub step_timeout: Option<Duration>,
    /// The secrets the script names, resolved.
    pub secrets: BTreeMap<String, String>,
    /// How `consume` steps count (None: the script has none, or no quota counter).
    pub consume: Option<script::Consumer>,
    /// Where `once` blocks record their keys (None: the script has none).
    pub once: Option<std::sync::Arc<dyn script::OnceLedger>>,
    /// Where `notify` steps go (None: the script has none).
    pub notify: Option<script::Notifier>,
    /// Where `hand_over` steps say the run waits for a person (None: the script has none).
    pub person: Option<std::sync::Arc<dyn script::Person>>,
    /// Template data: `job`, `run`, `now`, `today`.
    pub context: Value,
    /// The span the run's work belongs to (its trace, across the pool's actor): the pool's
    /// spans for this run are its children. `Span::none()` when there is none.
    pub span: tracing::Span,
}

/// What happened to a profile's browser, for whoever records it (the `browser_sessions`
/// table, written by the pool actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Launched {
        profile: String,
        pid: i32,
    },
    LaunchFailed {
        profile: String,
        error: String,
    },
    /// Closed by us (idle, room for another profile, shutdown).
    Closed {
        profile: String,
    },
    /// The browser died (killed, crashed, connection lost).
    Died {
        profile: String,
    },
    /// A renderer crashed; the browser lives on.
    RendererCrashed {
        profile: String,
    },
    /// A run finished in it.
    Used {
        profile: String,
    },
}

/// What a browser run produced: its output (the run's output as people read it) and, when
/// a `consume` step's quota said defer, when the run is to go on — typed, so nobody reads
/// it back out of the JSON.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub output: Value,
    pub deferred: Option<Deferral>,
}

/// A run to continue later, without using an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub until: chrono::DateTime<chrono::Utc>,
    pub reason: String,
}

/// Why a run failed: a stable kind and a message without secrets.
#[derive(Debug, Clone)]
pub struct RunFailure {
    pub kind: RunErrorKind,
    pub message: String,
}

struct Session {
    profile: String,
    chromium: tokio::sync::Mutex<Option<Chromium>>,
    alive: Rc<Cell<bool>>,
    in_use: Cell<usize>,
    last_used: Cell<Instant>,
    /// One permit per page a run may hold (`max_pages`).
    pages: tokio::sync::Semaphore,
    /// Pages a finished run left set up (user agent, locale, Runtime off) and parked (frozen: its
    /// document's scripts and timers stop), by locale: the next run with default settings
    /// takes one, wakes it and navigates it, instead of
    /// opening a new page (a warm session).
    idle_pages: RefCell<Vec<(String, chromiumoxide::Page)>>,
    /// With anti-detection: the user agent and its client hints every page gets (asked
    /// of the browser once per launch).
    identity: RefCell<Option<Rc<run::Identity>>>,
    /// Whether the running browser was launched with anti-detection.
    stealth: Cell<bool>,
    /// Browser runs share the profile (read); a command run holds it alone (write).
    exclusive: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Counts the deaths of this profile's browsers (a holder watches it).
    deaths: Rc<tokio::sync::watch::Sender<u64>>,
}

/// Idle pages kept per browser.
const MAX_IDLE_PAGES: usize = 2;

pub struct Pool {
    cfg: PoolConfig,
    sessions: RefCell<HashMap<String, Rc<Session>>>,
    /// Runs in progress, to cancel (a zombie rescued elsewhere, a job timeout).
    running: RefCell<HashMap<Uuid, futures_util::future::AbortHandle>>,
    politeness: politeness::Politeness,
    events: Option<tokio::sync::mpsc::UnboundedSender<SessionEvent>>,
    /// Profiles held by command runs, by run.
    holds: RefCell<HashMap<Uuid, hold::Hold>>,
    /// Holds waiting for their profile; true when the run was released meanwhile.
    pending_holds: RefCell<HashMap<Uuid, bool>>,
    /// The browser's full version (asked once, for the anti-detection user agent).
    version: RefCell<Option<String>>,
    /// Live views (a person's, or a run's own), until they end.
    lives: Rc<RefCell<HashMap<Uuid, live::LiveHandle>>>,
}

/// Marks a session busy for as long as it lives (also when the run's future is dropped).
struct Busy(Rc<Session>);

impl Busy {
    fn enter(s: &Rc<Session>) -> Self {
        s.in_use.set(s.in_use.get() + 1);
        s.last_used.set(Instant::now());
        Self(s.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_use.set(self.0.in_use.get().saturating_sub(1));
        self.0.last_used.set(Instant::now());
    }
}

/// Keeps a run cancellable while it lives (also when its future is dropped).
struct Registered<'a>(
    &'a RefCell<HashMap<Uuid, futures_util::future::AbortHandle>>,
    Uuid,
);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().remove(&self.1);
    }
}

/// Closes a run's page unless the run hands it back (parked or closed itself): a run
/// cancelled mid-step leaves no tab behind.
struct PageGuard(Option<chromiumoxide::Page>);

impl PageGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for PageGuard {
    fn drop(&mut self) {
        if let Some(page) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
                });
            }
        }
    }
}

impl Pool {
    /// A pool that reports its browsers' lifecycle on `events`.
    pub fn new(
        cfg: PoolConfig,
        events: Option<tokio::sync::mpsc::UnboundedSender<SessionEvent>>,
    ) -> Self {
        // No browser yet: the gauge says so from the start.
        metrics::gauge!(names::BROWSER_SESSIONS).set(0.0);
        Self {
            events,
            sessions: RefCell::new(HashMap::new()),
            running: RefCell::new(HashMap::new()),
            holds: RefCell::new(HashMap::new()),
            pending_holds: RefCell::new(HashMap::new()),
            version: RefCell::new(None),
            lives: Rc::new(RefCell::new(HashMap::new())),
            politeness: politeness::Politeness::new(cfg.politeness.clone()),
            cfg,
        }
    }

    fn tell(&self, event: SessionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// The session's browser is gone (told once, whoever notices first).
    fn mark_dead(&self, s: &Session) {
        if s.alive.replace(false) {
            self.tell(SessionEvent::Died {
                profile: s.profile.clone(),
            });
        }
    }

    fn launched(&self) -> usize {
        self.sessions
            .borrow()
            .values()
            .filter(|s| s.alive.get())
            .count()
    }

    fn publish(&self) {
        metrics::gauge!(names::BROWSER_SESSIONS).set(self.launched() as f64);
    }

    fn session(&self, profile: &str) -> Rc<Session> {
        self.sessions
            .borrow_mut()
            .entry(profile.to_string())
            .or_insert_with(|| {
                Rc::new(Session {
                    profile: profile.to_string(),
                    chromium: tokio::sync::Mutex::new(None),
                    alive: Rc::new(Cell::new(false)),
                    in_use: Cell::new(0),
                    last_used: Cell::new(Instant::now()),
                    stealth: Cell::new(false),
                    pages: tokio::sync::Semaphore::new(self.cfg.max_pages.max(1)),
                    idle_pages: RefCell::new(Vec::new()),
                    identity: RefCell::new(None),
                    exclusive: std::sync::Arc::new(tokio::sync::RwLock::new(())),
                    deaths: Rc::new(tokio::sync::watch::channel(0).0),
                })
            })
            .clone()
    }

    /// Makes room for one more browser: closes the least recently used idle one when the
    /// pool is full. Fails when every browser is busy.
    async fn make_room(&self, profile: &str) -> Result<(), RunFailure> {
        if self.launched() < self.cfg.max_browsers {
            return Ok(());
        }
        let victim = self
            .sessions
            .borrow()
            .iter()
            .filter(|(name, s)| name.as_str() != profile && s.alive.get() && s.in_use.get() == 0)
            .min_by_key(|(_, s)| s.last_used.get())
            .map(|(_, s)| s.clone());
        match victim {
            Some(s) => {
                self.close_session(&s).await;
                Ok(())
            }
            None => Err(RunFailure {
                kind: RunErrorKind::BrowserBusy,
                message: format!(
                    "all {} browsers are busy (browser.max_browsers)",
                    self.cfg.max_browsers
                ),
            }),
        }
    }

    /// Runs a script; see the module doc.
    pub async fn run(&self, r: BrowserRun) -> Result<RunOutcome, RunFailure> {
        let session = self.session(&r.profile);
        let busy = Busy::enter(&session);
        let (abort, registration) = futures_util::future::AbortHandle::new_pair();
        self.running.borrow_mut().insert(r.run_id, abort);
        let _registered = Registered(&self.running, r.run_id);
        let span = tracing::debug_span!(parent: &r.span, "browser.run", profile = %r.profile);
        let outcome = futures_util::future::Abortable::new(
            tracing::Instrument::instrument(
                async {
                    // Not while a command run holds the profile (waited for up to the run's
                    // own timeout).
                    let _shared = session.exclusive.read().await;
                    // A page slot in the profile's browser (browser.max_pages), waited for as
                    // long as a step may take.
                    let wait = r.step_timeout.unwrap_or(self.cfg.step_timeout);
                    let _slot = match tokio::time::timeout(wait, session.pages.acquire()).await {
                        Ok(Ok(permit)) => permit,
                        _ => {
                            return Err(RunFailure {
                                kind: RunErrorKind::BrowserBusy,
                                message: format!(
                            "no page free in profile {} within {wait:?} (browser.max_pages = {})",
                            r.profile, self.cfg.max_pages
                        ),
                            })
                        }
                    };
                    self.run_in(&session, &r).await
                },
                span,
            ),
            registration,
        )
        .await;
        let result = match outcome {
            Err(futures_util::future::Aborted) => Err(RunFailure {
                kind: RunErrorKind::Cancelled,
                message: "the run was cancelled (its page is closed)".into(),
            }),
            Ok(result) => result,
        };
        let result = match result {
            // A command cut off by the connection's end: the browser died under the run.
            Err(f)
                if f.kind == RunErrorKind::Browser
                    && (!session.alive.get() || connection_lost(&f.message)) =>
            {
                self.mark_dead(&session);
                Err(RunFailure {
                    kind: RunErrorKind::BrowserCrashed,
                    message: format!("the browser died during the run ({})", f.message),
                })
            }
            other => other,
        };
        drop(busy);
        self.publish();
        self.tell(SessionEvent::Used {
            profile: r.profile.clone(),
        });
        result.map_err(|f| RunFailure {
            kind: f.kind,
            message: scrub(&f.message, r.secrets.values()),
        })
    }

    /// Whether the profile's browser was launched and has died (not yet replaced).
    pub fn browser_dead(&self, profile: &str) -> bool {
        let Some(s) = self.sessions.borrow().get(profile).cloned() else {
            return false;
        };
        // A launch in progress holds the lock: not dead.
        let launched = s.chromium.try_lock().map(|g| g.is_some()).unwrap_or(false);
        launched && !s.alive.get()
    }

    /// Reaps the profile's browser if it died: its process group is killed and its pages
    /// forgotten; the next run launches a new one.
    pub async fn reap_dead(&self, profile: &str) {
        let Some(s) = self.sessions.borrow().get(profile).cloned() else {
            return;
        };
        let mut guard = s.chromium.lock().await;
        if guard.is_some() && !s.alive.get() {
            self.replace_dead(&s, &mut guard).await;
        }
    }

    /// Forgets a dead browser (counted once, here).
    async fn replace_dead(&self, session: &Session, guard: &mut Option<Chromium>) {
        metrics::counter!(names::BROWSER_CRASHES).increment(1);
        tracing::warn!(profile = %session.profile, "browser died; reaped, relaunched on the next run");
        if let Some(dead) = guard.take() {
            dead.close(Duration::from_millis(100)).await;
        }
        session.idle_pages.borrow_mut().clear();
        session.identity.borrow_mut().take();
        self.publish();
    }

    /// Cancels a run in progress (its future is dropped: its page closes); false if none.
    pub fn cancel(&self, run_id: Uuid) -> bool {
        match self.running.borrow_mut().remove(&run_id) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// Closes browsers idle for longer than `idle_timeout`, and idle browsers whose
    /// anti-detection no longer matches the flag (the next run launches it anew).
    pub async fn close_idle(&self) {
        let idle: Vec<Rc<Session>> = self
            .sessions
            .borrow()
            .values()
            .filter(|s| {
                s.alive.get()
                    && s.in_use.get() == 0
                    && (s.last_used.get().elapsed() >= self.cfg.idle_timeout
                        || s.stealth.get() != self.cfg.stealth.for_profile(&s.profile))
            })
            .cloned()
            .collect();
        for s in idle {
            self.close_session(&s).await;
        }
        self.publish();
    }

    /// Closes every browser (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Rc<Session>> = self.sessions.borrow().values().cloned().collect();
        for s in all {
            self.close_session(&s).await;
        }
        self.publish();
    }

    /// Process ids of the running browsers, by profile.
    pub fn pids(&self) -> Vec<(String, i32)> {
        self.sessions
            .borrow()
            .iter()
            .filter_map(|(name, s)| {
                let guard = s.chromium.try_lock().ok()?;
                guard.as_ref().map(|c| (name.clone(), c.pid()))
            })
            .collect()
    }
}

impl Pool {
    async fn close_session(&self, s: &Session) {
        let mut guard = s.chromium.lock().await;
        self.close_locked(s, &mut guard).await;
    }

    /// Closes the session's browser, its lock held by the caller.
    async fn close_locked(&self, s: &Session, guard: &mut Option<Chromium>) {
        s.idle_pages.borrow_mut().clear();
        s.identity.borrow_mut().take();
        // Not alive from here: its handler's end is ours, not a death.
        let was_alive = s.alive.replace(false);
        if let Some(c) = guard.take() {
            let pid = c.pid();
            c.close(Duration::from_secs(5)).await;
            tracing::info!(profile = %s.profile, pid, "browser closed");
            if was_alive {
                self.tell(SessionEvent::Closed {
                    profile: s.profile.clone(),
                });
            }
        }
    }
}
