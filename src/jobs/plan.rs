//! Fire planning: given a due job and the current time, which runs to record and when the
//! job fires next. Pure: the scheduler applies the plan inside the transaction that holds
//! the job's row lock, so each fire is planned exactly once across every process.
//!
//! Rules:
//! - Fires within `misfire_grace` of now are on time. Several on-time fires (a stalled
//!   process, a sub-grace interval) coalesce into one run for the latest, `covers` = count;
//!   with `catch_up = all` each gets its own run (at most `max_catch_up`).
//! - Older fires are **missed**: recorded as a `missed` run (attempt 1) covering them, and
//!   the `job.missed` event fires. A miss counts as a failed attempt: per `catch_up`, the
//!   catch-up run is attempt 2, due now (`latest`: one for all misses, unless an on-time run
//!   already happens now; `all`: one per miss, at most `max_catch_up`; `skip`: none). With
//!   `max_retries = 0` there is no attempt 2, and `job.failed` fires instead.
//! - Overlap `skip`: when the job still has a pending or running run, new runs are recorded
//!   as `cancelled` (error kind `overlap`) instead of pending.

use chrono::{DateTime, Utc};

use super::policy::{CatchUp, Overlap, Policy};
use super::run_error::RunErrorKind;
use super::run_state::RunState;
use super::schedule::Schedule;

/// At most this many fires are enumerated per job per tick (a long outage of a per-second
/// job); the rest are counted on the next tick.
pub const MAX_FIRES_PER_TICK: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub fire_at: DateTime<Utc>,
    pub attempt: i32,
    pub state: RunState,
    pub covers: i32,
    pub due_at: DateTime<Utc>,
    pub error_kind: Option<&'static str>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirePlan {
    pub runs: Vec<PlannedRun>,
    /// None: the schedule is exhausted and the job is `completed`.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Missed fires, for the `job.missed` event.
    pub missed: i32,
    /// True when a miss cannot be retried (`max_retries = 0`): `job.failed`.
    pub failed: bool,
}

