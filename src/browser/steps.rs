//! Browser scripts: the steps a `browser` job runs, their validation (422 with the step's
//! index), and the engine that runs them on a page. The engine never sleeps to wait for
//! something: navigation waits come from CDP lifecycle events, element waits from a
//! MutationObserver in the page; the only pauses are `sleep` steps (≤ 10 s) and the
//! per-key typing delay.

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

use crate::stdx::duration::parse_duration;
use crate::stdx::problems::Problems;
use crate::stdx::secrets::valid_secret_name;

pub const MAX_SLEEP_MS: u64 = 10_000;
pub const MAX_STEPS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    Load,
    DomContentLoaded,
    NetworkIdle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementState {
    Attached,
    Visible,
    Hidden,
}

/// Text to type: literal, or a named secret resolved at run time (never stored in output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Plain(String),
    Secret(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Goto {
        url: String,
        wait_until: WaitUntil,
        timeout: Option<Duration>,
    },
    WaitFor {
        selector: String,
        state: ElementState,
        timeout: Option<Duration>,
    },
    Click {
        selector: String,
    },
    Type {
        selector: String,
        text: Text,
        delay_ms: u64,
        clear: bool,
    },
    Press {
        key: String,
    },
    Select {
        selector: String,
        value: String,
    },
    Extract {
        selector: String,
        attribute: Option<String>,
        all: bool,
        into: String,
    },
    AssertText {
        selector: String,
        contains: String,
    },
    Screenshot {
        full_page: bool,
    },
    Sleep {
        ms: u64,
    },
    /// Count one action against a quota; a refusal stops the script cleanly.
    Consume {
        quota: String,
        cost: i64,
    },
}

/// Consumes `cost` units of a quota for a `consume` step: `Ok(None)` admitted,
/// `Ok(Some(why))` refused (the script stops with outcome `quota_exhausted`), `Err` failed.
pub type Consumer = std::sync::Arc<
    dyn Fn(String, i64) -> futures_util::future::BoxFuture<'static, Result<Option<String>, String>>
        + Send
        + Sync,
>;

/// A script that stopped early on purpose (not a failure).
#[derive(Debug, Clone)]
pub struct Stopped {
    pub index: usize,
    pub quota: String,
    pub reason: String,
}

impl Step {
    pub fn action(&self) -> &'static str {
        match self {
            Step::Goto { .. } => "goto",
            Step::WaitFor { .. } => "wait_for",
            Step::Click { .. } => "click",
            Step::Type { .. } => "type",
            Step::Press { .. } => "press",
            Step::Select { .. } => "select",
            Step::Extract { .. } => "extract",
            Step::AssertText { .. } => "assert_text",
            Step::Screenshot { .. } => "screenshot",
            Step::Sleep { .. } => "sleep",
            Step::Consume { .. } => "consume",
        }
    }

    /// The secrets a script needs (checked before it runs).
    pub fn secret(&self) -> Option<&str> {
        match self {
            Step::Type {
                text: Text::Secret(s),
                ..
            } => Some(s),
            _ => None,
        }
    }
}

const FIELDS: &[(&str, &[&str])] = &[
    ("goto", &["url", "wait_until", "timeout"]),
    ("wait_for", &["selector", "state", "timeout"]),
    ("click", &["selector"]),
    ("type", &["selector", "text", "delay_ms", "clear"]),
    ("press", &["key"]),
    ("select", &["selector", "value"]),
    ("extract", &["selector", "attribute", "all", "into"]),
    ("assert_text", &["selector", "contains"]),
    ("screenshot", &["full_page"]),
    ("sleep", &["ms"]),
    ("consume", &["quota", "cost"]),
];

