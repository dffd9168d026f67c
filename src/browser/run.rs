//! One run in a profile's browser: a page (a parked one woken, or a new one with its
//! emulation), the script on it under the run's cancellation and crash watch, artifacts
//! saved, secrets scrubbed from the output.
//!
//! Why one file of ~620 lines: a run's page guard, its crash watch and its artifacts follow
//! one run from start to end, and splitting the run would pass them between files.

use super::artifacts::save_artifacts;
use super::*;

use crate::jobs::run_error::RunErrorKind;
use chromiumoxide::cdp::browser_protocol::target::SetAutoAttachParams;

/// The user agent and client hints an anti-detection session's pages get.
pub(super) struct Identity {
    pub user_agent: String,
    pub hints: Option<chromiumoxide::cdp::browser_protocol::emulation::UserAgentMetadata>,
}

/// What a browser is launched with.
pub(super) struct Launch<'a> {
    pub profile: &'a str,
    pub viewport: Option<(u32, u32)>,
    pub locale: &'a str,
}

impl<'a> Launch<'a> {
    fn of(r: &'a BrowserRun) -> Self {
        Self {
            profile: &r.profile,
            viewport: r.viewport,
            locale: &r.locale,
        }
    }
}

/// How a new page is set up: the job's own user agent (else the profile's identity), its
/// locale, viewport and timezone.
pub(super) struct PageSetup<'a> {
    pub user_agent: Option<&'a str>,
    pub locale: &'a str,
    pub viewport: Option<(u32, u32)>,
    pub timezone: Option<&'a str>,
}

impl<'a> PageSetup<'a> {
    fn of(r: &'a BrowserRun) -> Self {
        Self {
            user_agent: r.user_agent.as_deref(),
            locale: &r.locale,
            viewport: r.viewport,
            timezone: r.timezone.as_deref(),
        }
    }
}

impl Pool {
    /// Launches the profile's browser into `guard` (room made first: the least recently
    /// used idle browser closes when `max_browsers` are running).
    pub(super) async fn launch_into(
        &self,
        session: &Session,
        guard: &mut Option<Chromium>,
        r: &Launch<'_>,
    ) -> Result<(), RunFailure> {
        self.make_room(r.profile).await?;
        let alive = session.alive.clone();
        // Any launch failure (the version query for the flags, or Chromium itself): told
        // once, the same way.
        let failed = |e: BrowserError| {
            alive.set(false);
            self.tell(SessionEvent::LaunchFailed {
                profile: r.profile.to_string(),
                error: e.to_string(),
            });
            RunFailure {
                kind: RunErrorKind::BrowserLaunch,
                message: e.to_string(),
            }
        };
        let stealth = self.cfg.stealth.for_profile(r.profile);
        session.stealth.set(stealth);
        let flags = self.window_flags(r, stealth).await.map_err(failed)?;
        alive.set(true);
        let profile_dir = self.cfg.profiles_dir.join(r.profile);
        let opts = LaunchOptions {
            executable: &self.cfg.executable,
            profile_dir: &profile_dir,
            lang: r.locale,
            flags,
            timeout: self.cfg.launch_timeout,
        };
        // The handler ended while we still counted on the browser: it died.
        let on_exit = || {
            let (flag, deaths) = (alive.clone(), session.deaths.clone());
            let (events, profile) = (self.events.clone(), r.profile.to_string());
            move || {
                if flag.replace(false) {
                    deaths.send_modify(|n| *n += 1);
                    if let Some(tx) = events {
                        let _ = tx.send(SessionEvent::Died { profile });
                    }
                }
            }
        };
        let launched = match Chromium::launch(&opts, on_exit()).await {
            Err(BrowserError::Crashed(e)) => {
                tracing::warn!(profile = %r.profile, error = %e, "Chromium died while starting; starting it once more");
                Chromium::launch(&opts, on_exit()).await
            }
            other => other,
        }
        .map_err(failed)?;
        metrics::counter!(names::BROWSER_LAUNCHES).increment(1);
        tracing::info!(profile = %r.profile, pid = launched.pid(), "browser launched");
        self.tell(SessionEvent::Launched {
            profile: r.profile.to_string(),
            pid: launched.pid(),
        });
        *guard = Some(launched);
        self.publish();
        Ok(())
    }

