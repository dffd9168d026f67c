//! The engine that runs a script on a page. It never sleeps to wait for something:
//! navigation waits come from CDP lifecycle events, element waits from a MutationObserver in
//! the page; the only pauses are `sleep` steps (≤ 10 s) and the per-key typing delay.
//! Templates are rendered when their step starts, against `job`, `run`, `now`, `today`,
//! `vars` (what was extracted so far) and the items of the loops around the step.

use std::collections::BTreeMap;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventLifecycleEvent, NavigateParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{CallArgument, CallFunctionOnParams};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use rand::Rng;
use serde_json::{json, Value};

use chromiumoxide::element::Element;

use super::page_js::*;
use super::script::{
    Condition, Consumer, ElementState, Entry, Notifier, OnError, OnExhausted, OnceLedger, Step,
    Stopped, Text, WaitUntil,
};
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
    pub kind: &'static str,
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
}

fn call(fun: &str, args: Vec<Value>) -> CallFunctionOnParams {
    let mut b = CallFunctionOnParams::builder()
        .function_declaration(fun)
        .await_promise(true)
        .return_by_value(true);
    for a in args {
        b = b.argument(CallArgument::builder().value(a).build());
    }
    // The builder only fails without a function declaration, which is always set.
    b.build().unwrap_or_else(|_| CallFunctionOnParams::new(fun))
}