/// Parses `steps` (a list of `{"<action>": {...}}`); problems are reported as
/// `<path>.<index>...`.
pub fn parse(v: &Value, path: &str, p: &mut Problems) -> Vec<Step> {
    let Some(list) = v.as_array() else {
        p.add(
            path,
            "expected a list of steps like [{\"goto\": {\"url\": \"https://…\"}}]",
        );
        return Vec::new();
    };
    if list.is_empty() {
        p.add(path, "at least one step");
    }
    if list.len() > MAX_STEPS {
        p.add(path, format!("at most {MAX_STEPS} steps"));
    }
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{path}.{i}");
        let Some((action, args)) = item
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            p.add(
                &at,
                "expected one action, like {\"click\": {\"selector\": \"#send\"}}",
            );
            continue;
        };
        let Some((_, allowed)) = FIELDS.iter().find(|(a, _)| a == action) else {
            p.add(
                &format!("{at}.{action}"),
                format!(
                    "unknown action; known: {}",
                    FIELDS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        };
        let at = format!("{at}.{action}");
        let Some(args) = args.as_object() else {
            p.add(&at, "expected an object of arguments");
            continue;
        };
        for k in args.keys() {
            if !allowed.contains(&k.as_str()) {
                p.add(&format!("{at}.{k}"), "unknown field");
            }
        }
        let before = p.as_slice().len();
        let mut s = |k: &str| -> String {
            match args.get(k).and_then(Value::as_str) {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => {
                    p.add(&format!("{at}.{k}"), "required: a non-empty string");
                    String::new()
                }
            }
        };
        let step = match action.as_str() {
            "goto" => {
                let url = s("url");
                Step::Goto {
                    url,
                    wait_until: WaitUntil::Load,
                    timeout: None,
                }
            }
            "wait_for" => Step::WaitFor {
                selector: s("selector"),
                state: ElementState::Visible,
                timeout: None,
            },
            "click" => Step::Click {
                selector: s("selector"),
            },
            "type" => Step::Type {
                selector: s("selector"),
                text: Text::Plain(String::new()),
                delay_ms: 100,
                clear: false,
            },
            "press" => Step::Press { key: s("key") },
            "select" => Step::Select {
                selector: s("selector"),
                value: s("value"),
            },
            "extract" => Step::Extract {
                selector: s("selector"),
                attribute: None,
                all: false,
                into: s("into"),
            },
            "assert_text" => Step::AssertText {
                selector: s("selector"),
                contains: s("contains"),
            },
            "screenshot" => Step::Screenshot { full_page: false },
            "consume" => Step::Consume {
                quota: s("quota"),
                cost: 1,
            },
            _ => Step::Sleep { ms: 0 },
        };
        let step = refine(step, args, &at, p);
        if p.as_slice().len() == before {
            out.push(step);
        }
    }
    out
}

fn timeout_of(
    args: &serde_json::Map<String, Value>,
    at: &str,
    p: &mut Problems,
) -> Option<Duration> {
    let t = args.get("timeout")?;
    match t.as_str().map(parse_duration) {
        Some(Ok(d)) if !d.is_zero() && d <= Duration::from_secs(600) => Some(d),
        _ => {
            p.add(
                &format!("{at}.timeout"),
                "expected a duration from 1ms to 10m, like \"15s\"",
            );
            None
        }
    }
}

fn bool_of(args: &serde_json::Map<String, Value>, k: &str, at: &str, p: &mut Problems) -> bool {
    match args.get(k) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            p.add(&format!("{at}.{k}"), "expected true or false");
            false
        }
    }
}

