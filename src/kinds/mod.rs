//! Job kinds: what a run does. Each kind is one module implementing [`JobKind`] — its
//! payload's validation, the names it references, its execution — and one line in
//! [`registry`]; the scheduler and executor know nothing about any particular kind. What a
//! kind needs from the running system reaches it through the traits of [`system`].

pub mod browser;
pub mod command;
pub mod http;
pub mod noop;
pub mod notify;
pub mod system;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use uuid::Uuid;

use crate::jobs::run_error::RunErrorKind;
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
    /// Notification channels and rules (`notify` checks the channels it names).
    pub routing: std::sync::Arc<crate::notify::Routing>,
    /// The job's quota claims (`max_per_run` caps a script's `consume` steps).
    pub quota: Vec<crate::quota::JobQuota>,
    /// The outbox, browsers, circuits and quotas.
    pub services: system::Services,
    /// `[browser.secrets]` (the kind also reads OVERSEER_SECRET_<NAME>).
    pub secrets: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    /// `[command]` and where command runs keep their files.
    pub command: std::sync::Arc<command::Settings>,
    /// This node's API (`OVERSEER_API_URL`), e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// The timezone of the job's schedule, if it has one.
    pub timezone: Option<String>,
    /// Wall-clock time (the executor's: the system clock, or one a test moves).
    pub clock: std::sync::Arc<dyn crate::stdx::clock::Clock>,
    /// Time the run spends waiting for a person (`hand_over`): not counted against the
    /// job's timeout, and the run's executor slot is free meanwhile.
    pub waiting: Waiting,
}

/// The time a run waits for a person. The executor reads it for the job's timeout and hears
/// of each change (to free the run's slot while it waits).
#[derive(Clone, Default)]
pub struct Waiting(std::sync::Arc<std::sync::Mutex<WaitingState>>);

#[derive(Default)]
struct WaitingState {
    since: Option<std::time::Instant>,
    before: std::time::Duration,
    on_change: Option<std::sync::Arc<dyn Fn(bool) + Send + Sync>>,
    /// Set when nobody took over in time: why (a command run's program is then ended).
    gave_up: Option<tokio::sync::watch::Sender<Option<String>>>,
}

impl Waiting {
    /// `on_change(true)` when a wait begins, `(false)` when it ends.
    pub fn new(on_change: impl Fn(bool) + Send + Sync + 'static) -> Self {
        Waiting(std::sync::Arc::new(std::sync::Mutex::new(WaitingState {
            on_change: Some(std::sync::Arc::new(on_change)),
            ..WaitingState::default()
        })))
    }

    fn change(&self, f: impl FnOnce(&mut WaitingState) -> bool, to: bool) {
        let notify = match self.0.lock() {
            Ok(mut s) => f(&mut s).then(|| s.on_change.clone()).flatten(),
            Err(_) => None,
        };
        if let Some(n) = notify {
            n(to);
        }
    }

    pub fn begin(&self) {
        self.change(
            |s| {
                let starts = s.since.is_none();
                if starts {
                    s.since = Some(std::time::Instant::now());
                }
                starts
            },
            true,
        );
    }

    pub fn end(&self) {
        self.change(
            |s| match s.since.take() {
                Some(t) => {
                    s.before += t.elapsed();
                    true
                }
                None => false,
            },
            false,
        );
    }

    /// Nobody took over in time: the run fails (`person_timeout`) with `why`.
    pub fn give_up(&self, why: String) {
        if let Ok(mut s) = self.0.lock() {
            s.gave_up
                .get_or_insert_with(|| tokio::sync::watch::channel(None).0)
                .send_replace(Some(why));
        }
    }

