//! The actors' side of `kinds::system`: the traits a running kind uses, implemented with the
//! database, this node's directory of actors and the configuration.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::{BoxFuture, LocalBoxFuture};
use uuid::Uuid;

use super::browser::{CancelBrowserRun, HoldProfile, ReleaseProfile, RunBrowser};
use super::quota::{Consume, Consumed, RefundUnits};
use super::Deps;
use crate::browser::script::{Entry, Notifier, OnceLedger};
use crate::browser::{BrowserRun, RunOutcome};
use crate::db::circuits;
use crate::jobs::run_error::RunErrorKind;
use crate::kinds::system::{
    Browsers, Circuits, Grants, HeldProfile, Outbox, QuotaAnswer, Quotas, RunTokens, ScriptRun,
    Scripts, Services,
};
use crate::kinds::RunError;
use crate::notify::Notice;
use crate::telemetry::names;

/// The system as the executor hands it to every run.
pub fn for_runs(deps: &Deps) -> Services {
    let node = Arc::new(NodeServices(deps.clone()));
    Services {
        outbox: node.clone(),
        browsers: node.clone(),
        circuits: node.clone(),
        quotas: node.clone(),
        tokens: node.clone(),
        scripts: node,
    }
}

struct NodeServices(Deps);

/// How long a run waits when the browser pool is restarting before it starts (deferred, no
/// attempt used: overseer's own restart is not the run's failure).
const POOL_RESTART_WAIT: chrono::Duration = chrono::Duration::seconds(1);

impl Outbox for NodeServices {
    fn enqueue(
        &self,
        notice: Notice,
        channels: Vec<String>,
    ) -> LocalBoxFuture<'static, Result<usize, RunError>> {
        let rows = self.0.routing.rows_for(&notice, Some(&channels));
        let db = self.0.db.clone();
        Box::pin(async move {
            db.run(move |c| crate::db::notifications::enqueue(c, &rows))
                .await
                .map_err(|e| RunError::new(RunErrorKind::Database, e.to_string()))
        })
    }
}

impl Browsers for NodeServices {
    fn available(&self) -> bool {
        self.0.directory.browser_pool().is_some()
    }

    fn run(&self, run: BrowserRun) -> LocalBoxFuture<'static, Result<RunOutcome, RunError>> {
        let pool = self.0.directory.browser_pool();
        let now = self.0.clock.now();
        Box::pin(async move {
            let Some(pool) = pool else {
                return Err(RunError::deferred(
                    now + POOL_RESTART_WAIT,
                    "the browser pool is restarting",
                ));
            };
            match pool.send(RunBrowser(run)).await {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(f)) => Err(RunError::new(f.kind, f.message)),
                Err(_) => Err(RunError::new(
                    RunErrorKind::BrowserUnavailable,
                    "the browser pool stopped during the run",
                )),
            }
        })
    }

    fn cancel(&self, run_id: Uuid) {
        if let Some(pool) = self.0.directory.browser_pool() {
            pool.do_send(CancelBrowserRun(run_id));
        }
    }

    fn hold(
        &self,
        run_id: Uuid,
        profile: String,
    ) -> LocalBoxFuture<'static, Result<HeldProfile, RunError>> {
        let pool = self.0.directory.browser_pool();
        let now = self.0.clock.now();
        Box::pin(async move {
            let Some(pool) = pool else {
                return Err(RunError::deferred(
                    now + POOL_RESTART_WAIT,
                    "the browser pool is restarting",
                ));
            };
            match pool.send(HoldProfile { run_id, profile }).await {
                Ok(Ok(held)) => Ok(HeldProfile {
                    cdp_url: held.cdp_url,
                    died: held.died,
                }),
                Ok(Err(f)) => Err(RunError::new(f.kind, f.message)),
                Err(_) => Err(RunError::new(
                    RunErrorKind::BrowserUnavailable,
                    "the browser pool stopped",
                )),
            }
        })
    }

    fn release(&self, run_id: Uuid) {
        if let Some(pool) = self.0.directory.browser_pool() {
            pool.do_send(ReleaseProfile(run_id));
        }
    }
}

impl Circuits for NodeServices {
    fn admit(
        &self,
        domain: String,
    ) -> LocalBoxFuture<'static, Result<Option<DateTime<Utc>>, RunError>> {
        let db = self.0.db.clone();
        let clock = self.0.clock.clone();
        Box::pin(async move {
            let admission = db
                .run(move |c| circuits::admit(c, &domain, clock.now()))
                .await
                .map_err(|e| RunError::new(RunErrorKind::Database, e.to_string()))?;
            Ok(match admission {
                circuits::Admission::Wait(until) => Some(until),
                circuits::Admission::Go | circuits::Admission::Probe => None,
            })
        })
    }

    fn record(&self, domain: String, error: Option<String>) -> LocalBoxFuture<'static, ()> {
        let db = self.0.db.clone();
        let routing = self.0.routing.clone();
        let b = &self.0.config.browser;
        let settings = circuits::Settings {
            failures: b.circuit_failures as i32,
            open_initial: b.circuit_open,
            open_max: b.circuit_open_max,
        };
        let clock = self.0.clock.clone();
        Box::pin(async move {
            let d = domain.clone();
            let recorded = db
                .run(move |c| {
                    circuits::record(c, &d, error.as_deref(), clock.now(), &settings, &routing)
                })
                .await;
            match recorded {
                Ok(Some(state)) => {
                    metrics::counter!(names::CIRCUIT_TRANSITIONS, "state" => state).increment(1);
                    tracing::warn!(domain = %domain, state, "circuit state changed");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(domain = %domain, error = %e, "recording the circuit failed")
                }
            }
        })
    }
}

