//! `noop`: returns at once, or after `sleep_ms` (tests and benchmarks).

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::{object_with_fields, JobKind, RunContext, RunError};
use crate::jobs::run_error::RunErrorKind;
use crate::stdx::problems::Problems;

/// The longest sleep a noop run may ask for.
pub const MAX_SLEEP_MS: u64 = 3_600_000;

pub struct Noop;

impl JobKind for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn validate(&self, payload: &Value, path: &str, p: &mut Problems) {
        let expected = "an object (may be empty)";
        if !object_with_fields(payload, path, expected, &["sleep_ms", "fail"], p) {
            return;
        }
        if let Some(v) = payload.get("sleep_ms") {
            if v.as_u64().is_none_or(|n| n > MAX_SLEEP_MS) {
                p.add(
                    &format!("{path}.sleep_ms"),
                    format!("expected an integer from 0 to {MAX_SLEEP_MS}"),
                );
            }
        }
        if let Some(v) = payload.get("fail") {
            if !v.is_boolean() {
                p.add(&format!("{path}.fail"), "expected true or false");
            }
        }
    }

    fn execute(
        &self,
        ctx: RunContext,
        payload: Value,
    ) -> LocalBoxFuture<'static, Result<Value, RunError>> {
        let sleep = payload.get("sleep_ms").and_then(Value::as_u64).unwrap_or(0);
        let fail = payload
            .get("fail")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Box::pin(async move {
            if sleep > 0 {
                tokio::time::sleep(Duration::from_millis(sleep)).await;
            }
            if fail {
                return Err(RunError::new(
                    RunErrorKind::NoopFailure,
                    "failed on request (payload.fail)",
                ));
            }
            Ok(json!({ "attempt": ctx.attempt }))
        })
    }
}
