//! Job kinds: what a run does. Each kind is one module implementing [`JobKind`] and one line
//! in [`registry`]; the scheduler and executor know nothing about any particular kind.

pub mod browser;
pub mod http;
pub mod noop;
pub mod notify;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use uuid::Uuid;

use crate::stdx::problems::Problems;

/// What a running job can know about itself.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub run_id: Uuid,
    pub job_id: Uuid,
    pub job_name: String,
    pub fire_at: DateTime<Utc>,
    pub attempt: i32,
    pub metadata: Value,
    pub http: reqwest::Client,
    /// For kinds that write to the database (`notify` writes outbox rows).
    pub db: crate::db::Db,
    pub routing: std::sync::Arc<crate::notify::Routing>,
    /// This node's browser pool (`browser` kind); None while it restarts.
    pub browser: Option<actix::Addr<crate::actors::browser::BrowserPool>>,
    /// The browser circuit breakers' settings.
    pub circuit: crate::db::circuits::Settings,
    /// The job's quota claims (`max_per_run` caps a script's `consume` steps).
    pub quota: Vec<crate::quota::JobQuota>,
    pub quota_counter: Option<actix::Addr<crate::actors::quota::QuotaCounter>>,
    /// `[browser.secrets]` (the kind also reads OVERSEER_SECRET_<NAME>).
    pub secrets: std::sync::Arc<std::collections::BTreeMap<String, String>>,
}

impl RunContext {
    /// A named secret: `[browser.secrets]`, then OVERSEER_SECRET_<NAME>. The error names
    /// where it may be configured, never a value.
    pub fn secret(&self, name: &str) -> Result<String, RunError> {
        self.secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(format!("OVERSEER_SECRET_{name}")).ok())
            .ok_or_else(|| {
                RunError::new(
                    "secret_missing",
                    format!(
                        "secret {name} is not configured ([browser.secrets] or OVERSEER_SECRET_{name})"
                    ),
                )
            })
    }
}

/// Why a run failed. `kind` is a stable snake_case word stored in `runs.error_kind`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RunError {
    pub kind: &'static str,
    pub message: String,
    /// Not a failure: the run should wait until then (a circuit is open) and run again,
    /// without using an attempt.
    pub defer_until: Option<DateTime<Utc>>,
}

impl RunError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            defer_until: None,
        }
    }

    pub fn deferred(until: DateTime<Utc>, message: impl Into<String>) -> Self {
        Self {
            kind: "deferred",
            message: message.into(),
            defer_until: Some(until),
        }
    }
}

pub trait JobKind: Send + Sync {
    fn name(&self) -> &'static str;
    /// Checks a payload; problems are reported under `path` (normally "payload").
    fn validate(&self, payload: &Value, path: &str, problems: &mut Problems);
    /// Runs once. The future runs on the executor's event loop: no blocking calls.
    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>>;
}

pub type Registry = BTreeMap<&'static str, Box<dyn JobKind>>;

/// Every job kind, by name.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let kinds: Vec<Box<dyn JobKind>> = vec![
            Box::new(noop::Noop),
            Box::new(http::Http),
            Box::new(notify::Notify),
            Box::new(browser::Browser),
        ];
        kinds.into_iter().map(|k| (k.name(), k)).collect()
    })
}

/// Rejects fields a kind does not know (a typo must not be silently ignored).
pub fn known_fields(payload: &Value, path: &str, allowed: &[&str], p: &mut Problems) {
    if let Some(obj) = payload.as_object() {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                p.add(&format!("{path}.{key}"), "unknown field");
            }
        }
    }
}