    /// The launch flags of the window: with anti-detection the profile's own window and
    /// the browser's identity (`stealth::launch_flags`), else Chromium's defaults with the
    /// window the first run asks for.
    async fn window_flags(
        &self,
        r: &Launch<'_>,
        stealth: bool,
    ) -> Result<Vec<String>, BrowserError> {
        if !stealth {
            let (w, h) = r.viewport.unwrap_or((1280, 800));
            return Ok(vec![format!("--window-size={w},{h}")]);
        }
        let known = self.version.borrow().clone();
        let version = match known {
            Some(v) => v,
            None => {
                let v = process::version(&self.cfg.executable).await?;
                *self.version.borrow_mut() = Some(v.clone());
                v
            }
        };
        let window = stealth::Window::of_profile(r.profile);
        Ok(stealth::launch_flags(
            &window,
            &stealth::user_agent(&version),
            r.locale,
        ))
    }

    /// `open_page` bounded by `launch_timeout`; None when it took longer.
    async fn open_page_in_time(
        &self,
        chromium: &Chromium,
        session: &Session,
        r: &BrowserRun,
    ) -> Option<Result<chromiumoxide::Page, RunFailure>> {
        tokio::time::timeout(
            self.cfg.launch_timeout,
            self.open_page(chromium, session, &PageSetup::of(r)),
        )
        .await
        .ok()
    }

    /// A new page in the profile's browser, set up for the run (user agent,
    /// locale, viewport, timezone, crash reports, focus).
    pub(super) async fn open_page(
        &self,
        chromium: &Chromium,
        session: &Session,
        r: &PageSetup<'_>,
    ) -> Result<chromiumoxide::Page, RunFailure> {
        let browser_err = |e: chromiumoxide::error::CdpError| RunFailure {
            kind: RunErrorKind::BrowserPage,
            message: e.to_string(),
        };
        let page = chromium
            .browser
            .new_page("about:blank")
            .await
            .map_err(browser_err)?;
        // Closed again if its setup fails or takes too long.
        let mut guard = PageGuard(Some(page.clone()));
        if let Some(ua) = &r.user_agent {
            // The job's own user agent: sent as it is (its client hints are its business).
            let mut p = SetUserAgentOverrideParams::new(ua.to_string());
            p.accept_language = Some(stealth::accept_language(r.locale));
            page.execute(p).await.map_err(browser_err)?;
        } else if session.stealth.get() {
            let identity = self.identity(chromium, session).await?;
            let mut p = SetUserAgentOverrideParams::new(identity.user_agent.clone());
            p.accept_language = Some(stealth::accept_language(r.locale));
            p.user_agent_metadata = identity.hints.clone();
            page.execute(p).await.map_err(browser_err)?;
        }
        if let Some((w, h)) = r.viewport {
            page.execute(SetDeviceMetricsOverrideParams::new(
                w as i64, h as i64, 1.0, false,
            ))
            .await
            .map_err(browser_err)?;
        }
        let mut locale = SetLocaleOverrideParams::default();
        locale.locale = Some(r.locale.to_string());
        let _ = page.execute(locale).await;
        if let Some(tz) = &r.timezone {
            page.execute(SetTimezoneOverrideParams::new(tz.to_string()))
                .await
                .map_err(browser_err)?;
        }
        // Renderer crashes are reported through the Inspector domain.
        page.execute(chromiumoxide::cdp::browser_protocol::inspector::EnableParams::default())
            .await
            .map_err(browser_err)?;
        // Focused and visible, as a page in front is, also after being parked
        // (a frozen page is hidden otherwise).
        page.execute(SetFocusEmulationEnabledParams::new(true))
            .await
            .map_err(browser_err)?;
        // chromiumoxide attaches to every worker and iframe of the page, paused until it
        // resumes them; it never resumes a service worker (which then never installs). We
        // drive the page only: new workers and frames start on their own.
        let mut attach = SetAutoAttachParams::new(false, false);
        attach.flatten = Some(true);
        page.execute(attach).await.map_err(browser_err)?;
        if session.stealth.get() {
            // chromiumoxide enables the Runtime domain on every page it attaches (its frame
            // manager's init); a page can tell (objects it logs get serialized for us). Off
            // again before the page has any document of a site: our calls need none of it
            // (`world.rs`), and it stays off across navigations.
            page.execute(chromiumoxide::cdp::js_protocol::runtime::DisableParams::default())
                .await
                .map_err(browser_err)?;
        }
        guard.disarm();
        Ok(page)
    }

