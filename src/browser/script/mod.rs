//! Browser scripts as data: the steps a `browser` job runs and their validation (422 with
//! the full path of each problem, e.g. `payload.steps.2.for_each.steps.1.click.selector`).
//! No chromiumoxide here: `engine` runs them.
//!
//! A small, safe language — values, loops, conditions and "never twice" — and nothing more
//! (anything beyond it belongs in a `command` job):
//! - every string field (`url`, `selector`, `text`, `value`, `contains`, `key`, `into`,
//!   `subject`, `body`) is a [`Template`] over `job`, `vars`, `run`, `now`, `today` and the
//!   aliases of the loops around it (`item` by default), parsed here so a typo is a 422;
//! - `for_each`, `if`, `once` hold steps of their own, nested at most `max_depth` deep, at
//!   most `max_steps` in all ([`Limits`], from `[browser]`).
//!
//! Rooms: this file the model (steps, their parts, the walks over them) and [`Limits`];
//! `parse.rs` the parser and its checks; `ports.rs` the traits a run records through
//! (quotas, the `once` ledger, notices) and what a script that stopped early says.

mod parse;
mod ports;

pub use parse::parse;
pub use ports::{Consumer, Entry, Notifier, OnceLedger, Person, Quota, Refusal, Stopped};

use std::time::Duration;

use crate::stdx::template::Template;

pub const MAX_SLEEP_MS: u64 = 10_000;
/// Items a `for_each` may visit at most (its `max` is capped here).
pub const MAX_ITEMS: usize = 1000;

/// What templates in a script can read (plus the aliases of the loops around them).
pub const ROOTS: &[&str] = &["job", "vars", "run", "now", "today"];

/// How deep blocks nest and how many steps a script has in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_steps: 500,
        }
    }
}

impl Limits {
    /// The limits `[browser]` sets (`max_script_depth`, `max_script_steps`).
    pub fn new(max_depth: usize, max_steps: usize) -> Self {
        Self {
            max_depth,
            max_steps,
        }
    }
}

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

/// Text to type: a template, or a named secret resolved at run time (never template data,
/// never stored in output).
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Plain(Template),
    Secret(String),
}

/// What a `consume` step does when the quota has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExhausted {
    /// End the loop and the run successfully; what is left is reported.
    Stop,
    /// Keep what was done and defer the run to when the window has room again.
    Defer,
    /// Fail the run (`quota_exhausted`).
    Fail,
}

/// What a failing item of a `for_each` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Exists(Template),
    Visible(Template),
    TextContains {
        selector: Template,
        text: Template,
    },
    Equals {
        value: Template,
        to: Template,
    },
    /// The page's address contains this.
    UrlContains(Template),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Goto {
        url: Template,
        wait_until: WaitUntil,
        timeout: Option<Duration>,
    },
    WaitFor {
        selector: Template,
        state: ElementState,
        timeout: Option<Duration>,
    },
    Click {
        selector: Template,
    },
    Type {
        selector: Template,
        text: Text,
        delay_ms: u64,
        clear: bool,
    },
    Press {
        key: Template,
    },
    Select {
        selector: Template,
        value: Template,
    },
    Extract {
        selector: Template,
        attribute: Option<String>,
        all: bool,
        into: Template,
    },
    AssertText {
        selector: Template,
        contains: Template,
    },
    Screenshot {
        full_page: bool,
    },
    Sleep {
        ms: u64,
    },
    /// Count one action against a quota.
    Consume {
        quota: String,
        cost: i64,
        on_exhausted: OnExhausted,
    },
    /// A notice (event `run.notice`) through the outbox, routed like every event.
    Notify {
        subject: Template,
        body: Option<Template>,
        severity: String,
    },
    ForEach {
        selector: Template,
        alias: String,
        max: usize,
        on_error: OnError,
        steps: Vec<Step>,
    },
    If {
        condition: Condition,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    Once {
        key: Template,
        retry_uncertain: bool,
        steps: Vec<Step>,
    },
    /// A person takes over the run's page (a live view), until `until` holds or they press
    /// Continue; the run fails with `person_timeout` after `timeout`.
    HandOver {
        reason: Template,
        until: Option<Condition>,
        timeout: Duration,
    },
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
            Step::Notify { .. } => "notify",
            Step::ForEach { .. } => "for_each",
            Step::If { .. } => "if",
            Step::Once { .. } => "once",
            Step::HandOver { .. } => "hand_over",
        }
    }

    /// The step lists inside a block, with the field that holds each.
    pub fn blocks(&self) -> Vec<(&'static str, &[Step])> {
        match self {
            Step::ForEach { steps, .. } | Step::Once { steps, .. } => vec![("steps", steps)],
            Step::If {
                then, otherwise, ..
            } => vec![("then", then), ("else", otherwise)],
            _ => Vec::new(),
        }
    }
}

/// Calls `f` with every step and its path (`<base>.<i>.<action>`), blocks included.
pub fn visit<'a>(steps: &'a [Step], base: &str, f: &mut dyn FnMut(&str, &'a Step)) {
    for (i, step) in steps.iter().enumerate() {
        let path = format!("{base}.{i}.{}", step.action());
        f(&path, step);
        for (field, inner) in step.blocks() {
            visit(inner, &format!("{path}.{field}"), f);
        }
    }
}

/// The secrets a script names (resolved before it runs).
pub fn secrets(steps: &[Step]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    visit(steps, "steps", &mut |_, s| {
        if let Step::Type {
            text: Text::Secret(name),
            ..
        } = s
        {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
    });
    out
}

/// The quotas `consume` steps name, with the path of each `quota` field under `base`.
pub fn quotas(steps: &[Step], base: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    visit(steps, base, &mut |path, s| {
        if let Step::Consume { quota, .. } = s {
            out.push((format!("{path}.quota"), quota.clone()));
        }
    });
    out
}

/// Whether any step is of the kind `pred` says.
pub fn any(steps: &[Step], pred: &dyn Fn(&Step) -> bool) -> bool {
    let mut found = false;
    visit(steps, "steps", &mut |_, s| found |= pred(s));
    found
}
