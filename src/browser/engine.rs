//! The engine that runs a script on a page. It never sleeps to wait for something:
//! navigation waits come from CDP lifecycle events, element waits from a MutationObserver in
//! the page; the only pauses are `sleep` steps (≤ 10 s) and the per-key typing delay.
//! Templates are rendered when their step starts, against `job`, `run`, `now`, `today`,
//! `vars` (what was extracted so far) and the items of the loops around the step.

use std::collections::BTreeMap;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::{
    ClearDeviceMetricsOverrideParams, SetDeviceMetricsOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventLifecycleEvent, NavigateParams,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use rand::Rng;
use serde_json::{json, Value};

use super::input::{Hand, Rect};
use super::page_js::*;
use super::script::{
    Condition, Consumer, ElementState, Entry, Notifier, OnError, OnExhausted, OnceLedger, Step,
    Stopped, Text, WaitUntil,
};
use super::world::World;
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::template::Template;

/// What a script produced.
#[derive(Debug, Default)]
pub struct ScriptOutput {
    /// `vars`: everything extracted (inside loops: one record per item, as an array).
    pub extracted: BTreeMap<String, Value>,
    pub screenshots: Vec<(String, Vec<u8>)>,
    pub url: Option<String>,
    /// What each step did: `{path, action, ms}`, loop items, blocks skipped by `if`/`once`.
    pub trace: Vec<Value>,
    pub trace_truncated: bool,
    /// `once` blocks a dead run was in: their effect may have happened; not repeated.
    pub uncertain: Vec<Value>,
    /// Failed items of loops that say `on_error: "continue"`.
    pub item_errors: Vec<Value>,
}

/// Entries kept in `ScriptOutput::trace`.
const MAX_TRACE: usize = 2000;

impl ScriptOutput {
    fn record(&mut self, entry: Value) {
        if self.trace.len() < MAX_TRACE {
            self.trace.push(entry);
        } else {
            self.trace_truncated = true;
        }
    }
}

/// Why a script stopped.
#[derive(Debug)]
pub struct StepFailure {
    /// The top-level step it happened in, and the full path of the step.
    pub index: usize,
    pub path: String,
    pub action: &'static str,
    pub kind: RunErrorKind,
    pub message: String,
}

impl StepFailure {
    /// `2` for a top-level step, `2.for_each.steps.1` for one inside a block.
    pub fn step(&self) -> String {
        let p = self.path.strip_prefix("steps.").unwrap_or(&self.path);
        p.strip_suffix(&format!(".{}", self.action))
            .unwrap_or(p)
            .to_string()
    }
}

/// What running a script needs besides the page.
pub struct Env<'a> {
    /// Resolved secrets by name (only those the script names).
    pub secrets: &'a BTreeMap<String, String>,
    pub step_timeout: Duration,
    pub consume: Option<&'a Consumer>,
    /// Navigation intervals and robots.txt, checked before each `goto` (outside its timeout).
    pub politeness: Option<&'a super::politeness::Politeness>,
    pub once: Option<&'a std::sync::Arc<dyn OnceLedger>>,
    pub notify: Option<&'a Notifier>,
    /// Template data besides `vars` and loop items: `job`, `run`, `now`, `today`.
    pub context: &'a Value,
    /// Input paced like a person's (the `anti_detection` flag).
    pub human: bool,
    /// The job's viewport (a full-page screenshot restores it afterwards).
    pub viewport: Option<(u32, u32)>,
}

/// Runs every step in order; stops at the first failure, or early (`Ok(Some(_))`) when a
/// `consume` step is refused and says stop or defer.
pub async fn run(
    page: &Page,
    steps: &[Step],
    env: &Env<'_>,
    out: &mut ScriptOutput,
) -> Result<Option<Stopped>, StepFailure> {
    let mut exec = Exec {
        page,
        world: World::new(page),
        hand: Hand::new(env.human),
        env,
        out,
        frames: Vec::new(),
        consumed: Vec::new(),
    };
    let flow = exec.steps(steps, "steps".to_string()).await;
    let url = page.url().await.ok().flatten();
    exec.out.url = url;
    match flow? {
        Flow::Next => Ok(None),
        Flow::Stop(s) => Ok(Some(s)),
    }
}