    /// The user agent and client hints of the session's browser, asked once per launch:
    /// the launch flag's user agent, the brands the browser reports, its full version.
    pub(super) async fn identity(
        &self,
        chromium: &Chromium,
        session: &Session,
    ) -> Result<Rc<Identity>, RunFailure> {
        if let Some(known) = session.identity.borrow().clone() {
            return Ok(known);
        }
        let fail = |message: String| RunFailure {
            kind: RunErrorKind::BrowserPage,
            message,
        };
        let version = chromium
            .browser
            .version()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let full_version = version
            .product
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        // The brands are only shown to secure pages (a blank page is not one): asked of a
        // browser page opened for it and closed again.
        let probe = chromium
            .browser
            .new_page("chrome://version")
            .await
            .map_err(|e| fail(e.to_string()))?;
        let brands = super::world::World::new(&probe)
            .call(
                "() => navigator.userAgentData.brands.map((b) => [b.brand, b.version])",
                &[],
            )
            .await;
        let _ = probe.close().await;
        let brands = brands.map_err(fail)?;
        let brands: Vec<(String, String)> =
            serde_json::from_value(brands).map_err(|e| fail(format!("brands: {e}")))?;
        let hints = serde_json::from_value(stealth::client_hints(&brands, &full_version))
            .map_err(|e| fail(format!("client hints: {e}")))?;
        let identity = Rc::new(Identity {
            user_agent: stealth::plain_user_agent(&version.user_agent),
            hints: Some(hints),
        });
        *session.identity.borrow_mut() = Some(identity.clone());
        Ok(identity)
    }

    /// One run: a page, the script on it, the page parked or closed, artifacts, the output.
    pub(super) async fn run_in(
        &self,
        session: &Rc<Session>,
        r: &BrowserRun,
    ) -> Result<RunOutcome, RunFailure> {
        let (page, reusable, browser_pid) = self.take_page(session, r).await?;
        // Closed if the run ends early (a crash, or the run's future dropped on cancel).
        let mut page_guard = PageGuard(Some(page.clone()));
        let mut out = ScriptOutput::default();
        let result = self.drive(session, r, &page, browser_pid, &mut out).await?;
        let failure_shot = if result.is_err() && session.alive.get() {
            failure_evidence(&page, &mut out).await
        } else {
            None
        };
        page_guard.disarm();
        self.park_or_close(session, r, page, reusable && result.is_ok())
            .await;
        let artifacts = self
            .keep_artifacts(r, &mut out, failure_shot, &result)
            .await;
        self.outcome(session, r, result, out, artifacts)
    }

