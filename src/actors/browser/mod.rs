//! The `browser_pool` actor: owns the browser [`Pool`](crate::browser::Pool) of this node and
//! supervises one [`BrowserSession`] actor per profile. `RunBrowser` goes to the profile's
//! session, which runs the script in the profile's browser (concurrently with its other
//! runs). A session **fails** when its browser dies (a run finds it dead, or its CDP handler
//! ends while idle) or when a handler panics; the pool notices through the session's death
//! watch and starts a new one at once (the next run relaunches Chromium with the profile),
//! unless the profile's session failed `SESSION_MAX_FAILURES` times within
//! `SESSION_WINDOW`: then its runs are refused (`browser_unavailable`, retried per their
//! job) until the window has passed. Idle browsers are closed every few seconds; on stop
//! every browser is closed and reaped.
//!
//! Rehydration: profiles live on disk under `<state_dir>/profiles` and in the
//! `browser_sessions` table (state, pid, launch / crash / run counts). At start the pool
//! kills Chromium processes an earlier overseer left on our profiles, closes the rows whose
//! Chromium is gone (`running` → `closed`), records profiles found on disk, and then writes every
//! launch, close, death and run of its browsers there, in order, from one recorder task. A
//! browser is launched on demand, so a restarted pool starts empty and relaunches profiles
//! (with their cookies) when runs need them. A pool that dies leaves no Chromium behind:
//! each process is killed with its group when its handle drops.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

mod recorder;
mod session;

use self::recorder::record_sessions;
pub use self::session::BrowserSession;
use self::session::RunInSession;
use super::{Deps, REHYDRATE_RETRY};
use crate::browser::live::LiveHandle;
use crate::browser::politeness::PolitenessConfig;
use crate::browser::{BrowserRun, Held, Pool, PoolConfig, RunFailure, RunOutcome};
use crate::db::browser_sessions;
use crate::jobs::run_error::RunErrorKind;
use crate::supervisor::policy::Intensity;
use crate::supervisor::Lifeline;
use crate::telemetry::names;

pub const NAME: &str = "browser_pool";
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// Run a script.
#[derive(Message)]
#[rtype(result = "Result<RunOutcome, RunFailure>")]
pub struct RunBrowser(pub BrowserRun);

/// Hold a profile for a command run (its browser for that run alone; see `browser::Held`).
#[derive(Message)]
#[rtype(result = "Result<Held, RunFailure>")]
pub struct HoldProfile {
    pub run_id: uuid::Uuid,
    pub profile: String,
}

/// The command run is over: close the held profile's browser and free it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseProfile(pub uuid::Uuid);

/// Open a live view of a profile (`browser::live`): it holds the profile until it ends.
#[derive(Message)]
#[rtype(result = "Result<LiveHandle, RunFailure>")]
pub struct OpenLive {
    pub id: uuid::Uuid,
    pub profile: String,
    pub url: Option<String>,
    pub opened_by: String,
}

/// A live view of the browser a command run holds (its program asked for a person).
#[derive(Message)]
#[rtype(result = "Result<LiveHandle, String>")]
pub struct AttachHeld {
    pub run_id: uuid::Uuid,
    pub reason: String,
}

/// The live views of this node that have not ended, oldest first.
#[derive(Message)]
#[rtype(result = "Vec<LiveHandle>")]
pub struct LiveViews;

/// Cancel a run in progress (its job timed out, or it was rescued as a zombie): its page
/// is closed and its browser freed for the next run.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelBrowserRun(pub uuid::Uuid);

pub struct BrowserPool {
    deps: Deps,
    lifeline: Lifeline,
    pool: Option<Rc<Pool>>,
    sessions: HashMap<String, SessionEntry>,
    /// Session failures per profile (the supervisor's intensity window, keyed by profile).
    failures: Intensity<String>,
    stopping: bool,
}

/// A profile's session as its supervisor sees it.
#[derive(Default)]
struct SessionEntry {
    addr: Option<Addr<BrowserSession>>,
    /// Generation of the current actor (a late death notice of an older one is ignored).
    generation: u64,
}