fn refine(step: Step, args: &serde_json::Map<String, Value>, at: &str, p: &mut Problems) -> Step {
    match step {
        Step::Goto { url, .. } => {
            if !url.is_empty() {
                match url::Url::parse(&url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => p.add(&format!("{at}.url"), "expected an http:// or https:// URL"),
                }
            }
            let wait_until = match args.get("wait_until").map(|v| v.as_str()) {
                None | Some(Some("load")) => WaitUntil::Load,
                Some(Some("domcontentloaded")) => WaitUntil::DomContentLoaded,
                Some(Some("networkidle")) => WaitUntil::NetworkIdle,
                _ => {
                    p.add(
                        &format!("{at}.wait_until"),
                        "expected load, domcontentloaded or networkidle",
                    );
                    WaitUntil::Load
                }
            };
            Step::Goto {
                url,
                wait_until,
                timeout: timeout_of(args, at, p),
            }
        }
        Step::WaitFor { selector, .. } => {
            let state = match args.get("state").map(|v| v.as_str()) {
                None | Some(Some("visible")) => ElementState::Visible,
                Some(Some("attached")) => ElementState::Attached,
                Some(Some("hidden")) => ElementState::Hidden,
                _ => {
                    p.add(
                        &format!("{at}.state"),
                        "expected attached, visible or hidden",
                    );
                    ElementState::Visible
                }
            };
            Step::WaitFor {
                selector,
                state,
                timeout: timeout_of(args, at, p),
            }
        }
        Step::Type { selector, .. } => {
            let text = match args.get("text") {
                Some(Value::String(t)) => Text::Plain(t.clone()),
                Some(Value::Object(o)) if o.len() == 1 => {
                    match o.get("secret").and_then(Value::as_str) {
                        Some(name) if valid_secret_name(name) => Text::Secret(name.to_string()),
                        _ => {
                            p.add(
                                &format!("{at}.text.secret"),
                                "expected a secret name like LINKEDIN_PASSWORD",
                            );
                            Text::Plain(String::new())
                        }
                    }
                }
                _ => {
                    p.add(
                        &format!("{at}.text"),
                        "required: a string, or {\"secret\": \"NAME\"}",
                    );
                    Text::Plain(String::new())
                }
            };
            let delay_ms = match args.get("delay_ms") {
                None => 100,
                Some(v) => match v.as_u64() {
                    Some(n) if n <= 2_000 => n,
                    _ => {
                        p.add(&format!("{at}.delay_ms"), "expected 0 to 2000");
                        100
                    }
                },
            };
            Step::Type {
                selector,
                text,
                delay_ms,
                clear: bool_of(args, "clear", at, p),
            }
        }
        Step::Extract { selector, into, .. } => {
            let attribute = match args.get("attribute") {
                None => None,
                Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
                Some(_) => {
                    p.add(&format!("{at}.attribute"), "expected an attribute name");
                    None
                }
            };
            Step::Extract {
                selector,
                attribute,
                all: bool_of(args, "all", at, p),
                into,
            }
        }
        Step::Screenshot { .. } => Step::Screenshot {
            full_page: bool_of(args, "full_page", at, p),
        },
        Step::Consume { quota, .. } => {
            if !quota.is_empty() && !crate::quota::valid_name(&quota) {
                p.add(&format!("{at}.quota"), crate::quota::NAME_RULE);
            }
            let cost = match args.get("cost") {
                None => 1,
                Some(c) => match c.as_i64() {
                    Some(n) if (1..=1_000_000).contains(&n) => n,
                    _ => {
                        p.add(
                            &format!("{at}.cost"),
                            "expected a whole number from 1 to 1000000",
                        );
                        1
                    }
                },
            };
            Step::Consume { quota, cost }
        }
        Step::Sleep { .. } => {
            let ms = match args.get("ms").and_then(Value::as_u64) {
                Some(ms) if ms <= MAX_SLEEP_MS => ms,
                _ => {
                    p.add(&format!("{at}.ms"), format!("required: 0 to {MAX_SLEEP_MS} (wait for something with wait_for instead)"));
                    0
                }
            };
            Step::Sleep { ms }
        }
        other => other,
    }
}

/// What a script produced.
#[derive(Debug, Default)]
pub struct ScriptOutput {
    pub extracted: BTreeMap<String, Value>,
    pub screenshots: Vec<(String, Vec<u8>)>,
    pub url: Option<String>,
}

/// Why a script stopped.
#[derive(Debug)]
pub struct StepFailure {
    pub index: usize,
    pub action: &'static str,
    pub kind: &'static str,
    pub message: String,
}

/// What running a script needs besides the page.
pub struct Env<'a> {
    /// Resolved secrets by name (only those the script names).
    pub secrets: &'a BTreeMap<String, String>,
    pub step_timeout: Duration,
    pub consume: Option<&'a Consumer>,
    /// Navigation intervals and robots.txt, checked before each `goto` (outside its timeout).
    pub politeness: Option<&'a super::politeness::Politeness>,
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

const WAIT_FOR_JS: &str = r#"(sel, state, timeoutMs) => new Promise((resolve) => {
  const check = () => {
    const el = document.querySelector(sel);
    if (state === 'attached') return !!el;
    const visible = !!el && !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
      && getComputedStyle(el).visibility !== 'hidden';
    return state === 'visible' ? visible : !visible;
  };
  if (check()) return resolve(true);
  let obs, iv, to;
  const done = (v) => { if (obs) obs.disconnect(); clearInterval(iv); clearTimeout(to); resolve(v); };
  obs = new MutationObserver(() => { if (check()) done(true); });
  obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  iv = setInterval(() => { if (check()) done(true); }, 100);
  to = setTimeout(() => done(false), timeoutMs);
})"#;

const EXTRACT_JS: &str = r#"(sel, attr, all) => {
  const value = (e) => attr ? e.getAttribute(attr) : (e.innerText !== undefined ? e.innerText : e.textContent).trim();
  if (all) return [...document.querySelectorAll(sel)].map(value);
  const e = document.querySelector(sel);
  return e ? { v: value(e) } : null;
}"#;