    /// The run's page: a parked one of the right locale woken, or a new one (the browser
    /// launched, or relaunched once when opening a page hangs). Also says whether the page
    /// may be parked afterwards and the browser's pid.
    async fn take_page(
        &self,
        session: &Session,
        r: &BrowserRun,
    ) -> Result<(chromiumoxide::Page, bool, i32), RunFailure> {
        let mut guard = session.chromium.lock().await;
        if guard.is_some() && !session.alive.get() {
            self.replace_dead(session, &mut guard).await;
        }
        // The anti-detection flag changed for this profile since its browser started (a
        // runtime override): a browser no other run is using starts anew with the new
        // answer (a busy one keeps its identity until it is idle; `close_idle`).
        if guard.is_some()
            && session.in_use.get() <= 1
            && session.stealth.get() != self.cfg.stealth.for_profile(&session.profile)
        {
            tracing::info!(profile = %session.profile, "anti_detection changed for this profile; relaunching its browser");
            self.close_locked(session, &mut guard).await;
        }
        if guard.is_none() {
            self.launch_into(session, &mut guard, &Launch::of(r))
                .await?;
        }
        let chromium = launched(&guard)?;
        let browser_pid = chromium.pid();
        let reusable = r.user_agent.is_none() && r.viewport.is_none() && r.timezone.is_none();
        let parked = if reusable {
            let mut idle = session.idle_pages.borrow_mut();
            idle.iter()
                .position(|(locale, _)| *locale == r.locale)
                .map(|i| idle.remove(i).1)
        } else {
            None
        };
        let parked = match parked {
            Some(page) => wake(page, &r.steps).await,
            None => None,
        };
        if let Some(page) = parked {
            return Ok((page, reusable, browser_pid));
        }
        if let Some(opened) = self.open_page_in_time(chromium, session, r).await {
            return Ok((opened?, reusable, browser_pid));
        }
        // A browser that cannot open a page (seen after its renderers were killed) is
        // replaced, and the page opened in the new one, once.
        tracing::warn!(profile = %r.profile, "opening a page hung; relaunching the profile's browser");
        session.alive.set(false);
        self.replace_dead(session, &mut guard).await;
        self.launch_into(session, &mut guard, &Launch::of(r))
            .await?;
        let chromium = launched(&guard)?;
        let opened = self
            .open_page_in_time(chromium, session, r)
            .await
            .ok_or_else(|| RunFailure {
                kind: RunErrorKind::BrowserPage,
                message: format!(
                    "opening a page took longer than {:?} (browser.launch_timeout), twice",
                    self.cfg.launch_timeout
                ),
            })?;
        Ok((opened?, reusable, chromium.pid()))
    }

    /// The script on the page, under the renderer crash watch. The outer error ends the run
    /// at once (the renderer or the browser died); the inner one is a failed step.
    async fn drive(
        &self,
        session: &Rc<Session>,
        r: &BrowserRun,
        page: &chromiumoxide::Page,
        browser_pid: i32,
        out: &mut ScriptOutput,
    ) -> Result<Result<Option<script::Stopped>, engine::StepFailure>, RunFailure> {
        let env = Env {
            secrets: &r.secrets,
            step_timeout: r.step_timeout.unwrap_or(self.cfg.step_timeout),
            consume: r.consume.as_ref(),
            politeness: Some(&self.politeness),
            once: r.once.as_ref(),
            notify: r.notify.as_ref(),
            context: &r.context,
            human: session.stealth.get(),
            viewport: r.viewport,
            person: r.person.as_ref(),
            live: Some(&super::live::RunLive {
                pool: self,
                session,
                run_id: r.run_id,
            }),
        };
        // A renderer that crashes (Inspector.targetCrashed) ends the run at once.
        let mut crashed = page
            .event_listener::<chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed>()
            .await
            .map_err(|e| RunFailure {
                kind: RunErrorKind::BrowserPage,
                message: e.to_string(),
            })?;
        tokio::select! {
            r = engine::run(page, &r.steps, &env, out) => Ok(r),
            _ = futures_util::StreamExt::next(&mut crashed) => {
                // A browser killed whole takes its renderers with it, and a renderer's death
                // can be reported a moment before the browser is gone: given that moment.
                let deadline = std::time::Instant::now() + Duration::from_millis(300);
                while !process::process_gone(browser_pid) && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if process::process_gone(browser_pid) {
                    // The whole browser died (its renderers first): the session is gone. It
                    // is counted once, when the next run finds it dead and replaces it.
                    self.mark_dead(session);
                    return Err(RunFailure {
                        kind: RunErrorKind::BrowserCrashed,
                        message: "the browser died during the run".into(),
                    });
                }
                metrics::counter!(names::BROWSER_CRASHES).increment(1);
                self.tell(SessionEvent::RendererCrashed {
                    profile: r.profile.clone(),
                });
                Err(RunFailure {
                    kind: RunErrorKind::RendererCrashed,
                    message: "the page's renderer crashed (Inspector.targetCrashed)".into(),
                })
            }
        }
    }

