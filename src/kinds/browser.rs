//! `browser`: a scripted session in a persistent browser profile (`crate::browser`).
//! Payload: `profile`, `steps`, and optional `viewport {width, height}`, `user_agent`,
//! `locale` (default en-US), `timezone` (IANA), `step_timeout`. Output: the extracted values,
//! the final URL and the names of stored artifacts (screenshots; on failure `failure.png` and
//! `failure.json` with the step, error and URL), served at
//! `GET /api/v1/runs/{id}/artifacts/{name}`.

use std::collections::BTreeMap;

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::system::QuotaAnswer;
use super::{object_with_fields, JobKind, RunContext, RunError};
use crate::browser::script::{self as steps, Step};
use crate::browser::BrowserRun;
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::duration::parse_duration;
use crate::stdx::problems::Problems;

pub struct Browser {
    /// `[browser] max_script_depth` / `max_script_steps`.
    limits: steps::Limits,
    scripts: Scripts,
}

impl Browser {
    pub fn new(limits: steps::Limits) -> Self {
        Self {
            limits,
            scripts: Scripts::default(),
        }
    }
}

/// Parsed scripts by the SHA-256 of their steps' JSON: a job's script is parsed once per
/// version of it (and per process), not at every run. Bounded: when full it starts over.
#[derive(Default)]
struct Scripts(std::sync::Mutex<std::collections::HashMap<[u8; 32], std::sync::Arc<Vec<Step>>>>);

impl Scripts {
    const MAX: usize = 512;

    /// The steps of `json`, parsed under `limits`; `None` when they do not parse.
    fn get(&self, json: &Value, limits: &steps::Limits) -> Option<std::sync::Arc<Vec<Step>>> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(json.to_string().as_bytes()).into();
        if let Some(hit) = self.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Some(hit);
        }
        let mut problems = Problems::default();
        let steps = steps::parse(json, "steps", limits, &mut problems);
        if !problems.is_empty() {
            return None;
        }
        let steps = std::sync::Arc::new(steps);
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(key, steps.clone());
        }
        Some(steps)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

struct CancelOnDrop {
    browsers: std::sync::Arc<dyn super::system::Browsers>,
    run_id: uuid::Uuid,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.browsers.cancel(self.run_id);
        }
    }
}

fn viewport(payload: &Value) -> Option<(u32, u32)> {
    let v = payload.get("viewport")?;
    let w = v.get("width")?.as_u64()?;
    let h = v.get("height")?.as_u64()?;
    Some((w as u32, h as u32))
}

/// `consume` steps go to the quota counter, capped per run by the job's `max_per_run`.
struct Consumer {
    quotas: std::sync::Arc<dyn super::system::Quotas>,
    caps: BTreeMap<String, i64>,
    used: std::sync::Arc<std::sync::Mutex<BTreeMap<String, i64>>>,
    clock: std::sync::Arc<dyn crate::stdx::clock::Clock>,
}

impl steps::Quota for Consumer {
    fn consume(
        &self,
        quota: String,
        cost: i64,
    ) -> futures_util::future::BoxFuture<'static, Result<Option<steps::Refusal>, String>> {
        let quotas = self.quotas.clone();
        let cap = self.caps.get(&quota).copied();
        let used = self.used.clone();
        let now = self.clock.now();
        Box::pin(async move {
            let so_far = used
                .lock()
                .map(|u| u.get(&quota).copied().unwrap_or(0))
                .unwrap_or(0);
            if let Some(cap) = cap {
                if so_far + cost > cap {
                    // The run's own cap: room again with the next run (a deferral waits a
                    // moment, not a window).
                    return Ok(Some(steps::Refusal {
                        reason: format!("max_per_run ({cap}) reached for {quota}"),
                        retry_at: now + chrono::Duration::seconds(1),
                    }));
                }
            }
            match quotas.consume(quota.clone(), cost).await? {
                QuotaAnswer::Admitted => {
                    if let Ok(mut u) = used.lock() {
                        *u.entry(quota).or_default() += cost;
                    }
                    Ok(None)
                }
                QuotaAnswer::Refused { retry_at, blocking } => Ok(Some(steps::Refusal {
                    reason: format!(
                        "{quota} exhausted for this {} (room again at {})",
                        blocking.join(" and "),
                        retry_at.to_rfc3339()
                    ),
                    retry_at,
                })),
            }
        })
    }

    fn refund(
        &self,
        quota: String,
        cost: i64,
    ) -> futures_util::future::BoxFuture<'static, Result<(), String>> {
        let quotas = self.quotas.clone();
        let used = self.used.clone();
        Box::pin(async move {
            quotas.refund(quota.clone(), cost).await?;
            if let Ok(mut u) = used.lock() {
                let n = u.entry(quota).or_default();
                *n = (*n - cost).max(0);
            }
            Ok(())
        })
    }
}

