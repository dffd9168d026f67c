//! `notify`: the reminders users schedule (follow up with a recruiter, check an application,
//! prepare an interview). The payload names channels and gives subject and body templates
//! (`notify::template`: `{{ job.metadata.company }}`, `{{ run.fire_at }}`, ...). A run renders
//! them and writes one outbox row per channel; the notifier delivers them. The rows' key is the
//! job and its fire time, so a retried or rescued run never sends a reminder twice.

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::{object_with_fields, JobKind, RunContext, RunError};
use crate::jobs::run_error::RunErrorKind;
use crate::notify::template::Template;
use crate::notify::Notice;
use crate::stdx::problems::Problems;
use crate::telemetry::events::Severity;

pub struct Notify;

/// The event name of a reminder (what routing rules and the API filter on).
pub const EVENT: &str = "reminder";

fn template(payload: &Value, field: &str) -> Option<Result<Template, String>> {
    payload.get(field).map(|v| match v.as_str() {
        Some(s) => Template::parse(s).map_err(|e| e.to_string()),
        None => Err("expected a string (a template)".into()),
    })
}

impl JobKind for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn validate(&self, payload: &Value, path: &str, p: &mut Problems) {
        let expected = "an object with `channels` and `subject`";
        if !object_with_fields(
            payload,
            path,
            expected,
            &["channels", "subject", "body", "severity"],
            p,
        ) {
            return;
        }
        match payload.get("channels").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => {
                for (i, c) in list.iter().enumerate() {
                    if c.as_str().is_none_or(str::is_empty) {
                        p.add(&format!("{path}.channels.{i}"), "expected a channel name");
                    }
                }
            }
            _ => p.add(
                &format!("{path}.channels"),
                "required: a non-empty list of channel names from [[notify.channels]] (or \"log\")",
            ),
        }
        match template(payload, "subject") {
            Some(Ok(_)) => {}
            Some(Err(e)) => p.add(&format!("{path}.subject"), &e),
            None => p.add(&format!("{path}.subject"), "required: the subject template"),
        }
        if let Some(Err(e)) = template(payload, "body") {
            p.add(&format!("{path}.body"), &e);
        }
        if let Some(s) = payload.get("severity") {
            if s.as_str().and_then(Severity::parse).is_none() {
                p.add(
                    &format!("{path}.severity"),
                    "expected info, warning, error or critical",
                );
            }
        }
    }

    fn references(&self, payload: &Value, path: &str) -> Vec<crate::jobs::Reference> {
        let named = payload.get("channels").and_then(Value::as_array);
        named
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, c)| {
                Some(crate::jobs::Reference {
                    path: format!("{path}.channels.{i}"),
                    to: crate::jobs::Referent::Channel,
                    name: c.as_str()?.to_string(),
                })
            })
            .collect()
    }

    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>> {
        Box::pin(async move {
            let channels: Vec<String> = payload
                .get("channels")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(unknown) = channels.iter().find(|c| ctx.routing.channel(c).is_none()) {
                return Err(RunError::new(
                    RunErrorKind::UnknownChannel,
                    format!("channel `{unknown}` is not configured on this node"),
                ));
            }
            let vars = json!({
                "job": {"id": ctx.job_id, "name": ctx.job_name, "metadata": ctx.metadata},
                "run": {"id": ctx.run_id, "fire_at": ctx.fire_at.to_rfc3339(), "attempt": ctx.attempt},
                "now": ctx.clock.now().to_rfc3339(),
            });
            let render = |field: &str| -> Result<String, RunError> {
                match template(&payload, field) {
                    None => Ok(String::new()),
                    Some(Ok(t)) => t.render(&vars).map_err(|e| {
                        RunError::new(RunErrorKind::Template, format!("{field}: {e}"))
                    }),
                    Some(Err(e)) => Err(RunError::new(
                        RunErrorKind::Template,
                        format!("{field}: {e}"),
                    )),
                }
            };
            let subject = render("subject")?;
            let body = render("body")?;
            let severity = payload
                .get("severity")
                .and_then(Value::as_str)
                .and_then(Severity::parse)
                .unwrap_or(Severity::Info);
            let notice = Notice {
                event: EVENT.to_string(),
                severity,
                subject: subject.clone(),
                body,
                data: json!({"job": ctx.job_name, "job_id": ctx.job_id, "run_id": ctx.run_id,
                             "fire_at": ctx.fire_at, "metadata": ctx.metadata}),
                key: format!("{EVENT}:{}:{}", ctx.job_id, ctx.fire_at.timestamp_micros()),
            };
            let queued = ctx
                .services
                .outbox
                .enqueue(notice, channels.clone())
                .await?;
            Ok(json!({"subject": subject, "channels": channels, "queued": queued}))
        })
    }
}
