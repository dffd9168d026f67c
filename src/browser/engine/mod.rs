//! The engine that runs a script on a page. It never sleeps to wait for something:
//! navigation waits come from CDP lifecycle events, element waits from a MutationObserver in
//! the page; the only pauses are `sleep` steps (≤ 10 s) and the per-key typing delay.
//! Templates are rendered when their step starts, against `job`, `run`, `now`, `today`,
//! `vars` (what was extracted so far) and the items of the loops around the step.
//!
//! Rooms: this file the run, its output, the executor of steps and what every step shares
//! (rendering, page calls, the dispatch in `step`); `blocks.rs` the steps that hold steps or
//! decide (`for_each`, `if`, `once`, `consume`); `leaf.rs` the steps that act on the page.

mod blocks;
mod leaf;

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
    /// Where `hand_over` steps tell that the run waits for a person (None: no such step).
    pub person: Option<&'a std::sync::Arc<dyn super::script::Person>>,
    /// Opens the live view of the run's page for a `hand_over`.
    pub live: Option<&'a dyn super::live::LiveHost>,
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
            Step::HandOver {
                reason,
                until,
                timeout,
            } => {
                self.hand_over(step, path, reason, until.as_ref(), *timeout)
                    .await?;
                Ok(Flow::Next)
            }
            _ => {
                self.leaf(step, path).await?;
                Ok(Flow::Next)
            }
        }
    }
}