/// Restart intensity per profile: this many session failures within the window ...
const SESSION_MAX_FAILURES: usize = 5;
/// ... and the profile's runs are refused until the window has passed.
const SESSION_WINDOW: Duration = Duration::from_secs(60);

impl BrowserPool {
    pub fn new(deps: &Deps, lifeline: Lifeline) -> Self {
        Self {
            deps: deps.clone(),
            lifeline,
            pool: None,
            sessions: HashMap::new(),
            failures: Intensity::new(SESSION_WINDOW),
            stopping: false,
        }
    }

    /// The profile's session, started when it has none; None while the profile is over its
    /// restart intensity (or the pool is stopping).
    fn session(
        &mut self,
        profile: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Addr<BrowserSession>, RunFailure> {
        let unavailable = |message: String| RunFailure {
            kind: RunErrorKind::BrowserUnavailable,
            message,
        };
        let Some(pool) = self.pool.clone() else {
            return Err(unavailable("the browser pool is starting".into()));
        };
        if self.stopping {
            return Err(unavailable("the browser pool is stopping".into()));
        }
        let entry = self.sessions.entry(profile.to_string()).or_default();
        if let Some(addr) = entry.addr.as_ref().filter(|a| a.connected()) {
            return Ok(addr.clone());
        }
        let failures = self.failures.of(&profile.to_string(), Instant::now());
        if failures >= SESSION_MAX_FAILURES {
            return Err(unavailable(format!(
                "profile {profile}'s browser session failed {failures} times within {}s; runs \
                 resume when the oldest failure is that old",
                SESSION_WINDOW.as_secs()
            )));
        }
        entry.generation += 1;
        let addr = BrowserSession {
            profile: profile.to_string(),
            pool,
            parent: ctx.address(),
            generation: entry.generation,
            failure: Default::default(),
        }
        .start();
        entry.addr = Some(addr.clone());
        Ok(addr)
    }
}

impl BrowserPool {
    /// Rehydration, off the event loop: kill browsers an earlier overseer (killed with -9)
    /// left on our profiles (they would hold the profiles' locks), then reconcile the
    /// `browser_sessions` rows of this machine with the profiles on disk. Only then is the
    /// pool built, its address published and ready reported; a failure retries.
    fn rehydrate(&mut self, executable: Option<PathBuf>, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let profiles = self.deps.config.state_path("profiles");
        ctx.spawn(
            async move {
                let dir = profiles.clone();
                let (leftovers, on_disk) = tokio::task::spawn_blocking(move || {
                    let leftovers = crate::browser::process::reap_leftovers(&dir);
                    let on_disk = std::fs::read_dir(&dir)
                        .map(|d| {
                            d.flatten()
                                .filter(|e| e.path().is_dir())
                                .filter_map(|e| e.file_name().into_string().ok())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    (leftovers, on_disk)
                })
                .await
                .unwrap_or_default();
                let host = super::node::hostname();
                let rehydrated = db
                    .run(move |c| {
                        browser_sessions::rehydrate(c, &host, &on_disk, |pid| {
                            !crate::browser::process::process_gone(pid)
                        })
                    })
                    .await;
                (leftovers, rehydrated)
            }
            .into_actor(self)
            .map(move |(leftovers, rehydrated), act, ctx| {
                if leftovers > 0 {
                    tracing::warn!(
                        actor = NAME,
                        killed = leftovers,
                        "killed Chromium processes left by an earlier run"
                    );
                }
                match rehydrated {
                    Ok((closed, rows)) => {
                        tracing::info!(
                            actor = NAME,
                            profiles = rows.len(),
                            closed_leftovers = closed,
                            "browser sessions rehydrated"
                        );
                        act.start_pool(executable, ctx);
                    }
                    Err(e) => {
                        tracing::warn!(actor = NAME, error = %e, "reading browser_sessions failed; retrying");
                        ctx.run_later(REHYDRATE_RETRY, move |act, ctx| {
                            act.rehydrate(executable, ctx)
                        });
                    }
                }
            }),
        );
    }

    fn start_pool(&mut self, executable: Option<PathBuf>, ctx: &mut Context<Self>) {
        let c = self.deps.config.clone();
        let (events, recorded) = tokio::sync::mpsc::unbounded_channel();
        actix_rt::spawn(record_sessions(
            self.deps.db.clone(),
            self.deps.node_id,
            recorded,
        ));
        self.pool = Some(Rc::new(Pool::new(
            PoolConfig {
                executable: executable.unwrap_or_else(|| PathBuf::from("chromium")),
                profiles_dir: c.state_path("profiles"),
                artifacts_dir: c.state_path("artifacts"),
                max_browsers: c.browser.max_browsers as usize,
                max_pages: c.browser.max_pages as usize,
                idle_timeout: c.browser.idle_timeout,
                launch_timeout: c.browser.launch_timeout,
                step_timeout: c.browser.step_timeout,
                stealth: {
                    let flags = self.deps.flags.clone();
                    crate::browser::Stealth::by(move |profile| {
                        flags.on_for(crate::flags::Name::AntiDetection, profile)
                    })
                },
                politeness: PolitenessConfig {
                    min_interval: c.browser.min_navigation_interval,
                    per_domain: c
                        .browser
                        .navigation_intervals
                        .iter()
                        .map(|(d, i)| (d.clone(), **i))
                        .collect(),
                    robots_txt: c.browser.robots_txt,
                    robots_user_agent: c.browser.robots_user_agent.clone(),
                },
            },
            Some(events),
        )));
        self.deps.directory.set_browser_pool(ctx.address());
        self.lifeline.ready();
    }
}

impl Actor for BrowserPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let c = self.deps.config.clone();
        let executable = if c.browser.executable.is_empty() {
            crate::browser::process::find_executable()
        } else {
            Some(PathBuf::from(&c.browser.executable))
        };
        match &executable {
            Some(path) => tracing::info!(actor = NAME, chromium = %path.display(), anti_detection = self.deps.flags.view(crate::flags::Name::AntiDetection).percent, "browser pool ready"),
            None => tracing::warn!(actor = NAME, "no chromium on PATH (browser.executable): browser jobs will fail until it is installed"),
        }
        if !self.deps.flags.on(crate::flags::Name::AntiDetection) {
            tracing::warn!(
                actor = NAME,
                percent = self
                    .deps
                    .flags
                    .view(crate::flags::Name::AntiDetection)
                    .percent,
                "flag anti_detection is off (or partly rolled out): pages see an automated browser"
            );
        }
        self.rehydrate(executable, ctx);
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
    type Result = ResponseFuture<Result<RunOutcome, RunFailure>>;

    fn handle(&mut self, msg: RunBrowser, ctx: &mut Self::Context) -> Self::Result {
        let session = self.session(&msg.0.profile, ctx);
        Box::pin(async move {
            match session?.send(RunInSession(msg.0)).await {
                Ok(result) => result,
                // The session died under the run (a panic): its job retries it.
                Err(_) => Err(RunFailure {
                    kind: RunErrorKind::BrowserCrashed,
                    message: "the profile's browser session failed during the run".into(),
                }),
            }
        })
    }
}

/// A session ended (its death watch fired).
#[derive(Message)]
#[rtype(result = "()")]
struct SessionDown {
    profile: String,
    generation: u64,
    reason: String,
}

impl Handler<SessionDown> for BrowserPool {
    type Result = ();
    fn handle(&mut self, msg: SessionDown, _: &mut Self::Context) {
        if self.stopping {
            return;
        }
        let Some(entry) = self.sessions.get_mut(&msg.profile) else {
            return;
        };
        // A late notice of an older session still counts; only the current one is replaced.
        if entry.generation == msg.generation {
            entry.addr = None;
        }
        let now = Instant::now();
        self.failures.record(msg.profile.clone(), now);
        let recent_failures = self.failures.of(&msg.profile, now);
        metrics::counter!(names::BROWSER_SESSION_RESTARTS).increment(1);
        // The next run starts the new session; a dead browser is reaped and replaced then.
        tracing::warn!(
            actor = NAME,
            profile = %msg.profile,
            reason = %msg.reason,
            recent_failures,
            "browser session failed; restarted"
        );
    }
}

impl Handler<CancelBrowserRun> for BrowserPool {
    type Result = bool;
    fn handle(&mut self, msg: CancelBrowserRun, _: &mut Self::Context) -> bool {
        let cancelled = self.pool.as_ref().is_some_and(|p| p.cancel(msg.0));
        if cancelled {
            tracing::warn!(actor = NAME, run_id = %msg.0, "browser run cancelled; its page is closed");
        }
        cancelled
    }
}

impl Handler<HoldProfile> for BrowserPool {
    type Result = ResponseActFuture<Self, Result<Held, RunFailure>>;