    /// A page that served a good run is parked, frozen (its document's scripts and timers
    /// stop), for the next run; any other is closed. Freezing costs one command where
    /// navigating to about:blank cost a navigation, and the next run's `goto` to the same
    /// site stays in the site's renderer.
    async fn park_or_close(
        &self,
        session: &Session,
        r: &BrowserRun,
        page: chromiumoxide::Page,
        parkable: bool,
    ) {
        let park =
            parkable && session.alive.get() && session.idle_pages.borrow().len() < MAX_IDLE_PAGES;
        if park {
            // Not awaited: the run's answer does not wait for it, and the next run's wake
            // command follows it on the same CDP session.
            let parked = page.clone();
            tokio::spawn(async move {
                let frozen = SetWebLifecycleStateParams::new(SetWebLifecycleStateState::Frozen);
                let _ = tokio::time::timeout(Duration::from_secs(5), parked.execute(frozen)).await;
            });
            session
                .idle_pages
                .borrow_mut()
                .push((r.locale.clone(), page));
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
        }
    }

    /// Saves the run's screenshots (and, for a failed run, `failure.png` with its
    /// `failure.json`) under the run's artifacts directory; returns the names shown.
    async fn keep_artifacts(
        &self,
        r: &BrowserRun,
        out: &mut ScriptOutput,
        failure_shot: Option<Vec<u8>>,
        result: &Result<Option<script::Stopped>, engine::StepFailure>,
    ) -> Vec<String> {
        let dir = self.cfg.artifacts_dir.join(r.run_id.to_string());
        let mut files: Vec<(String, Vec<u8>)> = std::mem::take(&mut out.screenshots);
        if let (Some(png), Err(f)) = (failure_shot, result) {
            files.push(("failure.png".into(), png));
            let meta = json!({"step": f.index, "path": f.path, "action": f.action,
                "error": scrub(&f.message, r.secrets.values()), "url": out.url});
            files.push(("failure.json".into(), meta.to_string().into_bytes()));
        }
        save_artifacts(dir, files)
            .await
            .into_iter()
            .filter(|n| n != "failure.json")
            .collect()
    }