impl Quotas for NodeServices {
    fn consume(&self, quota: String, cost: i64) -> BoxFuture<'static, Result<QuotaAnswer, String>> {
        let counter = self.0.directory.quota_counter();
        Box::pin(async move {
            let Some(counter) = counter else {
                return Err("the quota counter is restarting".into());
            };
            match counter
                .send(Consume {
                    quota,
                    cost,
                    audit: None,
                })
                .await
            {
                Ok(Ok(Consumed::Admitted { .. })) => Ok(QuotaAnswer::Admitted),
                Ok(Ok(Consumed::Refused {
                    retry_at, blocking, ..
                })) => Ok(QuotaAnswer::Refused { retry_at, blocking }),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the quota counter is restarting".into()),
            }
        })
    }

    fn refund(&self, quota: String, cost: i64) -> BoxFuture<'static, Result<(), String>> {
        let counter = self.0.directory.quota_counter();
        Box::pin(async move {
            let Some(counter) = counter else {
                return Err("the quota counter is restarting".into());
            };
            match counter
                .send(RefundUnits {
                    quota,
                    cost,
                    audit: None,
                })
                .await
            {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("the quota counter is restarting".into()),
            }
        })
    }
}

/// `once` keys of one run, in PostgreSQL.
struct Ledger {
    db: crate::db::Db,
    clock: Arc<dyn crate::stdx::clock::Clock>,
    run: ScriptRun,
}

impl OnceLedger for Ledger {
    fn enter(
        &self,
        key: String,
        retry_uncertain: bool,
    ) -> BoxFuture<'static, Result<Entry, String>> {
        let (db, run, now) = (self.db.clone(), self.run.clone(), self.clock.now());
        Box::pin(async move {
            use crate::db::once_keys::{enter, Entered};
            let entered = db
                .run(move |c| {
                    enter(
                        c,
                        run.job_id,
                        &key,
                        run.run_id,
                        run.attempt,
                        retry_uncertain,
                        now,
                    )
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(match entered {
                Entered::Run => Entry::Run,
                Entered::Done => Entry::Done,
                Entered::Busy(r) => Entry::Busy {
                    run_id: r.to_string(),
                },
                Entered::Uncertain(r) => Entry::Uncertain {
                    run_id: r.to_string(),
                },
            })
        })
    }

    fn complete(&self, key: String) -> BoxFuture<'static, Result<(), String>> {
        let (db, run, now) = (self.db.clone(), self.run.clone(), self.clock.now());
        Box::pin(async move {
            let done = db
                .run(move |c| crate::db::once_keys::complete(c, run.job_id, &key, run.run_id, now))
                .await
                .map_err(|e| e.to_string())?;
            if done {
                Ok(())
            } else {
                Err("the once key is no longer this run's (it was forgotten or taken over)".into())
            }
        })
    }