    fn handle(&mut self, msg: HoldProfile, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let stopping = self.stopping;
        Box::pin(
            async move {
                match pool {
                    Some(pool) if !stopping => pool.hold(msg.run_id, &msg.profile).await,
                    _ => Err(RunFailure {
                        kind: RunErrorKind::BrowserUnavailable,
                        message: "the browser pool is starting or stopping".into(),
                    }),
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<ReleaseProfile> for BrowserPool {
    type Result = ();
    fn handle(&mut self, msg: ReleaseProfile, ctx: &mut Self::Context) {
        if let Some(pool) = self.pool.clone() {
            ctx.spawn(
                async move {
                    pool.release(msg.0).await;
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<OpenLive> for BrowserPool {
    type Result = ResponseActFuture<Self, Result<LiveHandle, RunFailure>>;

    fn handle(&mut self, msg: OpenLive, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone().filter(|_| !self.stopping);
        let idle = self.deps.config.browser.live_idle;
        Box::pin(
            async move {
                let Some(pool) = pool else {
                    return Err(RunFailure {
                        kind: RunErrorKind::BrowserUnavailable,
                        message: "the browser pool is starting or stopping".into(),
                    });
                };
                Pool::open_live(pool, msg.id, &msg.profile, msg.url, msg.opened_by, idle).await
            }
            .into_actor(self)
            .map(|opened, act, ctx| {
                if let Ok(handle) = &opened {
                    // When it ends, its audit row gets its end.
                    let (handle, db) = (handle.clone(), act.deps.db.clone());
                    ctx.spawn(
                        async move {
                            let why = handle.wait_ended().await;
                            let id = handle.id;
                            let recorded = db
                                .run(move |c| {
                                    crate::db::audit::finish_live(c, id, Utc::now(), why.as_str())
                                })
                                .await;
                            if let Err(e) = recorded {
                                tracing::warn!(actor = NAME, live_id = %id, error = %e, "the live view's end was not written to its audit row");
                            }
                        }
                        .into_actor(act),
                    );
                }
                opened
            }),
        )
    }
}

impl Handler<AttachHeld> for BrowserPool {
    type Result = ResponseActFuture<Self, Result<LiveHandle, String>>;
    fn handle(&mut self, msg: AttachHeld, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(
            async move {
                match pool {
                    Some(pool) => pool.attach_held(msg.run_id, &msg.reason).await,
                    None => Err("the browser pool is starting".into()),
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<LiveViews> for BrowserPool {
    type Result = Vec<LiveHandle>;
    fn handle(&mut self, _: LiveViews, _: &mut Self::Context) -> Vec<LiveHandle> {
        self.pool
            .as_ref()
            .map(|p| p.live_views())
            .unwrap_or_default()
    }
}

impl BrowserPool {
    /// `StopChild`: see [`crate::supervised_actor`].
    fn stop_child(&mut self, ctx: &mut Context<Self>) {
        self.stopping = true;
        for view in self.pool.iter().flat_map(|p| p.live_views()) {
            view.end();
        }
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

crate::supervised_actor!(BrowserPool, stop = stop_child);
