//! Browser scripts as data: the steps a `browser` job runs and their validation (422 with
//! the step's index). No chromiumoxide here: `engine` runs them.

use std::time::Duration;

use serde_json::Value;

use crate::stdx::duration::parse_duration;
use crate::stdx::problems::Problems;

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
                        Some(name) if crate::stdx::names::secret(name) => {
                            Text::Secret(name.to_string())
                        }
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
            if !quota.is_empty() && !crate::stdx::names::quota(&quota) {
                p.add(&format!("{at}.quota"), crate::stdx::names::QUOTA_RULE);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
