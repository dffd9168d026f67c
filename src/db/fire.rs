//! The fire transaction: due jobs locked with `SKIP LOCKED`, each fire planned
//! (`jobs::plan`, pure), its runs inserted (directly `running` on this node when it has free
//! slots), `next_fire_at` moved, and the events it decided written to the outbox — all in
//! one transaction, so a fire is planned exactly once.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::jobs::{next_due, Job};
use super::runs::{Claimed, NewRun};
use super::schema::{jobs, runs};
use super::{notifications, DbError};
use crate::jobs::job_state::JobState;
use crate::jobs::plan::{self, FirePlan};
use crate::jobs::policy::PolicyDefaults;
use crate::jobs::run_state::RunState;
use crate::notify::Routing;
use crate::telemetry::events::{Event, Occurrence};

/// What makes a fire's event unique: the job and the fire that was due.
fn fire_identity(job_id: Uuid, fire_at: DateTime<Utc>) -> String {
    format!("{job_id}:{}", fire_at.timestamp_micros())
}

#[derive(Debug, Default)]
pub struct FireOutcome {
    pub jobs: usize,
    pub runs: usize,
    /// What the fire step decided that the event path must hear about (after commit).
    pub events: Vec<Occurrence>,
    /// Runs started at once on the dispatching node (no pending stage).
    pub started: Vec<Claimed>,
    /// The earliest next_fire_at of an active job after this step.
    pub next_due: Option<DateTime<Utc>>,
    /// Due jobs left unfired because this node has no free slot (see [`fire_due`]).
    pub held_back: usize,
    /// When the first of them would be at risk of missing its fire: fired then, free slot
    /// or not.
    pub held_until: Option<DateTime<Utc>>,
}

/// Where runs that are due now may start directly, from the fire transaction: the node and
/// how many free executor slots it has.
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    pub node: Uuid,
    pub slots: usize,
}

/// Moves fired jobs on ($1 ids, $2 next fire times, $3 states, $4 now); `tests/plans.rs` EXPLAINs it.
pub const MOVE_NEXT_FIRE_SQL: &str =
    "UPDATE jobs SET next_fire_at = v.next, state = v.state, updated_at = $4 \
             FROM unnest($1, $2, $3) AS v(id, next, state) WHERE jobs.id = v.id";

