//! A kind's work as the executor runs it: under the job's timeout (the time it waits for a
//! person not counted), a panic caught as the run's failure (`panic`), not the actor's.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;

use crate::jobs::run_error::RunErrorKind;
use crate::kinds::{self, RunContext, RunError};
use crate::supervisor::panic_message;

/// Runs a job kind under its timeout; a panic fails the run. Time in `waiting` (for a
/// person) does not count against the timeout.
pub(super) async fn execute(
    kind: &dyn kinds::JobKind,
    rctx: RunContext,
    payload: Value,
    timeout: Option<Duration>,
    waiting: kinds::Waiting,
) -> Result<Value, RunError> {
    {
        let work = AssertUnwindSafe(kind.execute(rctx, payload)).catch_unwind();
        let outcome = match timeout {
            Some(limit) => {
                let start = tokio::time::Instant::now();
                let mut work = std::pin::pin!(work);
                loop {
                    // The time worked so far; the deadline moves by the time waited.
                    let worked = start.elapsed().saturating_sub(waiting.total());
                    let Some(left) = limit.checked_sub(worked).filter(|d| !d.is_zero()) else {
                        return Err(RunError::new(
                            RunErrorKind::Timeout,
                            format!(
                                "exceeded the timeout of {}",
                                crate::stdx::duration::format_duration(limit)
                            ),
                        ));
                    };
                    if let Ok(r) = tokio::time::timeout(left, &mut work).await {
                        break r;
                    }
                }
            }
            None => work.await,
        };
        match outcome {
            Ok(result) => result,
            Err(panic) => Err(RunError::new(RunErrorKind::Panic, panic_message(&*panic))),
        }
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