    /// The run's output (secrets scrubbed from what was extracted), or its failure.
    fn outcome(
        &self,
        session: &Session,
        r: &BrowserRun,
        result: Result<Option<script::Stopped>, engine::StepFailure>,
        mut out: ScriptOutput,
        artifacts: Vec<String>,
    ) -> Result<RunOutcome, RunFailure> {
        let scrubbed = |v: Value| -> Value {
            serde_json::from_str(&scrub(&v.to_string(), r.secrets.values())).unwrap_or_default()
        };
        let mut output = json!({
            "extracted": scrubbed(serde_json::to_value(&out.extracted).unwrap_or_default()),
            "url": out.url,
            "steps": r.steps.len(),
            "artifacts": artifacts,
            "trace": scrubbed(Value::Array(std::mem::take(&mut out.trace))),
        });
        if out.trace_truncated {
            output["trace_truncated"] = json!(true);
        }
        if !out.uncertain.is_empty() {
            output["uncertain"] = scrubbed(Value::Array(std::mem::take(&mut out.uncertain)));
        }
        if !out.item_errors.is_empty() {
            output["item_errors"] = scrubbed(Value::Array(std::mem::take(&mut out.item_errors)));
        }
        match result {
            Ok(None) => {
                output["outcome"] = json!("completed");
                Ok(RunOutcome {
                    output,
                    deferred: None,
                })
            }
            // Not a failure: the quota said stop (no retry follows), or defer (the run waits
            // for the window, without using an attempt).
            Ok(Some(stop)) => {
                output["outcome"] = json!(if stop.defer_until.is_some() {
                    "deferred"
                } else {
                    "quota_exhausted"
                });
                output["quota"] = json!(stop.quota);
                output["reason"] = json!(stop.reason);
                output["stopped_at_step"] = json!(stop.index);
                output["stopped_at"] = json!(stop.path);
                output["remaining_items"] = scrubbed(Value::Array(stop.remaining_items));
                if let Some(until) = stop.defer_until {
                    output["defer_until"] = json!(until);
                }
                Ok(RunOutcome {
                    output,
                    deferred: stop.defer_until.map(|until| Deferral {
                        until,
                        reason: stop.reason.clone(),
                    }),
                })
            }
            Err(f) => {
                let lost = f.kind == RunErrorKind::Browser && connection_lost(&f.message);
                if lost || !session.alive.get() {
                    self.mark_dead(session);
                    return Err(RunFailure {
                        kind: RunErrorKind::BrowserCrashed,
                        message: format!(
                            "the browser died during step {} ({})",
                            f.step(),
                            f.action
                        ),
                    });
                }
                Err(RunFailure {
                    kind: f.kind,
                    message: format!(
                        "step {} ({}): {}{}",
                        f.step(),
                        f.action,
                        f.message,
                        out.url.map(|u| format!(" at {u}")).unwrap_or_default()
                    ),
                })
            }
        }
    }
}

/// A failed run's screenshot, and the URL it failed at (into `out`).
async fn failure_evidence(page: &chromiumoxide::Page, out: &mut ScriptOutput) -> Option<Vec<u8>> {
    let shot = tokio::time::timeout(
        Duration::from_secs(5),
        page.screenshot(
            chromiumoxide::page::ScreenshotParams::builder()
                .format(chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat::Png)
                .build(),
        ),
    )
    .await
    .ok()
    .and_then(Result::ok);
    out.url = tokio::time::timeout(Duration::from_secs(2), page.url())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    shot
}

/// Wakes a parked page for a new run; a script that does not start with `goto` gets a blank
/// document (it never sees the previous run's). None: the page is unusable (closed).
async fn wake(page: chromiumoxide::Page, steps: &[Step]) -> Option<chromiumoxide::Page> {
    let limit = Duration::from_secs(5);
    let woke = tokio::time::timeout(
        limit,
        page.execute(SetWebLifecycleStateParams::new(
            SetWebLifecycleStateState::Active,
        )),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let ready = woke
        && (matches!(steps.first(), Some(Step::Goto { .. }))
            || tokio::time::timeout(limit, page.goto("about:blank"))
                .await
                .is_ok_and(|r| r.is_ok()));
    if ready {
        Some(page)
    } else {
        let _ = tokio::time::timeout(limit, page.close()).await;
        None
    }
}

/// The session's browser, launched just before.
fn launched(guard: &Option<Chromium>) -> Result<&Chromium, RunFailure> {
    guard.as_ref().ok_or_else(|| RunFailure {
        kind: RunErrorKind::BrowserUnavailable,
        message: "no browser".into(),
    })
}

pub(super) fn connection_lost(message: &str) -> bool {
    ["oneshot canceled", "channel closed", "Ws", "connection"]
        .iter()
        .any(|m| message.contains(m))
}