    fn abandon(&self, key: String) -> BoxFuture<'static, Result<(), String>> {
        let (db, run) = (self.db.clone(), self.run.clone());
        Box::pin(async move {
            db.run(move |c| crate::db::once_keys::abandon(c, run.job_id, &key, run.run_id))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

impl Scripts for NodeServices {
    fn person(
        &self,
        run: ScriptRun,
        waiting: crate::kinds::Waiting,
    ) -> Arc<dyn crate::browser::script::Person> {
        Arc::new(PersonPort {
            deps: self.0.clone(),
            run,
            waiting,
        })
    }

    fn once_ledger(&self, run: ScriptRun) -> Arc<dyn OnceLedger> {
        Arc::new(Ledger {
            db: self.0.db.clone(),
            clock: self.0.clock.clone(),
            run,
        })
    }

    fn notifier(&self, run: ScriptRun) -> Notifier {
        let (db, routing) = (self.0.db.clone(), self.0.routing.clone());
        Arc::new(move |subject: String, body: String, severity: String| {
            let notice = Notice {
                event: "run.notice".into(),
                severity: crate::telemetry::events::Severity::parse(&severity)
                    .unwrap_or(crate::telemetry::events::Severity::Info),
                subject,
                body,
                data: serde_json::json!({"job": run.job_name, "run_id": run.run_id, "attempt": run.attempt}),
                key: format!("run.notice:{}:{}", run.run_id, Uuid::new_v4()),
            };
            let rows = routing.rows_for(&notice, None);
            let db = db.clone();
            Box::pin(async move {
                db.run(move |c| crate::db::notifications::enqueue(c, &rows))
                    .await
                    .map_err(|e| e.to_string())
            }) as BoxFuture<'static, Result<usize, String>>
        })
    }
}

/// A `hand_over` step's port: the run's row says it waits, `run.needs_person` goes to the
/// routed channels (every channel when no route names the event), and the executor frees
/// the run's slot and stops its timeout while it waits.
struct PersonPort {
    deps: Deps,
    run: ScriptRun,
    waiting: crate::kinds::Waiting,
}

/// The event a run that waits for a person sends.
pub const NEEDS_PERSON: &str = "run.needs_person";

/// A run waits for a person in live view `live_id`: its row says so (`runs.waiting`) and
/// `run.needs_person` is queued — to the routed channels, or to every channel when no route
/// names the event — in one transaction. Fails when the run is no longer running.
pub async fn announce_waiting(
    deps: &Deps,
    run: &ScriptRun,
    reason: &str,
    deadline: DateTime<Utc>,
    live_id: Uuid,
) -> Result<(), String> {
    let base = deps.directory.api_url().unwrap_or_default();
    let now = deps.clock.now();
    let path = format!("/ui/#/live/{live_id}");
    let link = format!("{base}{path}");
    let row = serde_json::json!({"for": "person", "reason": reason, "since": now,
        "deadline": deadline, "live_id": live_id, "link": path});
    let notice = Notice {
        event: NEEDS_PERSON.into(),
        severity: crate::telemetry::events::Severity::Warning,
        subject: format!("{} needs a person: {reason}", run.job_name),
        body: format!(
            "Run {} of {} waits for you until {}: {reason}. Take over in the live view: {link} \
             (log in to the dashboard there).",
            run.run_id,
            run.job_name,
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        data: serde_json::json!({"job": run.job_name, "run_id": run.run_id,
            "attempt": run.attempt, "reason": reason, "deadline": deadline, "link": link}),
        key: format!("{NEEDS_PERSON}:{}:{live_id}", run.run_id),
    };
    let routing = &deps.routing;
    let mut channels: Vec<String> = routing
        .channels_for(NEEDS_PERSON, notice.severity)
        .into_iter()
        .map(str::to_string)
        .collect();
    if channels.is_empty() {
        channels = routing.every_channel();
    }
    let rows = routing.rows_for(&notice, Some(&channels));
    let run_id = run.run_id;
    let marked = deps
        .db
        .run(move |c| crate::db::runs::wait_for_person(c, run_id, &row, &rows))
        .await
        .map_err(|e| e.to_string())?;
    if !marked {
        return Err("the run is no longer running".into());
    }
    tracing::info!(run_id = %run.run_id, job = %run.job_name, %live_id, "the run waits for a person");
    Ok(())
}

impl crate::browser::script::Person for PersonPort {
    fn waiting(
        &self,
        reason: String,
        deadline: DateTime<Utc>,
        live_id: Uuid,
    ) -> BoxFuture<'static, Result<(), String>> {
        let (deps, run, waiting) = (self.deps.clone(), self.run.clone(), self.waiting.clone());
        Box::pin(async move {
            announce_waiting(&deps, &run, &reason, deadline, live_id).await?;
            waiting.begin();
            Ok(())
        })
    }

    fn resumed(&self) -> BoxFuture<'static, Result<(), String>> {
        let (db, run_id, waiting) = (self.deps.db.clone(), self.run.run_id, self.waiting.clone());
        Box::pin(async move {
            waiting.end();
            db.run(move |c| crate::db::runs::set_waiting(c, run_id, None))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

impl RunTokens for NodeServices {
    fn issue(&self, grants: Grants) -> LocalBoxFuture<'static, Result<String, RunError>> {
        let db = self.0.db.clone();
        let now = self.0.clock.now();
        Box::pin(async move {
            let (token, hash) =
                crate::stdx::secrets::new_token(crate::db::run_tokens::RUN_TOKEN_PREFIX);
            db.run(move |c| {
                crate::db::run_tokens::issue(
                    c,
                    &hash,
                    grants.run_id,
                    grants.attempt,
                    &grants.quotas,
                    now,
                )
            })
            .await
            .map_err(|e| RunError::new(RunErrorKind::Database, e.to_string()))?;
            Ok(token)
        })
    }

    fn revoke(&self, run_id: Uuid) {
        let db = self.0.db.clone();
        // From a thread: it is called from Drop (maybe outside any runtime), and retried
        // briefly while the database is away (the token dies with the run's state anyway).
        let _ = std::thread::Builder::new()
            .name("run-token-revoke".into())
            .spawn(move || {
                for _ in 0..10 {
                    let done = db
                        .get_blocking()
                        .map_err(|e| e.to_string())
                        .and_then(|mut c| {
                            crate::db::run_tokens::revoke(&mut c, run_id).map_err(|e| e.to_string())
                        });
                    if done.is_ok() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            });
    }
}