/// One fire step: locks up to `batch` due jobs (skipping rows another process holds), plans
/// each, records the runs and moves `next_fire_at`, all in one transaction. With `direct`,
/// the first due run of each idle job starts at once on that node (up to its free slots):
/// the run is inserted as `running`, saving the pending → running write and a round trip.
///
/// An idle job that could only become a pending run — the node has no free slot — is held
/// back (left due, unlocked at commit) while it is less than half its `misfire_grace` late:
/// it fires when a slot frees here, or on a node with room, without the pending stage (a
/// third write per run: the claim). Past half its grace it fires as before, as a pending run
/// any node may claim, so holding back never turns a fire into a miss.
pub fn fire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    batch: i64,
    defaults: &PolicyDefaults,
    mut direct: Option<Direct>,
    routing: &Routing,
) -> Result<FireOutcome, DbError> {
    // Microseconds, as PostgreSQL stores them (see jobs::schedule).
    let now = now.trunc_subsecs(6);
    conn.transaction::<_, DbError, _>(|conn| {
        let due: Vec<Job> = jobs::table
            .filter(jobs::state.eq(JobState::Active.as_str()))
            .filter(jobs::next_fire_at.le(now))
            .order(jobs::next_fire_at.asc())
            .limit(batch)
            .select(Job::as_select())
            .for_update()
            .skip_locked()
            .load(conn)?;
        let mut out = FireOutcome {
            jobs: due.len(),
            ..Default::default()
        };
        if due.is_empty() {
            out.next_due = next_due(conn)?;
            return Ok(out);
        }
        let ids: Vec<Uuid> = due.iter().map(|j| j.id).collect();
        let busy: HashSet<Uuid> = runs::table
            .filter(runs::job_id.eq_any(&ids))
            .filter(runs::state.eq_any(["pending", "running", "deferred"]))
            .select(runs::job_id)
            .distinct()
            .load::<Uuid>(conn)?
            .into_iter()
            .collect();

        let mut new_runs: Vec<NewRun> = Vec::new();
        let (mut upd_ids, mut upd_next, mut upd_state) = (Vec::new(), Vec::new(), Vec::new());
        for mut job in due {
            let Some((schedule, policy)) = job.timing(defaults) else {
                // A row that no longer parses (edited by hand?): park it, loudly.
                tracing::error!(job = %job.name, "stored schedule does not parse; pausing the job");
                upd_ids.push(job.id);
                upd_next.push(job.next_fire_at);
                upd_state.push(JobState::Paused.as_str());
                continue;
            };
            let Some(due_at) = job.next_fire_at else {
                continue;
            };
            if let Some(d) = direct.as_ref() {
                let grace = chrono::Duration::from_std(policy.misfire_grace)
                    .unwrap_or(chrono::Duration::MAX);
                let at_risk = due_at
                    .checked_add_signed(grace / 2)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                if d.slots == 0 && !busy.contains(&job.id) && now < at_risk {
                    out.held_back += 1;
                    out.held_until = Some(out.held_until.map_or(at_risk, |t| t.min(at_risk)));
                    continue;
                }
            }
            let FirePlan {
                runs: planned,
                next_fire_at,
                missed,
                failed,
            } = plan::plan(&schedule, &policy, due_at, now, busy.contains(&job.id));
            let mut started_one = false;
            for r in planned {
                let mut run = NewRun::planned(&job, &r, now);
                let idle = !busy.contains(&job.id) && !started_one;
                if let Some(d) = direct.as_mut() {
                    if idle && d.slots > 0 && r.state == RunState::Pending && r.due_at <= now {
                        run.start_on(d.node, now);
                        d.slots -= 1;
                        started_one = true;
                        out.started.push(Claimed {
                            id: run.id,
                            job_id: job.id,
                            fire_at: run.fire_at,
                            attempt: run.attempt,
                            priority: job.priority,
                            // One run per job starts here: its definition moves, not copied.
                            job_name: job.name.clone(),
                            kind: std::mem::take(&mut job.kind),
                            payload: std::mem::take(&mut job.payload),
                            policy: std::mem::take(&mut job.policy),
                            metadata: std::mem::take(&mut job.metadata),
                            quota: std::mem::take(&mut job.quota),
                            lateness_ms: run.lateness_ms.unwrap_or(0),
                            timezone: job
                                .schedule
                                .get("timezone")
                                .and_then(serde_json::Value::as_str)
                                .map(str::to_string),
                        });
                    }
                }
                new_runs.push(run);
            }
            if missed > 0 {
                out.events.push(Occurrence::new(
                    fire_identity(job.id, due_at),
                    Event::JobMissed {
                        job: job.name.clone(),
                        covers: missed,
                    },
                ));
            }
            if failed {
                out.events.push(Occurrence::new(
                    fire_identity(job.id, due_at),
                    Event::JobFailed {
                        job: job.name.clone(),
                        reason: "missed fire with no retries left (max_retries = 0)".into(),
                    },
                ));
            }
            upd_ids.push(job.id);
            upd_next.push(next_fire_at);
            upd_state.push(
                if next_fire_at.is_some() {
                    JobState::Active
                } else {
                    JobState::Completed
                }
                .as_str(),
            );
        }
        out.runs = super::runs::insert_many(conn, &new_runs)?;
        diesel::sql_query(MOVE_NEXT_FIRE_SQL)
            .bind::<Array<SqlUuid>, _>(&upd_ids)
            .bind::<Array<Nullable<Timestamptz>>, _>(&upd_next)
            .bind::<Array<Text>, _>(&upd_state)
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
        let rows = routing.rows(out.events.iter().map(|o| (&o.event, &o.identity)));
        notifications::enqueue(conn, &rows)?;
        out.next_due = next_due(conn)?;
        Ok(out)
    })
}
