//! The parser of browser scripts: JSON steps into [`Step`]s, every problem reported with
//! its full path, templates parsed (a typo is a 422), blocks nested within [`Limits`].

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::stdx::duration::parse_duration;
use crate::stdx::problems::Problems;
use crate::stdx::template::Template;

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
    ("consume", &["quota", "cost", "on_exhausted"]),
    ("notify", &["subject", "body", "severity"]),
    ("for_each", &["selector", "as", "max", "on_error", "steps"]),
    (
        "if",
        &[
            "exists",
            "visible",
            "text_contains",
            "equals",
            "url_contains",
            "then",
            "else",
        ],
    ),
    ("once", &["key", "steps", "retry_uncertain"]),
    ("hand_over", &["reason", "until", "timeout"]),
];

/// How long a `hand_over` waits for a person when it does not say.
pub const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What the parser carries down into blocks.
struct Parser<'p> {
    p: &'p mut Problems,
    limits: Limits,
    count: usize,
    counted_over: bool,
}

/// Parses `steps` (a list of `{"<action>": {...}}`); problems are reported under `path`.
pub fn parse(v: &Value, path: &str, limits: &Limits, p: &mut Problems) -> Vec<Step> {
    let mut parser = Parser {
        p,
        limits: *limits,
        count: 0,
        counted_over: false,
    };
    let roots: Vec<String> = ROOTS.iter().map(|r| r.to_string()).collect();
    let steps = parser.list(v, path, 1, &roots);
    if parser.counted_over {
        let max = parser.limits.max_steps;
        parser.p.add(
            path,
            format!("at most {max} steps in all (browser.max_script_steps)"),
        );
    }
    steps
}