const CLEAR_JS: &str = r#"(sel) => { const e = document.querySelector(sel); if (!e) return false;
  e.focus(); if ('value' in e) { e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); } return true; }"#;

const SELECT_JS: &str = r#"(sel, value) => { const e = document.querySelector(sel); if (!e) return 'missing';
  if (![...e.options].some(o => o.value === value)) return 'no option';
  e.value = value; e.dispatchEvent(new Event('input', { bubbles: true }));
  e.dispatchEvent(new Event('change', { bubbles: true })); return 'ok'; }"#;

const TEXT_JS: &str = r#"(sel) => { const e = document.querySelector(sel); return e ? (e.innerText || e.textContent || '') : null; }"#;

/// Runs every step in order; stops at the first failure, or early (`Ok(Some(_))`) when a
/// `consume` step is refused.
pub async fn run(
    page: &Page,
    steps: &[Step],
    env: &Env<'_>,
    out: &mut ScriptOutput,
) -> Result<Option<Stopped>, StepFailure> {
    for (index, step) in steps.iter().enumerate() {
        if let Step::Consume { quota, cost } = step {
            let Some(consume) = env.consume else {
                return Err(StepFailure {
                    index,
                    action: "consume",
                    kind: "quota",
                    message: "the quota counter is unavailable".into(),
                });
            };
            match tokio::time::timeout(env.step_timeout, consume(quota.clone(), *cost)).await {
                Ok(Ok(None)) => continue,
                Ok(Ok(Some(reason))) => {
                    out.url = page.url().await.ok().flatten();
                    return Ok(Some(Stopped {
                        index,
                        quota: quota.clone(),
                        reason,
                    }));
                }
                Ok(Err(message)) => {
                    return Err(StepFailure {
                        index,
                        action: "consume",
                        kind: "quota",
                        message,
                    })
                }
                Err(_) => {
                    return Err(StepFailure {
                        index,
                        action: "consume",
                        kind: "step_timeout",
                        message: "the quota counter did not answer in time".into(),
                    })
                }
            }
        }
        let limit = match step {
            Step::Goto {
                timeout: Some(t), ..
            }
            | Step::WaitFor {
                timeout: Some(t), ..
            } => *t,
            Step::Type { text, delay_ms, .. } => {
                let n = match text {
                    Text::Plain(t) => t.chars().count(),
                    Text::Secret(_) => 256,
                };
                env.step_timeout + Duration::from_millis(n as u64 * (delay_ms + delay_ms / 2 + 20))
            }
            Step::Sleep { ms } => Duration::from_millis(*ms) + env.step_timeout,
            _ => env.step_timeout,
        };
        let fail = |kind: &'static str, message: String| StepFailure {
            index,
            action: step.action(),
            kind,
            message,
        };
        if let (Step::Goto { url, .. }, Some(p)) = (step, env.politeness) {
            p.before_navigation(url)
                .await
                .map_err(|r| fail("robots_disallowed", r.0))?;
        }
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(limit, one(page, step, env, limit, out)).await;
        if let (Step::Goto { url, .. }, Some(p)) = (step, env.politeness) {
            p.after_navigation(url);
        }
        tracing::debug!(
            step = index,
            action = step.action(),
            ms = started.elapsed().as_millis() as u64,
            "browser step"
        );
        match result {
            Ok(Ok(())) => {}
            Ok(Err((kind, message))) => return Err(fail(kind, message)),
            Err(_) => {
                return Err(fail(
                    "step_timeout",
                    format!("did not finish within {} ms", limit.as_millis()),
                ))
            }
        }
    }
    out.url = page.url().await.ok().flatten();
    Ok(None)
}