    /// Resolves with the reason once [`Waiting::give_up`] was called.
    pub async fn given_up(&self) -> String {
        let mut rx = match self.0.lock() {
            Ok(mut s) => s
                .gave_up
                .get_or_insert_with(|| tokio::sync::watch::channel(None).0)
                .subscribe(),
            Err(_) => return std::future::pending().await,
        };
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// All the time waited so far, the current wait included.
    pub fn total(&self) -> std::time::Duration {
        self.0
            .lock()
            .map(|s| s.before + s.since.map(|t| t.elapsed()).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Waiting({:?})", self.total())
    }
}

impl RunContext {
    /// The same for every attempt of one fire: `<job id>:<fire_at>` (the http kind's
    /// `Idempotency-Key`, a command's `OVERSEER_IDEMPOTENCY_KEY`).
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.job_id, self.fire_at.to_rfc3339())
    }

    /// A named secret: `[browser.secrets]`, then OVERSEER_SECRET_<NAME>. The error names
    /// where it may be configured, never a value.
    pub fn secret(&self, name: &str) -> Result<String, RunError> {
        self.secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(format!("OVERSEER_SECRET_{name}")).ok())
            .ok_or_else(|| {
                RunError::new(
                    RunErrorKind::SecretMissing,
                    format!(
                        "secret {name} is not configured ([browser.secrets] or OVERSEER_SECRET_{name})"
                    ),
                )
            })
    }
}

/// Why a run failed. `kind` is stored in `runs.error_kind` by its name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    /// Not a failure: the run should wait until then (a circuit is open) and run again,
    /// without using an attempt.
    pub defer_until: Option<DateTime<Utc>>,
    /// What the failed run still has to show (a command's exit code and last lines).
    pub output: Option<Value>,
}

impl RunError {
    pub fn new(kind: RunErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            defer_until: None,
            output: None,
        }
    }

    /// Keeps `output` with the failure.
    pub fn with_output(mut self, output: Value) -> Self {
        self.output = Some(output);
        self
    }

    pub fn deferred(until: DateTime<Utc>, message: impl Into<String>) -> Self {
        Self {
            kind: RunErrorKind::Deferred,
            message: message.into(),
            defer_until: Some(until),
            output: None,
        }
    }
}

pub trait JobKind: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether its runs execute the user's code on the host (creating or changing such a
    /// job needs the admin role).
    fn runs_code(&self) -> bool {
        false
    }
    /// Checks a payload; problems are reported under `path` (normally "payload").
    fn validate(&self, payload: &Value, path: &str, problems: &mut Problems);
    /// The quotas, channels … a valid payload names (checked to exist, for API and
    /// declarative jobs alike). None by default.
    fn references(&self, _payload: &Value, _path: &str) -> Vec<crate::jobs::Reference> {
        Vec::new()
    }
    /// Runs once. The future runs on the executor's event loop: no blocking calls.
    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>>;
}

/// Every job kind, by name: built once at start-up from the configuration (the browser
/// kind's script limits) and handed to whoever validates or runs jobs (`ApiState::kinds`,
/// `Deps::kinds`, `declarative`) — no process-wide setting.
pub struct Registry(BTreeMap<&'static str, Box<dyn JobKind>>);

impl Registry {
    pub fn new(script: crate::browser::script::Limits) -> Self {
        let kinds: Vec<Box<dyn JobKind>> = vec![
            Box::new(noop::Noop),
            Box::new(http::Http),
            Box::new(notify::Notify),
            Box::new(browser::Browser::new(script)),
            Box::new(command::Command),
        ];
        Self(kinds.into_iter().map(|k| (k.name(), k)).collect())
    }

    /// The kind of this name.
    pub fn get(&self, name: &str) -> Option<&dyn JobKind> {
        self.0.get(name).map(|k| k.as_ref())
    }

    /// Every kind, by name.
    pub fn all(&self) -> impl Iterator<Item = &dyn JobKind> {
        self.0.values().map(|k| k.as_ref())
    }
}

impl crate::jobs::Kinds for Registry {
    fn check(&self, kind: &str, payload: &Value, path: &str, p: &mut Problems) -> bool {
        match self.get(kind) {
            Some(k) => {
                k.validate(payload, path, p);
                true
            }
            None => false,
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }

    fn runs_code(&self, kind: &str) -> bool {
        self.get(kind).is_some_and(|k| k.runs_code())
    }

    fn references(&self, kind: &str, payload: &Value, path: &str) -> Vec<crate::jobs::Reference> {
        self.get(kind)
            .map(|k| k.references(payload, path))
            .unwrap_or_default()
    }
}

/// Rejects fields a kind does not know (a typo must not be silently ignored).
/// Checks that a payload is an object whose fields are all in `allowed` (each other field is
/// a problem at its path); false, with the problem recorded, when it is not an object.
pub fn object_with_fields(
    payload: &Value,
    path: &str,
    expected: &str,
    allowed: &[&str],
    p: &mut Problems,
) -> bool {
    let Some(obj) = payload.as_object() else {
        p.add(path, format!("expected {expected}"));
        return false;
    };
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            p.add(&format!("{path}.{key}"), "unknown field");
        }
    }
    true
}