/// Calls a function in the page with JSON arguments (never spliced into the source). A
/// navigation (a click that submitted a form, a redirect) destroys the context a call runs
/// in: the call is then made again in the new document, until the step's own timeout.
async fn js(page: &Page, fun: &str, args: Vec<Value>) -> Result<Value, String> {
    loop {
        match page.evaluate_function(call(fun, args.clone())).await {
            Ok(r) => return Ok(r.value().cloned().unwrap_or(Value::Null)),
            Err(e) => {
                let text = e.to_string();
                let navigated = [
                    "navigated or closed",
                    "context was destroyed",
                    "Cannot find context",
                    "executionContextId or uniqueContextId must be specified",
                ]
                .iter()
                .any(|m| text.contains(m));
                if !navigated {
                    return Err(text);
                }
                // The new document's context appears once it has committed.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
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
    env: &'a Env<'a>,
    out: &'o mut ScriptOutput,
    frames: Vec<Frame>,
    /// Units taken by `consume` steps, in order (a failed `once` block gives its own back).
    consumed: Vec<(String, i64)>,
}

type StepResult = Result<(), (&'static str, String)>;

fn top_index(path: &str) -> usize {
    path.split('.')
        .nth(1)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

impl<'a> Exec<'a, '_> {
    fn fail(&self, path: &str, step: &Step, kind: &'static str, message: String) -> StepFailure {
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

    fn render(&self, t: &Template) -> Result<String, (&'static str, String)> {
        if t.is_literal() {
            return Ok(t.source().to_string());
        }
        t.render(&self.data())
            .map_err(|e| ("template", e.to_string()))
    }

    fn scope(&self) -> Value {
        Value::Array(
            self.frames
                .iter()
                .map(|f| json!([f.selector, f.index]))
                .collect(),
        )
    }

    /// The element `sel` names: inside the current loop item when it starts with `:scope`
    /// (the loop's items are found again, by index, for every step: navigation is allowed).
    async fn element(&self, sel: &str) -> Result<Element, (&'static str, String)> {
        if !sel.starts_with(":scope") {
            return self
                .page
                .find_element(sel)
                .await
                .map_err(|_| ("not_found", format!("no element matches `{sel}`")));
        }
        let mut root: Option<Element> = None;
        for f in &self.frames {
            let list = match (&root, f.selector.starts_with(":scope")) {
                (Some(r), true) => r.find_elements(f.selector.as_str()).await,
                _ => self.page.find_elements(f.selector.as_str()).await,
            }
            .map_err(|_| ("not_found", format!("no element matches `{}`", f.selector)))?;
            root = Some(list.into_iter().nth(f.index).ok_or_else(|| {
                (
                    "not_found",
                    format!("loop item {} of `{}` is gone", f.index, f.selector),
                )
            })?);
        }
        match (&root, sel.starts_with(":scope")) {
            (Some(r), true) => r.find_element(sel).await,
            _ => self.page.find_element(sel).await,
        }
        .map_err(|_| ("not_found", format!("no element matches `{sel}`")))
    }

    fn steps<'s>(
        &'s mut self,
        steps: &'s [Step],
        base: String,
    ) -> futures_util::future::LocalBoxFuture<'s, Result<Flow, StepFailure>> {
        Box::pin(async move {
            for (i, step) in steps.iter().enumerate() {
                let path = format!("{base}.{i}.{}", step.action());
                if let Flow::Stop(s) = self.step(step, &path).await? {
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
                            "step_timeout",
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
            js(
                self.page,
                ITEMS_JS,
                vec![self.scope(), json!(sel), json!(max)],
            ),
        )
        .await
        .map_err(|_| {
            self.fail(
                path,
                step,
                "step_timeout",
                "listing the items took too long".into(),
            )
        })?
        .map_err(|e| self.fail(path, step, "browser", e))?;
        let items: Vec<Value> = match snapshot {
            Value::Array(a) => a,
            _ => {
                return Err(self.fail(
                    path,
                    step,
                    "not_found",
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

    async fn condition(&self, c: &Condition) -> Result<bool, (&'static str, String)> {
        let browser = |e: String| ("browser", e);
        Ok(match c {
            Condition::Exists(sel) => {
                let sel = self.render(sel)?;
                js(self.page, EXISTS_JS, vec![self.scope(), json!(sel)])
                    .await
                    .map_err(browser)?
                    == Value::Bool(true)
            }
            Condition::Visible(sel) => {
                let sel = self.render(sel)?;
                js(self.page, VISIBLE_JS, vec![self.scope(), json!(sel)])
                    .await
                    .map_err(browser)?
                    == Value::Bool(true)
            }
            Condition::TextContains { selector, text } => {
                let (sel, want) = (self.render(selector)?, self.render(text)?);
                js(self.page, TEXT_JS, vec![self.scope(), json!(sel)])
                    .await
                    .map_err(browser)?
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
            return Err(self.fail(path, step, "once", "no ledger for once keys".into()));
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
                "step_timeout",
                "the once ledger did not answer".into(),
            )
        })?
        .map_err(|e| self.fail(path, step, "once", e))?;
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
                    .map_err(|e| self.fail(path, step, "once", e))?;
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
                "quota",
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
                "step_timeout",
                "the quota counter did not answer in time".into(),
            )
        })?
        .map_err(|m| self.fail(path, step, "quota", m))?;
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
                    OnExhausted::Fail => {
                        Err(self.fail(path, step, "quota_exhausted", refusal.reason.clone()))
                    }
                }
            }
        }
    }

    /// A step that acts on the page (or waits, or notifies), under its timeout.
    async fn leaf(&mut self, step: &Step, path: &str) -> Result<(), StepFailure> {
        let limit = match step {
            Step::Goto {
                timeout: Some(t), ..
            }
            | Step::WaitFor {
                timeout: Some(t), ..
            } => *t,
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
                .map_err(|r| self.fail(path, step, "robots_disallowed", r.0))?;
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
                "step_timeout",
                format!("did not finish within {} ms", limit.as_millis()),
            )),
        }
    }

    async fn one(&mut self, step: &Step, goto_url: Option<&str>, limit: Duration) -> StepResult {
        let cdp = |e: chromiumoxide::error::CdpError| ("browser", e.to_string());
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
                // Leave the JS side a little less time, so its answer beats our timeout.
                let ms = limit.as_millis().saturating_sub(50) as u64;
                let ok = js(
                    page,
                    WAIT_FOR_JS,
                    vec![self.scope(), json!(selector), json!(state_s), json!(ms)],
                )
                .await
                .map_err(|e| ("browser", e))?;
                if ok == Value::Bool(true) {
                    Ok(())
                } else {
                    Err((
                        "wait_timeout",
                        format!("`{selector}` was not {state_s} within {ms} ms"),
                    ))
                }
            }
            Step::Click { selector } => {
                let selector = self.render(selector)?;
                let el = self.element(&selector).await?;
                el.click().await.map_err(cdp)?;
                Ok(())
            }
            Step::Type {
                selector,
                text,
                delay_ms,
                clear,
            } => {
                let selector = self.render(selector)?;
                let value =
                    match text {
                        Text::Plain(t) => self.render(t)?,
                        Text::Secret(name) => self.env.secrets.get(name).cloned().ok_or((
                            "secret_missing",
                            format!("secret {name} is not configured"),
                        ))?,
                    };
                let el = self.element(&selector).await?;
                el.click().await.map_err(cdp)?;
                if *clear {
                    js(page, CLEAR_JS, vec![self.scope(), json!(selector)])
                        .await
                        .map_err(|e| ("browser", e))?;
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
                    if ch.is_ascii() && !ch.is_ascii_control() && el.press_key(s).await.is_ok() {
                        continue;
                    }
                    page.execute(InsertTextParams::new(s))
                        .await
                        .map_err(|_| ("browser", "typing failed".to_string()))?;
                }
                Ok(())
            }
            Step::Press { key } => {
                let key = self.render(key)?;
                let el = page
                    .find_element(":focus")
                    .await
                    .or(page.find_element("body").await)
                    .map_err(cdp)?;
                el.press_key(key.as_str())
                    .await
                    .map_err(|e| ("bad_key", format!("cannot press `{key}`: {e}")))?;
                Ok(())
            }
            Step::Select { selector, value } => {
                let (selector, value) = (self.render(selector)?, self.render(value)?);
                match js(
                    page,
                    SELECT_JS,
                    vec![self.scope(), json!(selector), json!(value)],
                )
                .await
                .map_err(|e| ("browser", e))?
                .as_str()
                {
                    Some("ok") => Ok(()),
                    Some("no option") => {
                        Err(("not_found", format!("`{selector}` has no option `{value}`")))
                    }
                    _ => Err(("not_found", format!("no element matches `{selector}`"))),
                }
            }
            Step::Extract {
                selector,
                attribute,
                all,
                into,
            } => {
                let (selector, into) = (self.render(selector)?, self.render(into)?);
                let v = js(
                    page,
                    EXTRACT_JS,
                    vec![self.scope(), json!(selector), json!(attribute), json!(all)],
                )
                .await
                .map_err(|e| ("browser", e))?;
                let v = if *all {
                    v
                } else {
                    match v.get("v") {
                        Some(x) => x.clone(),
                        None => {
                            return Err(("not_found", format!("no element matches `{selector}`")))
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
                let text = js(page, TEXT_JS, vec![self.scope(), json!(selector)])
                    .await
                    .map_err(|e| ("browser", e))?;
                match text.as_str() {
                    None => Err(("not_found", format!("no element matches `{selector}`"))),
                    Some(t) if t.contains(contains.as_str()) => Ok(()),
                    Some(t) => {
                        let shown: String = t.chars().take(200).collect();
                        Err((
                            "assertion",
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
                    .map_err(cdp)?;
                let name = format!("step-{:03}.png", self.out.screenshots.len() + 1);
                self.out.screenshots.push((name, png));
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
                let notify = self
                    .env
                    .notify
                    .ok_or(("notify", "notifications are unavailable".to_string()))?;
                notify(subject, body, severity.clone())
                    .await
                    .map_err(|e| ("notify", e))?;
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
    let cdp = |e: chromiumoxide::error::CdpError| ("navigation", e.to_string());
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
        return Err(("navigation", format!("{url}: {err}")));
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
    Err(("navigation", "the page closed while loading".into()))
}
