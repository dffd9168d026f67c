//! The engine that runs a script on a page. It never sleeps to wait for something:
//! navigation waits come from CDP lifecycle events, element waits from a MutationObserver in
//! the page; the only pauses are `sleep` steps (≤ 10 s) and the per-key typing delay.

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

use super::page_js::*;
use super::script::{Consumer, ElementState, Step, Stopped, Text, WaitUntil};

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