fn consumer(ctx: &RunContext) -> steps::Consumer {
    std::sync::Arc::new(Consumer {
        quotas: ctx.services.quotas.clone(),
        caps: ctx
            .quota
            .iter()
            .filter_map(|q| q.max_per_run.map(|m| (q.name.clone(), m)))
            .collect(),
        used: Default::default(),
        clock: ctx.clock.clone(),
    })
}

/// Template data of a run: `job`, `run`, `now`, `today` (in the schedule's timezone, else
/// UTC).
fn context(ctx: &RunContext) -> Value {
    let now = ctx.clock.now();
    let today = ctx
        .timezone
        .as_deref()
        .and_then(|tz| tz.parse::<chrono_tz::Tz>().ok())
        .map(|tz| now.with_timezone(&tz).date_naive())
        .unwrap_or_else(|| now.date_naive());
    serde_json::json!({
        "job": {"name": ctx.job_name, "metadata": ctx.metadata},
        "run": {"id": ctx.run_id, "attempt": ctx.attempt, "fire_at": ctx.fire_at.to_rfc3339()},
        "now": now.to_rfc3339(),
        "today": today.to_string(),
    })
}

impl JobKind for Browser {
    fn name(&self) -> &'static str {
        "browser"
    }

    fn validate(&self, payload: &Value, path: &str, p: &mut Problems) {
        let expected = "an object with `profile` and `steps`";
        if !object_with_fields(
            payload,
            path,
            expected,
            &[
                "profile",
                "steps",
                "viewport",
                "user_agent",
                "locale",
                "timezone",
                "step_timeout",
            ],
            p,
        ) {
            return;
        }
        match payload.get("profile").and_then(Value::as_str) {
            Some(name) if crate::stdx::names::profile(name) => {}
            _ => p.add(
                &format!("{path}.profile"),
                "required: a profile name of a-z, 0-9, - and _ (at most 64), like \"linkedin\"",
            ),
        }
        match payload.get("steps") {
            Some(s) => {
                steps::parse(s, &format!("{path}.steps"), &self.limits, p);
            }
            None => p.add(&format!("{path}.steps"), "required: the list of steps"),
        }
        if payload.get("viewport").is_some()
            && !viewport(payload)
                .is_some_and(|(w, h)| (200..=4000).contains(&w) && (200..=4000).contains(&h))
        {
            p.add(
                &format!("{path}.viewport"),
                "expected {\"width\": 200-4000, \"height\": 200-4000}",
            );
        }
        for k in ["user_agent", "locale"] {
            if let Some(v) = payload.get(k) {
                if v.as_str().is_none_or(|s| s.is_empty() || s.len() > 512) {
                    p.add(&format!("{path}.{k}"), "expected a non-empty string");
                }
            }
        }
        if let Some(tz) = payload.get("timezone") {
            if tz
                .as_str()
                .and_then(|s| s.parse::<chrono_tz::Tz>().ok())
                .is_none()
            {
                p.add(
                    &format!("{path}.timezone"),
                    "expected an IANA timezone like Europe/Berlin",
                );
            }
        }
        if let Some(t) = payload.get("step_timeout") {
            if !t
                .as_str()
                .map(parse_duration)
                .is_some_and(|d| d.is_ok_and(|d| !d.is_zero()))
            {
                p.add(
                    &format!("{path}.step_timeout"),
                    "expected a duration like \"20s\"",
                );
            }
        }
    }

    fn references(&self, payload: &Value, path: &str) -> Vec<crate::jobs::Reference> {
        let Some(steps) = self
            .scripts
            .get(payload.get("steps").unwrap_or(&Value::Null), &self.limits)
        else {
            return Vec::new();
        };
        steps::quotas(&steps, &format!("{path}.steps"))
            .into_iter()
            .map(|(path, name)| crate::jobs::Reference {
                path,
                to: crate::jobs::Referent::Quota,
                name,
            })
            .collect()
    }

    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>> {
        let parsed = self
            .scripts
            .get(payload.get("steps").unwrap_or(&Value::Null), &self.limits);
        Box::pin(async move {
            let Some(steps) = parsed else {
                return Err(RunError::new(
                    RunErrorKind::InvalidScript,
                    "the stored steps no longer parse",
                ));
            };
            // Secrets: [browser.secrets], then OVERSEER_SECRET_<NAME>.
            let mut secrets = BTreeMap::new();
            for name in steps::secrets(&steps) {
                let value = ctx.secret(&name)?;
                secrets.insert(name, value);
            }
            if !ctx.services.browsers.available() {
                // Nothing was done yet: the run waits for the pool (no attempt used), and
                // overseer's restart counts for no site's circuit.
                return Err(RunError::deferred(
                    ctx.clock.now() + chrono::Duration::seconds(1),
                    "the browser pool is restarting",
                ));
            }
            let consume =
                steps::any(&steps, &|s| matches!(s, Step::Consume { .. })).then(|| consumer(&ctx));
            let script_run = super::system::ScriptRun {
                job_id: ctx.job_id,
                job_name: ctx.job_name.clone(),
                run_id: ctx.run_id,
                attempt: ctx.attempt,
            };
            let once = steps::any(&steps, &|s| matches!(s, Step::Once { .. }))
                .then(|| ctx.services.scripts.once_ledger(script_run.clone()));
            let notify = steps::any(&steps, &|s| matches!(s, Step::Notify { .. }))
                .then(|| ctx.services.scripts.notifier(script_run.clone()));
            let person = steps::any(&steps, &|s| matches!(s, Step::HandOver { .. }))
                .then(|| ctx.services.scripts.person(script_run, ctx.waiting.clone()));
            let s = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_string);
            let run = BrowserRun {
                run_id: ctx.run_id,
                profile: s("profile").unwrap_or_default(),
                steps,
                viewport: viewport(&payload),
                user_agent: s("user_agent"),
                locale: s("locale").unwrap_or_else(|| "en-US".into()),
                timezone: s("timezone"),
                step_timeout: s("step_timeout").and_then(|t| parse_duration(&t).ok()),
                secrets,
                consume,
                once,
                notify,
                person,
                context: context(&ctx),
                span: tracing::Span::current(),
            };
            // The domain's circuit: an open one defers the run (no attempt used).
            // (Of a literal first `goto`: a templated one is only known when it runs.)
            let domain = run.steps.first().and_then(|s| match s {
                Step::Goto { url, .. } if url.is_literal() => {
                    url::Url::parse(url.source()).ok().and_then(|u| {
                        u.host_str().map(|h| match u.port() {
                            Some(p) => format!("{h}:{p}"),
                            None => h.to_string(),
                        })
                    })
                }
                _ => None,
            });
            if let Some(domain) = &domain {
                if let Some(until) = ctx.services.circuits.admit(domain.clone()).await? {
                    return Err(RunError::deferred(
                        until,
                        format!("circuit open for {domain}"),
                    ));
                }
            }
            // Dropped before the answer (job timeout, zombie rescue): the pool cancels the
            // run, closing its page, instead of letting it go on unobserved.
            let mut cancel = CancelOnDrop {
                browsers: ctx.services.browsers.clone(),
                run_id: ctx.run_id,
                armed: true,
            };
            let result = ctx.services.browsers.run(run).await;
            cancel.armed = false;
            if let Some(domain) = domain {
                // Only what the site did counts (not our secrets, launches, pool or quotas).
                let counts = match &result {
                    Ok(_) => Some(None),
                    Err(e) if e.kind.counts_for_circuit() => Some(Some(e.message.clone())),
                    Err(_) => None,
                };
                if let Some(error) = counts {
                    ctx.services.circuits.record(domain, error).await;
                }
            }
            // A quota said defer: what was done is kept (its once keys), and the run waits
            // for the window without using an attempt.
            let outcome = result?;
            match outcome.deferred {
                Some(d) => Err(RunError::deferred(d.until, d.reason)),
                None => Ok(outcome.output),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script is parsed once per version: the same steps come back shared, a changed
    /// script is parsed anew, one that does not parse is none.
    #[test]
    fn scripts_are_parsed_once_per_version() {
        let scripts = Scripts::default();
        let limits = steps::Limits::default();
        let v1 = serde_json::json!([{"goto": {"url": "https://example.org/"}}]);
        let a = scripts.get(&v1, &limits).unwrap();
        let b = scripts.get(&v1.clone(), &limits).unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(scripts.len(), 1);
        let v2 = serde_json::json!([{"goto": {"url": "https://example.org/2"}}]);
        let c = scripts.get(&v2, &limits).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&a, &c));
        assert_eq!(scripts.len(), 2);
        assert!(scripts
            .get(&serde_json::json!([{"fly": {}}]), &limits)
            .is_none());
        assert_eq!(scripts.len(), 2, "a script that does not parse is not kept");
    }
}