enum Flow {
    Next,
    Stop(Stopped),
}

/// A loop item in scope.
struct Frame {
    alias: String,
    item: Value,
    selector: String,
    index: usize,
}

struct Exec<'a, 'o> {
    page: &'a Page,
    /// Where our JavaScript runs (never the page's own world).
    world: World<'a>,
    hand: Hand,
    env: &'a Env<'a>,
    out: &'o mut ScriptOutput,
    frames: Vec<Frame>,
    /// Units taken by `consume` steps, in order (a failed `once` block gives its own back).
    consumed: Vec<(String, i64)>,
}

type StepResult = Result<(), (RunErrorKind, String)>;

fn top_index(path: &str) -> usize {
    path.split('.')
        .nth(1)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

/// How much later than a `wait_for`'s own timeout its step's deadline is: the wait answers in
/// the page at its timeout, and the answer needs time to come back over CDP. A step timeout of
/// a second or less keeps a proportionally small margin.
fn wait_margin(step_timeout: Duration) -> Duration {
    (step_timeout / 2).min(Duration::from_secs(5))
}

impl<'a> Exec<'a, '_> {
    fn fail(&self, path: &str, step: &Step, kind: RunErrorKind, message: String) -> StepFailure {
        StepFailure {
            index: top_index(path),
            path: path.to_string(),
            action: step.action(),
            kind,
            message,
        }
    }

    /// Template data: `job`, `run`, `now`, `today`, `vars` and the loop items.
    fn data(&self) -> Value {
        let mut data = self.env.context.clone();
        if let Value::Object(m) = &mut data {
            m.insert("vars".into(), json!(self.out.extracted));
            for f in &self.frames {
                m.insert(f.alias.clone(), f.item.clone());
            }
        }
        data
    }

    fn render(&self, t: &Template) -> Result<String, (RunErrorKind, String)> {
        if t.is_literal() {
            return Ok(t.source().to_string());
        }
        t.render(&self.data())
            .map_err(|e| (RunErrorKind::Template, e.to_string()))
    }

    fn scope(&self) -> Value {
        Value::Array(
            self.frames
                .iter()
                .map(|f| json!([f.selector, f.index]))
                .collect(),
        )
    }

    /// Calls one of `page_js`'s functions with the loop scope first.
    async fn js(&self, fun: &str, args: &[Value]) -> Result<Value, (RunErrorKind, String)> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.scope());
        all.extend_from_slice(args);
        self.world
            .call(fun, &all)
            .await
            .map_err(|e| (RunErrorKind::Browser, e))
    }

    /// Where the element `sel` names is (inside the current loop item when the selector
    /// starts with `:scope`; the loop's items are found again, by index, for every step).
    async fn rect(&self, sel: &str) -> Result<Rect, (RunErrorKind, String)> {
        let v = self.js(RECT_JS, &[json!(sel)]).await?;
        let n = |k: &str| v.get(k).and_then(Value::as_f64);
        match (n("x"), n("y"), n("w"), n("h"), n("vw"), n("vh")) {
            (Some(x), Some(y), Some(w), Some(h), Some(vw), Some(vh)) => {
                Ok(Rect { x, y, w, h, vw, vh })
            }
            _ => Err((
                RunErrorKind::NotFound,
                format!("no element matches `{sel}`"),
            )),
        }
    }

    /// Brings the element into view: with the wheel, notch by notch, as a person scrolls;
    /// by the element itself (`scrollIntoView` from our world) when the wheel does not move
    /// it (a box that does not scroll, or one scrolling sideways), or without `human`.
    async fn bring_into_view(&self, sel: &str) -> Result<Rect, (RunErrorKind, String)> {
        let mut r = self.rect(sel).await?;
        if r.in_view() {
            return Ok(r);
        }
        if self.env.human {
            let mut stuck = 0;
            for _ in 0..40 {
                let notches = (r.offset_y() / super::input::NOTCH).round() as i32;
                if notches == 0 {
                    break;
                }
                self.hand
                    .wheel(self.page, notches.clamp(-4, 4))
                    .await
                    .map_err(|e| (RunErrorKind::Browser, e))?;
                let next = self.rect(sel).await?;
                stuck = if next.y == r.y { stuck + 1 } else { 0 };
                r = next;
                if r.in_view() || stuck >= 3 {
                    break;
                }
            }
        }
        if !r.in_view() {
            self.js(SCROLL_INTO_VIEW_JS, &[json!(sel)]).await?;
            r = self.rect(sel).await?;
        }
        Ok(r)
    }

    /// Clicks the element with the pointer.
    async fn click(&self, sel: &str) -> StepResult {
        let r = self.bring_into_view(sel).await?;
        if r.w <= 0.0 || r.h <= 0.0 || !r.in_view() {
            return Err((
                RunErrorKind::NotVisible,
                format!("`{sel}` is not visible on the page"),
            ));
        }
        let at = self.hand.aim(&r);
        self.hand
            .click(self.page, at)
            .await
            .map_err(|e| (RunErrorKind::Browser, e))
    }

    fn steps<'s>(
        &'s mut self,
        steps: &'s [Step],
        base: String,
    ) -> futures_util::future::LocalBoxFuture<'s, Result<Flow, StepFailure>> {
        Box::pin(async move {
            for (i, step) in steps.iter().enumerate() {
                let path = format!("{base}.{i}.{}", step.action());
                // One span per step (a block's steps nest under it); the path, never a value.
                let span = tracing::debug_span!(
                    "browser.step",
                    otel.name = %format!("step {}", step.action()),
                    step = step.action(),
                    path = %path,
                );
                let flow = tracing::Instrument::instrument(self.step(step, &path), span).await?;
                if let Flow::Stop(s) = flow {
                    return Ok(Flow::Stop(s));
                }
            }
            Ok(Flow::Next)
        })
    }

    async fn step(&mut self, step: &Step, path: &str) -> Result<Flow, StepFailure> {
        match step {
            Step::ForEach {
                selector,
                alias,
                max,
                on_error,
                steps,
            } => {
                self.for_each(step, path, selector, alias, *max, *on_error, steps)
                    .await
            }
            Step::If {
                condition,
                then,
                otherwise,
            } => {
                let started = std::time::Instant::now();
                let yes = tokio::time::timeout(self.env.step_timeout, self.condition(condition))
                    .await
                    .map_err(|_| {
                        self.fail(
                            path,
                            step,
                            RunErrorKind::StepTimeout,
                            "the condition took too long".into(),
                        )
                    })?
                    .map_err(|(k, m)| self.fail(path, step, k, m))?;
                self.out
                    .record(json!({"path": path, "action": "if", "result": yes,
                    "ms": started.elapsed().as_millis() as u64}));
                let (field, branch) = if yes {
                    ("then", then)
                } else {
                    ("else", otherwise)
                };
                self.steps(branch, format!("{path}.{field}")).await
            }
            Step::Once {
                key,
                retry_uncertain,
                steps,
            } => self.once(step, path, key, *retry_uncertain, steps).await,
            Step::Consume {
                quota,
                cost,
                on_exhausted,
            } => self.consume(step, path, quota, *cost, *on_exhausted).await,
            _ => {
                self.leaf(step, path).await?;
                Ok(Flow::Next)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn for_each(
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

    async fn condition(&self, c: &Condition) -> Result<bool, (RunErrorKind, String)> {
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
        })
    }

    async fn once(
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

    async fn consume(
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

    /// A step that acts on the page (or waits, or notifies), under its timeout.
    async fn leaf(&mut self, step: &Step, path: &str) -> Result<(), StepFailure> {
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
            Step::ForEach { .. } | Step::If { .. } | Step::Once { .. } | Step::Consume { .. } => {
                Ok(())
            }
        }
    }
}

/// Navigates and waits for the chosen lifecycle point of the new document.
async fn goto(page: &Page, url: &str, until: WaitUntil) -> StepResult {
    // A connection to the browser lost mid-navigation is ours, not the site's.
    let cdp = |e: chromiumoxide::error::CdpError| {
        let message = e.to_string();
        if super::run::connection_lost(&message) {
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