/// Job definitions with the real kinds behind them: `jobs` sees kinds only through its
/// `Kinds` trait, so what the two do together is checked here, above both.
#[cfg(test)]
mod job_definition_tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use crate::jobs::policy::{self, PolicyDefaults};
    use crate::jobs::JobDef;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn registry() -> crate::kinds::Registry {
        crate::kinds::Registry::new(crate::browser::script::Limits::default())
    }

    fn defaults() -> PolicyDefaults {
        PolicyDefaults {
            misfire_grace: std::time::Duration::from_secs(60),
            catch_up: policy::CatchUp::Latest,
            max_catch_up: 100,
            max_retries: 3,
            retry_delays: vec![std::time::Duration::from_secs(60)],
            timeout: std::time::Duration::ZERO,
            overlap: policy::Overlap::Skip,
            priority: 5,
        }
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let errs = JobDef::parse(
            &json!({
                "name": "Bad Name",
                "kind": "http",
                "payload": {"url": "ftp://x", "method": "PUT", "extra": 1},
                "schedule": {"cron": "99 * * * *", "timezone": "Nowhere/City"},
                "policy": {"priority": 12},
                "tags": ["ok", "NOT OK"],
                "metadata": {"blob": "x".repeat(9000)},
                "surprise": true
            }),
            &registry(),
            &defaults(),
            t0(),
        )
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "name",
            "payload.url",
            "payload.method",
            "payload.extra",
            "schedule.cron",
            "schedule.timezone",
            "policy.priority",
            "tags[1]",
            "metadata",
            "surprise",
        ] {
            assert!(paths.contains(&want), "{want} not in {paths:?}");
        }
        let errs = JobDef::parse(
            &json!({"name": "x", "kind": "teleport", "schedule": {"every": "1s"}}),
            &registry(),
            &defaults(),
            t0(),
        )
        .unwrap_err();
        assert_eq!(errs[0].path, "kind");
        assert!(errs[0].message.contains("noop"), "{}", errs[0].message);
    }

    #[test]
    fn a_good_definition_parses() {
        let def = JobDef::parse(
            &json!({
                "name": "status-check",
                "kind": "http",
                "payload": {"url": "https://example.test/health", "expect_status": [200, 204]},
                "schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
                "policy": {"max_retries": 1, "retry_delays": ["10s"]},
                "tags": ["ops", "ops"],
                "metadata": {"owner": "me"}
            }),
            &registry(),
            &defaults(),
            t0(),
        )
        .unwrap();
        assert_eq!(def.tags, ["ops"]);
        assert_eq!(def.policy.max_retries, 1);
        let patched = def
            .patch(&json!({"policy": {"priority": 9}}), &registry(), t0())
            .unwrap();
        assert_eq!(patched.policy.priority, 9);
        assert_eq!(
            patched.policy.max_retries, 1,
            "patch merges over the job's policy"
        );
        assert!(patched
            .patch(&json!({"kind": "noop"}), &registry(), t0())
            .is_err());
    }
}