type StepResult = Result<(), (&'static str, String)>;

async fn one(
    page: &Page,
    step: &Step,
    env: &Env<'_>,
    limit: Duration,
    out: &mut ScriptOutput,
) -> StepResult {
    let cdp = |e: chromiumoxide::error::CdpError| ("browser", e.to_string());
    match step {
        Step::Goto {
            url, wait_until, ..
        } => goto(page, url, *wait_until).await,
        Step::WaitFor {
            selector, state, ..
        } => {
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
                vec![json!(selector), json!(state_s), json!(ms)],
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
            let el = page
                .find_element(selector.as_str())
                .await
                .map_err(|_| ("not_found", format!("no element matches `{selector}`")))?;
            el.click().await.map_err(cdp)?;
            Ok(())
        }
        Step::Type {
            selector,
            text,
            delay_ms,
            clear,
        } => {
            let value = match text {
                Text::Plain(t) => t.clone(),
                Text::Secret(name) => env
                    .secrets
                    .get(name)
                    .cloned()
                    .ok_or(("secret_missing", format!("secret {name} is not configured")))?,
            };
            let el = page
                .find_element(selector.as_str())
                .await
                .map_err(|_| ("not_found", format!("no element matches `{selector}`")))?;
            el.click().await.map_err(cdp)?;
            if *clear {
                js(page, CLEAR_JS, vec![json!(selector)])
                    .await
                    .map_err(|e| ("browser", e))?;
            }
            let mut buf = [0u8; 4];
            for (i, ch) in value.chars().enumerate() {
                if i > 0 && *delay_ms > 0 {
                    // Human pacing: the delay ± 50 %.
                    let d = rand::thread_rng().gen_range(delay_ms / 2..=delay_ms + delay_ms / 2);
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
            match js(page, SELECT_JS, vec![json!(selector), json!(value)])
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
            let v = js(
                page,
                EXTRACT_JS,
                vec![json!(selector), json!(attribute), json!(all)],
            )
            .await
            .map_err(|e| ("browser", e))?;
            let v = if *all {
                v
            } else {
                match v.get("v") {
                    Some(x) => x.clone(),
                    None => return Err(("not_found", format!("no element matches `{selector}`"))),
                }
            };
            out.extracted.insert(into.clone(), v);
            Ok(())
        }
        Step::AssertText { selector, contains } => {
            let text = js(page, TEXT_JS, vec![json!(selector)])
                .await
                .map_err(|e| ("browser", e))?;
            match text.as_str() {
                None => Err(("not_found", format!("no element matches `{selector}`"))),
                Some(t) if t.contains(contains.as_str()) => Ok(()),
                Some(t) => {
                    let shown: String = t.chars().take(200).collect();
                    Err((
                        "assertion",
                        format!("`{selector}` does not contain {contains:?} (it reads {shown:?})"),
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
            let name = format!("step-{:03}.png", out.screenshots.len() + 1);
            out.screenshots.push((name, png));
            Ok(())
        }
        Step::Sleep { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Ok(())
        }
        // Handled by `run` (it needs the quota counter, not the page).
        Step::Consume { .. } => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_and_reports_indexes() {
        let mut p = Problems::default();
        let steps = parse(
            &json!([
                {"goto": {"url": "https://example.org/", "wait_until": "networkidle", "timeout": "20s"}},
                {"wait_for": {"selector": "#x", "state": "hidden"}},
                {"click": {"selector": "#go"}},
                {"type": {"selector": "#pw", "text": {"secret": "SITE_PASSWORD"}, "delay_ms": 50, "clear": true}},
                {"press": {"key": "Enter"}},
                {"select": {"selector": "#s", "value": "b"}},
                {"extract": {"selector": "li", "all": true, "into": "items"}},
                {"assert_text": {"selector": "h1", "contains": "Welcome"}},
                {"screenshot": {"full_page": true}},
                {"sleep": {"ms": 250}},
            ]),
            "payload.steps",
            &mut p,
        );
        assert!(p.is_empty(), "{:?}", p.as_slice());
        assert_eq!(steps.len(), 10);
        assert_eq!(steps[3].secret(), Some("SITE_PASSWORD"));
        assert!(matches!(
            steps[0],
            Step::Goto {
                wait_until: WaitUntil::NetworkIdle,
                ..
            }
        ));

        let mut p = Problems::default();
        parse(
            &json!([
                {"goto": {"url": "ftp://x"}},
                {"sleep": {"ms": 60000}},
                {"fly": {}},
                {"click": {}},
                {"type": {"selector": "#a", "text": {"secret": "lower"}}},
                {"wait_for": {"selector": "#a", "state": "gone"}},
                {"click": {"selector": "#a"}, "extra": 1},
            ]),
            "payload.steps",
            &mut p,
        );
        let paths: Vec<String> = p.into_vec().into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "payload.steps.0.goto.url",
                "payload.steps.1.sleep.ms",
                "payload.steps.2.fly",
                "payload.steps.3.click.selector",
                "payload.steps.4.type.text.secret",
                "payload.steps.5.wait_for.state",
                "payload.steps.6",
            ]
        );
    }
}