pub fn plan(
    schedule: &Schedule,
    policy: &Policy,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    busy: bool,
) -> FirePlan {
    let mut fires = vec![due];
    fires.extend(schedule.fires_between(due, now, MAX_FIRES_PER_TICK - 1));
    let last = *fires.last().unwrap_or(&due);
    let next_fire_at = schedule.next_after(last.max(now));
    let grace = chrono::Duration::from_std(policy.misfire_grace).unwrap_or(chrono::Duration::MAX);
    let (late, on_time): (Vec<_>, Vec<_>) = fires.into_iter().partition(|f| now - *f > grace);

    let mut plan = FirePlan {
        next_fire_at,
        ..FirePlan::default()
    };
    let new_state = if busy && policy.overlap == Overlap::Skip {
        RunState::Cancelled
    } else {
        RunState::Pending
    };
    let pending = |fire_at, attempt, covers, due_at| PlannedRun {
        fire_at,
        attempt,
        state: new_state,
        covers,
        due_at,
        error_kind: (new_state == RunState::Cancelled).then_some(RunErrorKind::Overlap.as_str()),
        error_message: (new_state == RunState::Cancelled)
            .then(|| "skipped: the previous run was still pending or running".to_string()),
    };
    let missed_run = |fire_at, covers: i32| PlannedRun {
        fire_at,
        attempt: 1,
        state: RunState::Missed,
        covers,
        due_at: fire_at,
        error_kind: Some(RunErrorKind::Misfire.as_str()),
        error_message: Some(format!(
            "{covers} fire(s) later than misfire_grace ({}s)",
            policy.misfire_grace.as_secs()
        )),
    };
    let can_retry = policy.max_retries >= 1;

    if !late.is_empty() {
        plan.missed = late.len() as i32;
        plan.failed = !can_retry && policy.catch_up != CatchUp::Skip;
        match policy.catch_up {
            CatchUp::Latest | CatchUp::Skip => {
                let fire = *late.last().unwrap_or(&due);
                plan.runs.push(missed_run(fire, late.len() as i32));
                if policy.catch_up == CatchUp::Latest && can_retry && on_time.is_empty() {
                    plan.runs.push(pending(fire, 2, late.len() as i32, now));
                }
            }
            CatchUp::All => {
                let keep = (policy.max_catch_up.max(1) as usize).min(late.len());
                let dropped = late.len() - keep;
                for (i, fire) in late[dropped..].iter().enumerate() {
                    let covers = if i == 0 { dropped as i32 + 1 } else { 1 };
                    plan.runs.push(missed_run(*fire, covers));
                    if can_retry {
                        plan.runs.push(pending(*fire, 2, 1, now));
                    }
                }
            }
        }
    }
    if !on_time.is_empty() {
        match policy.catch_up {
            CatchUp::All => {
                let keep = (policy.max_catch_up.max(1) as usize).min(on_time.len());
                for fire in &on_time[on_time.len() - keep..] {
                    plan.runs.push(pending(*fire, 1, 1, *fire));
                }
            }
            _ => {
                let fire = *on_time.last().unwrap_or(&due);
                plan.runs.push(pending(fire, 1, on_time.len() as i32, fire));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::policy::PolicyDefaults;
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_minute() -> Schedule {
        Schedule::Every {
            interval: Duration::from_secs(60),
            anchor: t("2026-01-01T00:00:00Z"),
        }
    }

    fn policy() -> Policy {
        Policy::from_defaults(&PolicyDefaults {
            misfire_grace: Duration::from_secs(60),
            catch_up: CatchUp::Latest,
            max_catch_up: 100,
            max_retries: 3,
            retry_delays: vec![Duration::from_secs(60)],
            timeout: Duration::ZERO,
            overlap: Overlap::Skip,
            priority: 5,
        })
    }

    #[test]
    fn on_time_fire_makes_one_pending_run() {
        let p = plan(
            &every_minute(),
            &policy(),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:00.005Z"),
            false,
        );
        assert_eq!(p.runs.len(), 1);
        let r = &p.runs[0];
        assert_eq!((r.state, r.attempt, r.covers), (RunState::Pending, 1, 1));
        assert_eq!(r.due_at, t("2026-01-01T00:01:00Z"));
        assert_eq!(p.next_fire_at, Some(t("2026-01-01T00:02:00Z")));
        assert_eq!((p.missed, p.failed), (0, false));
    }

    #[test]
    fn late_inside_grace_still_runs() {
        let p = plan(
            &every_minute(),
            &policy(),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:59Z"),
            false,
        );
        assert_eq!(p.runs.len(), 1);
        assert_eq!(p.runs[0].state, RunState::Pending);
        assert_eq!(p.missed, 0);
    }

    #[test]
    fn outage_latest_records_one_miss_and_one_catch_up_attempt() {
        // Down from 00:01 to 01:00:30: 60 fires (00:01 … 01:00), the last on time.
        let p = plan(
            &every_minute(),
            &policy(),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T01:00:30Z"),
            false,
        );
        assert_eq!(p.missed, 59);
        let missed: Vec<_> = p
            .runs
            .iter()
            .filter(|r| r.state == RunState::Missed)
            .collect();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].covers, 59);
        assert_eq!(missed[0].fire_at, t("2026-01-01T00:59:00Z"));
        // The on-time 01:00 fire runs; no separate catch-up is needed.
        let pending: Vec<_> = p
            .runs
            .iter()
            .filter(|r| r.state == RunState::Pending)
            .collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].fire_at, t("2026-01-01T01:00:00Z"));
        assert_eq!(p.next_fire_at, Some(t("2026-01-01T01:01:00Z")));
    }

    #[test]
    fn a_missed_once_job_is_caught_up_as_attempt_two() {
        let at = Schedule::At(t("2026-01-01T00:00:00Z"));
        let now = t("2026-01-01T00:10:00Z");
        let p = plan(&at, &policy(), t("2026-01-01T00:00:00Z"), now, false);
        assert_eq!(p.next_fire_at, None, "completed");
        assert_eq!(p.runs.len(), 2);
        assert_eq!((p.runs[0].state, p.runs[0].attempt), (RunState::Missed, 1));
        assert_eq!((p.runs[1].state, p.runs[1].attempt), (RunState::Pending, 2));
        assert_eq!(p.runs[1].due_at, now, "scheduled now");
        assert!(!p.failed);

        let mut no_retries = policy();
        no_retries.max_retries = 0;
        let p = plan(&at, &no_retries, t("2026-01-01T00:00:00Z"), now, false);
        assert_eq!(p.runs.len(), 1);
        assert!(p.failed, "a miss with no retry left is job.failed");
    }

    #[test]
    fn catch_up_skip_and_all() {
        let mut skip = policy();
        skip.catch_up = CatchUp::Skip;
        let at = Schedule::At(t("2026-01-01T00:00:00Z"));
        let p = plan(
            &at,
            &skip,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T01:00:00Z"),
            false,
        );
        assert_eq!(p.runs.len(), 1);
        assert_eq!(p.runs[0].state, RunState::Missed);

        let mut all = policy();
        all.catch_up = CatchUp::All;
        all.max_catch_up = 3;
        let p = plan(
            &every_minute(),
            &all,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:10:30Z"),
            false,
        );
        // 10 fires: 00:01…00:10; 00:10 on time, 9 late, keep 3 late.
        let missed: Vec<_> = p
            .runs
            .iter()
            .filter(|r| r.state == RunState::Missed)
            .collect();
        assert_eq!(missed.len(), 3);
        assert_eq!(missed.iter().map(|r| r.covers).sum::<i32>(), 9);
        let retries = p.runs.iter().filter(|r| r.attempt == 2).count();
        assert_eq!(retries, 3);
        let on_time: Vec<_> = p
            .runs
            .iter()
            .filter(|r| r.attempt == 1 && r.state == RunState::Pending)
            .collect();
        assert_eq!(on_time.len(), 1);
    }

    #[test]
    fn overlap_skip_cancels_new_runs_while_busy() {
        let p = plan(
            &every_minute(),
            &policy(),
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:00Z"),
            true,
        );
        assert_eq!(p.runs[0].state, RunState::Cancelled);
        assert_eq!(p.runs[0].error_kind, Some("overlap"));
        let mut queue = policy();
        queue.overlap = Overlap::Queue;
        let p = plan(
            &every_minute(),
            &queue,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:01:00Z"),
            true,
        );
        assert_eq!(p.runs[0].state, RunState::Pending);
    }

    #[test]
    fn sub_grace_fires_coalesce() {
        let per_second = Schedule::Every {
            interval: Duration::from_secs(1),
            anchor: t("2026-01-01T00:00:00Z"),
        };
        let p = plan(
            &per_second,
            &policy(),
            t("2026-01-01T00:00:01Z"),
            t("2026-01-01T00:00:30Z"),
            false,
        );
        assert_eq!(p.runs.len(), 1);
        assert_eq!(p.runs[0].covers, 30);
        assert_eq!(p.runs[0].fire_at, t("2026-01-01T00:00:30Z"));
        assert_eq!(p.next_fire_at, Some(t("2026-01-01T00:00:31Z")));
    }
}
