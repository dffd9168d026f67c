//! The steps that act on the page (or wait, or notify), each under its timeout: `goto` with
//! its lifecycle waits, `wait_for`, `click`, `type`, `press`, `select`, `extract`,
//! `assert_text`, `screenshot`, `sleep`, `notify`.

use super::*;

impl Exec<'_, '_> {
    /// A step that acts on the page (or waits, or notifies), under its timeout.
    pub(super) async fn leaf(&mut self, step: &Step, path: &str) -> Result<(), StepFailure> {
        let limit = match step {
            Step::Goto {
                timeout: Some(t), ..
            } => *t,
            // The wait itself runs in the page for its whole timeout and answers
            // `wait_timeout`; the step's deadline is later by a margin, so a loaded machine
            // cannot make the two race. Only a page that stops answering reaches it.
            Step::WaitFor { timeout, .. } => {
                timeout.unwrap_or(self.env.step_timeout) + wait_margin(self.env.step_timeout)
            }
            Step::Type { text, delay_ms, .. } => {
                let n = match text {
                    Text::Plain(t) => t.source().chars().count().max(64),
                    Text::Secret(_) => 256,
                };
                self.env.step_timeout
                    + Duration::from_millis(n as u64 * (delay_ms + delay_ms / 2 + 20))
            }
            Step::Sleep { ms } => Duration::from_millis(*ms) + self.env.step_timeout,
            _ => self.env.step_timeout,
        };
        let goto_url = match step {
            Step::Goto { url, .. } => Some(
                self.render(url)
                    .map_err(|(k, m)| self.fail(path, step, k, m))?,
            ),
            _ => None,
        };
        if let (Some(url), Some(p)) = (&goto_url, self.env.politeness) {
            p.before_navigation(url)
                .await
                .map_err(|r| self.fail(path, step, RunErrorKind::RobotsDisallowed, r.0))?;
        }
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(limit, self.one(step, goto_url.as_deref(), limit)).await;
        if let (Some(url), Some(p)) = (&goto_url, self.env.politeness) {
            p.after_navigation(url);
        }
        let ms = started.elapsed().as_millis() as u64;
        tracing::debug!(step = path, action = step.action(), ms, "browser step");
        self.out
            .record(json!({"path": path, "action": step.action(), "ms": ms}));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err((kind, message))) => Err(self.fail(path, step, kind, message)),
            Err(_) => Err(self.fail(
                path,
                step,
                RunErrorKind::StepTimeout,
                format!("did not finish within {} ms", limit.as_millis()),
            )),
        }
    }

    async fn one(&mut self, step: &Step, goto_url: Option<&str>, limit: Duration) -> StepResult {
        let cdp = |e: chromiumoxide::error::CdpError| (RunErrorKind::Browser, e.to_string());
        let page = self.page;
        match step {
            Step::Goto { wait_until, .. } => goto(page, goto_url.unwrap_or(""), *wait_until).await,
            Step::WaitFor {
                selector, state, ..
            } => {
                let selector = self.render(selector)?;
                let state_s = match state {
                    ElementState::Attached => "attached",
                    ElementState::Visible => "visible",
                    ElementState::Hidden => "hidden",
                };
                let ms = limit
                    .saturating_sub(wait_margin(self.env.step_timeout))
                    .as_millis() as u64;
                let ok = self
                    .js(WAIT_FOR_JS, &[json!(selector), json!(state_s), json!(ms)])
                    .await?;
                if ok == Value::Bool(true) {
                    Ok(())
                } else {
                    Err((
                        RunErrorKind::WaitTimeout,
                        format!("`{selector}` was not {state_s} within {ms} ms"),
                    ))
                }
            }
            Step::Click { selector } => {
                let selector = self.render(selector)?;
                self.click(&selector).await
            }
            Step::Type {
                selector,
                text,
                delay_ms,
                clear,
            } => {
                let selector = self.render(selector)?;
                let value = match text {
                    Text::Plain(t) => self.render(t)?,
                    Text::Secret(name) => self.env.secrets.get(name).cloned().ok_or((
                        RunErrorKind::SecretMissing,
                        format!("secret {name} is not configured"),
                    ))?,
                };
                self.click(&selector).await?;
                if *clear {
                    self.hand
                        .clear_field(page)
                        .await
                        .map_err(|e| (RunErrorKind::Browser, e))?;
                }
                let mut buf = [0u8; 4];
                for (i, ch) in value.chars().enumerate() {
                    if i > 0 && *delay_ms > 0 {
                        // Human pacing: the delay ± 50 %.
                        let d =
                            rand::thread_rng().gen_range(delay_ms / 2..=delay_ms + delay_ms / 2);
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                    let s: &str = ch.encode_utf8(&mut buf);
                    // Characters on a US keyboard are key presses; the rest is inserted text.
                    // Errors never carry the text (it may be a secret).
                    if ch.is_ascii()
                        && !ch.is_ascii_control()
                        && self.hand.key(page, s).await.is_ok()
                    {
                        continue;
                    }
                    page.execute(InsertTextParams::new(s))
                        .await
                        .map_err(|_| (RunErrorKind::Browser, "typing failed".to_string()))?;
                }
                Ok(())
            }
            Step::Press { key } => {
                // Keys go to whatever has the focus (the document's body when nothing has).
                let key = self.render(key)?;
                self.hand
                    .key(page, &key)
                    .await
                    .map_err(|e| (RunErrorKind::BadKey, format!("cannot press `{key}`: {e}")))
            }
            Step::Select { selector, value } => {
                let (selector, value) = (self.render(selector)?, self.render(value)?);
                let at = self.js(SELECT_JS, &[json!(selector), json!(value)]).await?;
                let (from, to) = match at.as_str() {
                    Some("ok") => return Ok(()),
                    Some("no option") => {
                        return Err((
                            RunErrorKind::NotFound,
                            format!("`{selector}` has no option `{value}`"),
                        ))
                    }
                    Some(_) => {
                        return Err((
                            RunErrorKind::NotFound,
                            format!("no element matches `{selector}`"),
                        ))
                    }
                    None => (
                        at["from"].as_i64().unwrap_or(0),
                        at["to"].as_i64().unwrap_or(0),
                    ),
                };
                let key = if to > from { "ArrowDown" } else { "ArrowUp" };
                for _ in 0..(to - from).abs() {
                    self.hand
                        .key(page, key)
                        .await
                        .map_err(|e| (RunErrorKind::Browser, e))?;
                    if self.js(VALUE_JS, &[json!(selector)]).await? == json!(value) {
                        return Ok(());
                    }
                }
                self.js(SET_VALUE_JS, &[json!(selector), json!(value)])
                    .await?;
                Ok(())
            }
            Step::Extract {
                selector,
                attribute,
                all,
                into,
            } => {
                let (selector, into) = (self.render(selector)?, self.render(into)?);
                let v = self
                    .js(EXTRACT_JS, &[json!(selector), json!(attribute), json!(all)])
                    .await?;
                let v = if *all {
                    v
                } else {
                    match v.get("v") {
                        Some(x) => x.clone(),
                        None => {
                            return Err((
                                RunErrorKind::NotFound,
                                format!("no element matches `{selector}`"),
                            ))
                        }
                    }
                };
                if self.frames.is_empty() {
                    self.out.extracted.insert(into, v);
                } else {
                    // Inside a loop: one record per item.
                    let slot = self
                        .out
                        .extracted
                        .entry(into)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    match slot {
                        Value::Array(a) => a.push(v),
                        other => *other = Value::Array(vec![v]),
                    }
                }
                Ok(())
            }
            Step::AssertText { selector, contains } => {
                let (selector, contains) = (self.render(selector)?, self.render(contains)?);
                let text = self.js(TEXT_JS, &[json!(selector)]).await?;
                match text.as_str() {
                    None => Err((
                        RunErrorKind::NotFound,
                        format!("no element matches `{selector}`"),
                    )),
                    Some(t) if t.contains(contains.as_str()) => Ok(()),
                    Some(t) => {
                        let shown: String = t.chars().take(200).collect();
                        Err((
                            RunErrorKind::Assertion,
                            format!(
                                "`{selector}` does not contain {contains:?} (it reads {shown:?})"
                            ),
                        ))
                    }
                }
            }
            Step::Screenshot { full_page } => {
                let png = page
                    .screenshot(
                        ScreenshotParams::builder()
                            .format(CaptureScreenshotFormat::Png)
                            .full_page(*full_page)
                            .build(),
                    )
                    .await
                    .map_err(cdp);
                if *full_page {
                    // The full-page capture resized the viewport to the document: undone, so
                    // the page does not see a window as tall as itself afterwards.
                    let restored = match self.env.viewport {
                        Some((w, h)) => page
                            .execute(SetDeviceMetricsOverrideParams::new(
                                w as i64, h as i64, 1.0, false,
                            ))
                            .await
                            .map(|_| ()),
                        None => page
                            .execute(ClearDeviceMetricsOverrideParams::default())
                            .await
                            .map(|_| ()),
                    };
                    restored.map_err(cdp)?;
                }
                let name = format!("step-{:03}.png", self.out.screenshots.len() + 1);
                self.out.screenshots.push((name, png?));
                Ok(())
            }
            Step::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(())
            }
            Step::Notify {
                subject,
                body,
                severity,
            } => {
                let subject = self.render(subject)?;
                let body = match body {
                    Some(b) => self.render(b)?,
                    None => String::new(),
                };
                let notify = self.env.notify.ok_or((
                    RunErrorKind::Notify,
                    "notifications are unavailable".to_string(),
                ))?;
                notify(subject, body, severity.clone())
                    .await
                    .map_err(|e| (RunErrorKind::Notify, e))?;
                Ok(())
            }
            // Blocks and consume are handled by `step`.
            Step::ForEach { .. }
            | Step::If { .. }
            | Step::Once { .. }
            | Step::Consume { .. }
            | Step::HandOver { .. } => Ok(()),
        }
    }
}

