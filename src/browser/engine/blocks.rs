//! The steps that hold steps or decide: `for_each` (loop scopes re-found by index),
//! conditions of `if`, `once` (never twice, through the ledger), `consume` (the quota's
//! stop, defer or fail).

use super::*;

/// How often a `hand_over` checks its `until` condition while a person drives.
const UNTIL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Exec<'_, '_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn for_each(
        &mut self,
        step: &Step,
        path: &str,
        selector: &Template,
        alias: &str,
        max: usize,
        on_error: OnError,
        steps: &[Step],
    ) -> Result<Flow, StepFailure> {
        let sel = self
            .render(selector)
            .map_err(|(k, m)| self.fail(path, step, k, m))?;
        let snapshot = tokio::time::timeout(
            self.env.step_timeout,
            self.js(ITEMS_JS, &[json!(sel), json!(max)]),
        )
        .await
        .map_err(|_| {
            self.fail(
                path,
                step,
                RunErrorKind::StepTimeout,
                "listing the items took too long".into(),
            )
        })?
        .map_err(|(k, m)| self.fail(path, step, k, m))?;
        let items: Vec<Value> = match snapshot {
            Value::Array(a) => a,
            _ => {
                return Err(self.fail(
                    path,
                    step,
                    RunErrorKind::NotFound,
                    "the loop's own item is gone".into(),
                ))
            }
        };
        self.out.record(
            json!({"path": path, "action": "for_each", "selector": sel, "items": items.len()}),
        );
        for (index, item) in items.iter().enumerate() {
            let mut value = item.clone();
            value["index"] = json!(index);
            let text = value["text"].clone();
            self.out
                .record(json!({"path": path, "item": {"index": index, "text": text}}));
            self.frames.push(Frame {
                alias: alias.to_string(),
                item: value,
                selector: sel.clone(),
                index,
            });
            let result = self.steps(steps, format!("{path}.steps")).await;
            self.frames.pop();
            match result {
                Ok(Flow::Next) => {}
                Ok(Flow::Stop(mut stopped)) => {
                    stopped.remaining_items.extend(
                        items
                            .iter()
                            .enumerate()
                            .skip(index)
                            .map(|(i, it)| json!({"loop": path, "index": i, "text": it["text"]})),
                    );
                    return Ok(Flow::Stop(stopped));
                }
                Err(e) if on_error == OnError::Continue => {
                    self.out.item_errors.push(json!({
                        "loop": path, "index": index, "text": text,
                        "step": e.path, "kind": e.kind, "error": e.message,
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Flow::Next)
    }

    pub(super) async fn condition(&self, c: &Condition) -> Result<bool, (RunErrorKind, String)> {
        Ok(match c {
            Condition::Exists(sel) => {
                let sel = self.render(sel)?;
                self.js(EXISTS_JS, &[json!(sel)]).await? == Value::Bool(true)
            }
            Condition::Visible(sel) => {
                let sel = self.render(sel)?;
                self.js(VISIBLE_JS, &[json!(sel)]).await? == Value::Bool(true)
            }
            Condition::TextContains { selector, text } => {
                let (sel, want) = (self.render(selector)?, self.render(text)?);
                self.js(TEXT_JS, &[json!(sel)])
                    .await?
                    .as_str()
                    .is_some_and(|t| t.contains(&want))
            }
            Condition::Equals { value, to } => self.render(value)? == self.render(to)?,
            Condition::UrlContains(part) => {
                let part = self.render(part)?;
                self.page
                    .url()
                    .await
                    .map_err(|e| (RunErrorKind::Browser, e.to_string()))?
                    .is_some_and(|u| u.contains(&part))
            }
        })
    }

    /// Whether `until` holds now (a condition that fails to evaluate does not).
    async fn until_holds(&self, until: Option<&Condition>) -> bool {
        match until {
            Some(c) => tokio::time::timeout(self.env.step_timeout, self.condition(c))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false),
            None => false,
        }
    }

    /// `hand_over`: a person takes the run's page in a live view; the run goes on when
    /// `until` holds (checked every [`UNTIL_EVERY`]) or the person presses Continue, and
    /// fails with `person_timeout` after `timeout`. Nothing to wait for when `until`
    /// already holds.
    pub(super) async fn hand_over(
        &mut self,
        step: &Step,
        path: &str,
        reason: &Template,
        until: Option<&Condition>,
        timeout: std::time::Duration,
    ) -> Result<(), StepFailure> {
        let reason = self
            .render(reason)
            .map_err(|(k, m)| self.fail(path, step, k, m))?;
        if self.until_holds(until).await {
            self.out
                .record(json!({"path": path, "action": "hand_over", "waited": false}));
            return Ok(());
        }
        let (Some(person), Some(live)) = (self.env.person, self.env.live) else {
            return Err(self.fail(
                path,
                step,
                RunErrorKind::Browser,
                "no person can take over this run".into(),
            ));
        };
        let view = live
            .attach(self.page, &reason)
            .await
            .map_err(|m| self.fail(path, step, RunErrorKind::BrowserPage, m))?;
        let deadline = chrono::Utc::now()
            + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let started = std::time::Instant::now();
        if let Err(e) = person.waiting(reason.clone(), deadline, view.id).await {
            view.end();
            return Err(self.fail(path, step, RunErrorKind::Database, e));
        }
        let give_up = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            tokio::select! {
                ended = view.wait_ended() => break match ended {
                    super::super::live::Ended::Done => Ok("continue"),
                    other => Err((RunErrorKind::BrowserCrashed, format!("the live view ended ({})", other.as_str()))),
                },
                _ = tokio::time::sleep(UNTIL_EVERY) => {
                    if self.until_holds(until).await {
                        break Ok("until");
                    }
                }
                _ = tokio::time::sleep_until(give_up) => break Err((
                    RunErrorKind::PersonTimeout,
                    format!("nobody took over within {} ({reason})", crate::stdx::duration::format_duration(timeout)),
                )),
            }
        };
        view.end();
        let resumed = person.resumed().await;
        self.out
            .record(json!({"path": path, "action": "hand_over", "waited": true,
            "ms": started.elapsed().as_millis() as u64,
            "by": outcome.as_ref().ok().copied().unwrap_or("timeout")}));
        let how = outcome.map_err(|(k, m)| self.fail(path, step, k, m))?;
        resumed.map_err(|e| self.fail(path, step, RunErrorKind::Database, e))?;
        tracing::info!(path, how, "hand_over: the run goes on");
        Ok(())
    }

    pub(super) async fn once(
        &mut self,
        step: &Step,
        path: &str,
        key: &Template,
        retry_uncertain: bool,
        steps: &[Step],
    ) -> Result<Flow, StepFailure> {
        let key = self
            .render(key)
            .map_err(|(k, m)| self.fail(path, step, k, m))?;
        let Some(ledger) = self.env.once else {
            return Err(self.fail(
                path,
                step,
                RunErrorKind::Once,
                "no ledger for once keys".into(),
            ));
        };
        let entry = tokio::time::timeout(
            self.env.step_timeout,
            ledger.enter(key.clone(), retry_uncertain),
        )
        .await
        .map_err(|_| {
            self.fail(
                path,
                step,
                RunErrorKind::StepTimeout,
                "the once ledger did not answer".into(),
            )
        })?
        .map_err(|e| self.fail(path, step, RunErrorKind::Once, e))?;
        let skipped = |why: &str, run: Option<&str>| json!({"path": path, "action": "once", "key": key, "skipped": why, "run_id": run});
        match entry {
            Entry::Done => {
                self.out.record(skipped("done before", None));
                return Ok(Flow::Next);
            }
            Entry::Busy { run_id } => {
                self.out
                    .record(skipped("being run by another run", Some(&run_id)));
                return Ok(Flow::Next);
            }
            Entry::Uncertain { run_id } => {
                self.out
                    .record(skipped("uncertain: a run died inside it", Some(&run_id)));
                self.out
                    .uncertain
                    .push(json!({"key": key, "path": path, "run_id": run_id}));
                return Ok(Flow::Next);
            }
            Entry::Run => {}
        }
        self.out
            .record(json!({"path": path, "action": "once", "key": key, "entered": true}));
        let taken = self.consumed.len();
        let result = self.steps(steps, format!("{path}.steps")).await;
        match result {
            Ok(Flow::Next) => {
                // Recorded before the next step starts.
                ledger
                    .complete(key.clone())
                    .await
                    .map_err(|e| self.fail(path, step, RunErrorKind::Once, e))?;
                Ok(Flow::Next)
            }
            other => {
                // Not completed (a step failed, or a quota stopped it): forgotten, and what
                // it consumed is given back.
                let _ = ledger.abandon(key).await;
                let given_back: Vec<(String, i64)> = self.consumed.drain(taken..).collect();
                if let Some(q) = self.env.consume {
                    for (quota, cost) in given_back {
                        let _ = q.refund(quota, cost).await;
                    }
                }
                other
            }
        }
    }

    pub(super) async fn consume(
        &mut self,
        step: &Step,
        path: &str,
        quota: &str,
        cost: i64,
        on_exhausted: OnExhausted,
    ) -> Result<Flow, StepFailure> {
        let Some(consume) = self.env.consume else {
            return Err(self.fail(
                path,
                step,
                RunErrorKind::Quota,
                "the quota counter is unavailable".into(),
            ));
        };
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            self.env.step_timeout,
            consume.consume(quota.to_string(), cost),
        )
        .await
        .map_err(|_| {
            self.fail(
                path,
                step,
                RunErrorKind::StepTimeout,
                "the quota counter did not answer in time".into(),
            )
        })?
        .map_err(|m| self.fail(path, step, RunErrorKind::Quota, m))?;
        let ms = started.elapsed().as_millis() as u64;
        match answer {
            None => {
                self.consumed.push((quota.to_string(), cost));
                self.out
                    .record(json!({"path": path, "action": "consume", "ms": ms, "admitted": true}));
                Ok(Flow::Next)
            }
            Some(refusal) => {
                self.out.record(
                    json!({"path": path, "action": "consume", "ms": ms, "admitted": false}),
                );
                let stopped = |defer_until| Stopped {
                    index: top_index(path),
                    path: path.to_string(),
                    quota: quota.to_string(),
                    reason: refusal.reason.clone(),
                    defer_until,
                    remaining_items: Vec::new(),
                };
                match on_exhausted {
                    OnExhausted::Stop => Ok(Flow::Stop(stopped(None))),
                    OnExhausted::Defer => Ok(Flow::Stop(stopped(Some(refusal.retry_at)))),
                    OnExhausted::Fail => Err(self.fail(
                        path,
                        step,
                        RunErrorKind::QuotaExhausted,
                        refusal.reason.clone(),
                    )),
                }
            }
        }
    }
}