impl Parser<'_> {
    fn list(&mut self, v: &Value, path: &str, depth: usize, roots: &[String]) -> Vec<Step> {
        let Some(list) = v.as_array() else {
            self.p.add(
                path,
                "expected a list of steps like [{\"goto\": {\"url\": \"https://…\"}}]",
            );
            return Vec::new();
        };
        if list.is_empty() {
            self.p.add(path, "at least one step");
        }
        if depth > self.limits.max_depth {
            self.p.add(
                path,
                format!(
                    "blocks nest at most {} deep (browser.max_script_depth)",
                    self.limits.max_depth
                ),
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            self.count += 1;
            if self.count > self.limits.max_steps {
                self.counted_over = true;
                return out;
            }
            if let Some(step) = self.step(item, &format!("{path}.{i}"), depth, roots) {
                out.push(step);
            }
        }
        out
    }

    fn template(
        &mut self,
        args: &serde_json::Map<String, Value>,
        k: &str,
        at: &str,
        roots: &[String],
        required: bool,
    ) -> Option<Template> {
        match args.get(k) {
            Some(Value::String(s)) if !s.is_empty() => match Template::parse_with(s, roots) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.p.add(&format!("{at}.{k}"), e.to_string());
                    None
                }
            },
            None if !required => None,
            _ => {
                self.p
                    .add(&format!("{at}.{k}"), "required: a non-empty string");
                None
            }
        }
    }

    /// A condition (`if`, and `hand_over`'s `until`): exactly one of exists, visible,
    /// text_contains, equals, url_contains in `args`.
    fn condition(
        &mut self,
        args: &serde_json::Map<String, Value>,
        at: &str,
        roots: &[String],
    ) -> Option<Condition> {
        let t = |me: &mut Self, k: &str| me.template(args, k, at, roots, true);
        let given: Vec<&str> = [
            "exists",
            "visible",
            "text_contains",
            "equals",
            "url_contains",
        ]
        .into_iter()
        .filter(|k| args.contains_key(*k))
        .collect();
        if given.len() != 1 {
            self.p.add(
                        at,
                        "expected exactly one condition: exists, visible, text_contains, equals or url_contains",
                    );
            return None;
        }
        let condition = match given[0] {
            "url_contains" => Condition::UrlContains(t(self, "url_contains")?),
            "exists" => Condition::Exists(t(self, "exists")?),
            "visible" => Condition::Visible(t(self, "visible")?),
            k => {
                let inner_at = format!("{at}.{k}");
                let Some(o) = args.get(k).and_then(Value::as_object) else {
                    self.p.add(&inner_at, "expected an object");
                    return None;
                };
                let fields: &[&str] = if k == "equals" {
                    &["value", "to"]
                } else {
                    &["selector", "text"]
                };
                for key in o.keys() {
                    if !fields.contains(&key.as_str()) {
                        self.p.add(&format!("{inner_at}.{key}"), "unknown field");
                    }
                }
                let a = self.template(o, fields[0], &inner_at, roots, true);
                let b = if k == "equals" {
                    // Comparing with "" is allowed.
                    match o.get("to") {
                        Some(Value::String(s)) => match Template::parse_with(s, roots) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                self.p.add(&format!("{inner_at}.to"), e.to_string());
                                None
                            }
                        },
                        _ => {
                            self.p.add(&format!("{inner_at}.to"), "required: a string");
                            None
                        }
                    }
                } else {
                    self.template(o, "text", &inner_at, roots, true)
                };
                if k == "equals" {
                    Condition::Equals { value: a?, to: b? }
                } else {
                    Condition::TextContains {
                        selector: a?,
                        text: b?,
                    }
                }
            }
        };
        Some(condition)
    }

    fn step(&mut self, item: &Value, at: &str, depth: usize, roots: &[String]) -> Option<Step> {
        let Some((action, args)) = item
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            self.p.add(
                at,
                "expected one action, like {\"click\": {\"selector\": \"#send\"}}",
            );
            return None;
        };
        let Some((_, allowed)) = FIELDS.iter().find(|(a, _)| a == action) else {
            self.p.add(
                &format!("{at}.{action}"),
                format!(
                    "unknown action; known: {}",
                    FIELDS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
                ),
            );
            return None;
        };
        let at = format!("{at}.{action}");
        let Some(args) = args.as_object() else {
            self.p.add(&at, "expected an object of arguments");
            return None;
        };
        for k in args.keys() {
            if !allowed.contains(&k.as_str()) {
                self.p.add(&format!("{at}.{k}"), "unknown field");
            }
        }
        let before = self.p.as_slice().len();
        let step = self.build(action, args, &at, depth, roots);
        (self.p.as_slice().len() == before)
            .then_some(step)
            .flatten()
    }

    fn build(
        &mut self,
        action: &str,
        args: &serde_json::Map<String, Value>,
        at: &str,
        depth: usize,
        roots: &[String],
    ) -> Option<Step> {
        let t = |me: &mut Self, k: &str| me.template(args, k, at, roots, true);
        Some(match action {
            "goto" => {
                let url = t(self, "url")?;
                if url.is_literal() {
                    match url::Url::parse(url.source()) {
                        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                        _ => self
                            .p
                            .add(&format!("{at}.url"), "expected an http:// or https:// URL"),
                    }
                }
                let wait_until = match args.get("wait_until").map(|v| v.as_str()) {
                    None | Some(Some("load")) => WaitUntil::Load,
                    Some(Some("domcontentloaded")) => WaitUntil::DomContentLoaded,
                    Some(Some("networkidle")) => WaitUntil::NetworkIdle,
                    _ => {
                        self.p.add(
                            &format!("{at}.wait_until"),
                            "expected load, domcontentloaded or networkidle",
                        );
                        WaitUntil::Load
                    }
                };
                Step::Goto {
                    url,
                    wait_until,
                    timeout: timeout_of(args, at, self.p),
                }
            }
            "wait_for" => {
                let selector = t(self, "selector")?;
                let state = match args.get("state").map(|v| v.as_str()) {
                    None | Some(Some("visible")) => ElementState::Visible,
                    Some(Some("attached")) => ElementState::Attached,
                    Some(Some("hidden")) => ElementState::Hidden,
                    _ => {
                        self.p.add(
                            &format!("{at}.state"),
                            "expected attached, visible or hidden",
                        );
                        ElementState::Visible
                    }
                };
                Step::WaitFor {
                    selector,
                    state,
                    timeout: timeout_of(args, at, self.p),
                }
            }
            "click" => Step::Click {
                selector: t(self, "selector")?,
            },
            "type" => {
                let selector = t(self, "selector");
                let text = match args.get("text") {
                    Some(Value::String(_)) => t(self, "text").map(Text::Plain),
                    Some(Value::Object(o)) if o.len() == 1 => {
                        match o.get("secret").and_then(Value::as_str) {
                            Some(name) if crate::stdx::names::secret(name) => {
                                Some(Text::Secret(name.to_string()))
                            }
                            _ => {
                                self.p.add(
                                    &format!("{at}.text.secret"),
                                    "expected a secret name like LINKEDIN_PASSWORD",
                                );
                                None
                            }
                        }
                    }
                    _ => {
                        self.p.add(
                            &format!("{at}.text"),
                            "required: a string, or {\"secret\": \"NAME\"}",
                        );
                        None
                    }
                };
                let delay_ms = match args.get("delay_ms") {
                    None => 100,
                    Some(v) => match v.as_u64() {
                        Some(n) if n <= 2_000 => n,
                        _ => {
                            self.p.add(&format!("{at}.delay_ms"), "expected 0 to 2000");
                            100
                        }
                    },
                };
                let clear = bool_of(args, "clear", at, self.p);
                Step::Type {
                    selector: selector?,
                    text: text?,
                    delay_ms,
                    clear,
                }
            }
            "press" => Step::Press {
                key: t(self, "key")?,
            },
            "select" => {
                let selector = t(self, "selector");
                let value = t(self, "value");
                Step::Select {
                    selector: selector?,
                    value: value?,
                }
            }
            "extract" => {
                let selector = t(self, "selector");
                let into = t(self, "into");
                let attribute = match args.get("attribute") {
                    None => None,
                    Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
                    Some(_) => {
                        self.p
                            .add(&format!("{at}.attribute"), "expected an attribute name");
                        None
                    }
                };
                let all = bool_of(args, "all", at, self.p);
                Step::Extract {
                    selector: selector?,
                    attribute,
                    all,
                    into: into?,
                }
            }
            "assert_text" => {
                let selector = t(self, "selector");
                let contains = t(self, "contains");
                Step::AssertText {
                    selector: selector?,
                    contains: contains?,
                }
            }
            "screenshot" => Step::Screenshot {
                full_page: bool_of(args, "full_page", at, self.p),
            },
            "sleep" => {
                let ms = match args.get("ms").and_then(Value::as_u64) {
                    Some(ms) if ms <= MAX_SLEEP_MS => ms,
                    _ => {
                        self.p.add(
                            &format!("{at}.ms"),
                            format!(
                                "required: 0 to {MAX_SLEEP_MS} (wait for something with wait_for instead)"
                            ),
                        );
                        0
                    }
                };
                Step::Sleep { ms }
            }
            "consume" => {
                let quota = match args.get("quota").and_then(Value::as_str) {
                    Some(q) if crate::stdx::names::quota(q) => q.to_string(),
                    Some(q) if !q.is_empty() => {
                        self.p
                            .add(&format!("{at}.quota"), crate::stdx::names::QUOTA_RULE);
                        String::new()
                    }
                    _ => {
                        self.p
                            .add(&format!("{at}.quota"), "required: a non-empty string");
                        String::new()
                    }
                };
                let cost = match args.get("cost") {
                    None => 1,
                    Some(c) => match c.as_i64() {
                        Some(n) if (1..=1_000_000).contains(&n) => n,
                        _ => {
                            self.p.add(
                                &format!("{at}.cost"),
                                "expected a whole number from 1 to 1000000",
                            );
                            1
                        }
                    },
                };
                let on_exhausted = match args.get("on_exhausted").map(|v| v.as_str()) {
                    None | Some(Some("stop")) => OnExhausted::Stop,
                    Some(Some("defer")) => OnExhausted::Defer,
                    Some(Some("fail")) => OnExhausted::Fail,
                    _ => {
                        self.p.add(
                            &format!("{at}.on_exhausted"),
                            "expected stop, defer or fail",
                        );
                        OnExhausted::Stop
                    }
                };
                Step::Consume {
                    quota,
                    cost,
                    on_exhausted,
                }
            }
            "notify" => {
                let subject = t(self, "subject");
                let body = self.template(args, "body", at, roots, false);
                let severity = match args.get("severity").map(|v| v.as_str()) {
                    None => "info".to_string(),
                    Some(Some(s @ ("info" | "warning" | "error" | "critical"))) => s.to_string(),
                    _ => {
                        self.p.add(
                            &format!("{at}.severity"),
                            "expected info, warning, error or critical",
                        );
                        "info".to_string()
                    }
                };
                Step::Notify {
                    subject: subject?,
                    body,
                    severity,
                }
            }
            "for_each" => {
                let selector = t(self, "selector");
                let alias = match args.get("as") {
                    None => "item".to_string(),
                    Some(Value::String(a))
                        if !a.is_empty()
                            && a.len() <= 32
                            && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            && !ROOTS.contains(&a.as_str()) =>
                    {
                        a.clone()
                    }
                    Some(_) => {
                        self.p.add(
                            &format!("{at}.as"),
                            format!(
                                "expected a name like item or contact (letters, digits, _; not {})",
                                ROOTS.join(", ")
                            ),
                        );
                        "item".to_string()
                    }
                };
                let max = match args.get("max") {
                    None => 50,
                    Some(v) => match v.as_u64() {
                        Some(n) if (1..=MAX_ITEMS as u64).contains(&n) => n as usize,
                        _ => {
                            self.p
                                .add(&format!("{at}.max"), format!("expected 1 to {MAX_ITEMS}"));
                            50
                        }
                    },
                };
                let on_error = match args.get("on_error").map(|v| v.as_str()) {
                    None | Some(Some("fail")) => OnError::Fail,
                    Some(Some("continue")) => OnError::Continue,
                    _ => {
                        self.p
                            .add(&format!("{at}.on_error"), "expected fail or continue");
                        OnError::Fail
                    }
                };
                let mut inner: Vec<String> = roots.to_vec();
                if !inner.contains(&alias) {
                    inner.push(alias.clone());
                }
                let steps = self.block(args, "steps", at, depth, &inner);
                Step::ForEach {
                    selector: selector?,
                    alias,
                    max,
                    on_error,
                    steps,
                }
            }
            "if" => {
                let condition = self.condition(args, at, roots)?;
                if !args.contains_key("then") && !args.contains_key("else") {
                    self.p.add(at, "expected `then` and/or `else` steps");
                }
                let then = self.optional_block(args, "then", at, depth, roots);
                let otherwise = self.optional_block(args, "else", at, depth, roots);
                Step::If {
                    condition,
                    then,
                    otherwise,
                }
            }
            "hand_over" => {
                let reason = t(self, "reason");
                let until = match args.get("until") {
                    None => None,
                    Some(Value::Object(u)) => {
                        let inner_at = format!("{at}.until");
                        for key in u.keys() {
                            if ![
                                "exists",
                                "visible",
                                "text_contains",
                                "equals",
                                "url_contains",
                            ]
                            .contains(&key.as_str())
                            {
                                self.p
                                    .add(&format!("{inner_at}.{key}"), "unknown condition");
                            }
                        }
                        Some(self.condition(u, &inner_at, roots)?)
                    }
                    Some(_) => {
                        self.p.add(
                            &format!("{at}.until"),
                            "expected a condition, as in `if`: {\"visible\": \"#inbox\"}",
                        );
                        return None;
                    }
                };
                let timeout = match args.get("timeout") {
                    None => HAND_OVER_TIMEOUT,
                    Some(v) => match v.as_str().map(parse_duration) {
                        Some(Ok(d))
                            if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) =>
                        {
                            d
                        }
                        _ => {
                            self.p.add(
                                &format!("{at}.timeout"),
                                "expected a duration from 1s to 24h, like \"30m\"",
                            );
                            HAND_OVER_TIMEOUT
                        }
                    },
                };
                Step::HandOver {
                    reason: reason?,
                    until,
                    timeout,
                }
            }
            "once" => {
                let key = t(self, "key");
                let retry_uncertain = bool_of(args, "retry_uncertain", at, self.p);
                let steps = self.block(args, "steps", at, depth, roots);
                Step::Once {
                    key: key?,
                    retry_uncertain,
                    steps,
                }
            }
            _ => return None,
        })
    }

    fn block(
        &mut self,
        args: &serde_json::Map<String, Value>,
        k: &str,
        at: &str,
        depth: usize,
        roots: &[String],
    ) -> Vec<Step> {
        self.list(
            args.get(k).unwrap_or(&Value::Null),
            &format!("{at}.{k}"),
            depth + 1,
            roots,
        )
    }

    fn optional_block(
        &mut self,
        args: &serde_json::Map<String, Value>,
        k: &str,
        at: &str,
        depth: usize,
        roots: &[String],
    ) -> Vec<Step> {
        if args.contains_key(k) {
            self.block(args, k, at, depth, roots)
        } else {
            Vec::new()
        }
    }
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

#[cfg(test)]
mod tests;