/// Navigates and waits for the chosen lifecycle point of the new document.
async fn goto(page: &Page, url: &str, until: WaitUntil) -> StepResult {
    // A connection to the browser lost mid-navigation is ours, not the site's.
    let cdp = |e: chromiumoxide::error::CdpError| {
        let message = e.to_string();
        if crate::browser::run::connection_lost(&message) {
            (RunErrorKind::Browser, message)
        } else {
            (RunErrorKind::Navigation, message)
        }
    };
    if until == WaitUntil::Load {
        page.goto(url).await.map_err(cdp)?;
        return Ok(());
    }
    // Lifecycle events are on for every page: chromiumoxide enables them when it attaches.
    let mut events = page
        .event_listener::<EventLifecycleEvent>()
        .await
        .map_err(cdp)?;
    let nav = page.execute(NavigateParams::new(url)).await.map_err(cdp)?;
    if let Some(err) = &nav.result.error_text {
        return Err((RunErrorKind::Navigation, format!("{url}: {err}")));
    }
    let want = match until {
        WaitUntil::DomContentLoaded => "DOMContentLoaded",
        _ => "networkIdle",
    };
    let loader = nav.result.loader_id.clone();
    while let Some(ev) = events.next().await {
        if ev.name == want && loader.as_ref().is_none_or(|l| *l == ev.loader_id) {
            return Ok(());
        }
    }
    // Our page closed under the navigation (the run was cancelled, the pool stopped).
    Err((
        RunErrorKind::Browser,
        "the page closed while loading".into(),
    ))
}
