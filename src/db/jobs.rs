//! The `jobs` table: definitions, their state, and the fire query that turns due jobs into
//! runs exactly once across every process (row locks with `FOR UPDATE SKIP LOCKED`, and the
//! unique key on runs).

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::runs::{Claimed, NewRun};
use super::schema::{jobs, runs};
use super::{notifications, DbError};
use crate::jobs::plan::{self, FirePlan};
use crate::jobs::policy::{Policy, PolicyDefaults};
use crate::jobs::run_state::RunState;
use crate::jobs::schedule::Schedule;
use crate::jobs::JobDef;
use crate::notify::Routing;
use crate::stdx::problems::Problems;
use crate::telemetry::events::{Event, Occurrence};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Object)]
    pub schedule: Value,
    #[schema(value_type = Object)]
    pub policy: Value,
    /// active, paused, completed or cancelled.
    pub state: String,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub priority: i16,
    pub overlap: String,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// `config` for declarative jobs, `api` otherwise.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The quotas each run consumes: `[{name, cost, refund_on_failure}]`.
    #[schema(value_type = Vec<Object>)]
    pub quota: Value,
}

impl Job {
    /// The stored definition, parsed back (stored rows were validated when written).
    pub fn def(&self, defaults: &PolicyDefaults) -> Option<JobDef> {
        let mut p = Problems::default();
        let schedule = Schedule::parse(&self.schedule, "schedule", self.created_at, &mut p)?;
        Some(JobDef {
            name: self.name.clone(),
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            schedule,
            policy: Policy::from_stored(&self.policy, defaults),
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            quota: serde_json::from_value(self.quota.clone()).unwrap_or_default(),
            paused: self.state == "paused",
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = jobs)]
struct NewJob<'a> {
    id: Uuid,
    name: &'a str,
    kind: &'a str,
    payload: &'a Value,
    schedule: Value,
    policy: Value,
    state: &'a str,
    next_fire_at: Option<DateTime<Utc>>,
    priority: i16,
    overlap: &'a str,
    tags: &'a [String],
    metadata: &'a Value,
    source: &'a str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    quota: Value,
}

pub fn insert(
    conn: &mut PgConnection,
    def: &JobDef,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Job, DbError> {
    let now = now.trunc_subsecs(6);
    let next = def.schedule.initial_fire(now);
    let state = if def.paused {
        "paused"
    } else if next.is_none() {
        "completed"
    } else {
        "active"
    };
    Ok(diesel::insert_into(jobs::table)
        .values(NewJob {
            id: Uuid::new_v4(),
            name: &def.name,
            kind: &def.kind,
            payload: &def.payload,
            schedule: def.schedule.to_json(),
            policy: def.policy.to_json(),
            state,
            next_fire_at: next,
            priority: def.policy.priority as i16,
            overlap: def.policy.overlap.as_str(),
            tags: &def.tags,
            metadata: &def.metadata,
            source,
            created_at: now,
            updated_at: now,
            quota: def.quota_json(),
        })
        .returning(Job::as_returning())
        .get_result(conn)?)
}

/// Replaces a job's definition. The next fire is recomputed only when the schedule changed.
pub fn update_def(
    conn: &mut PgConnection,
    job: &Job,
    def: &JobDef,
    now: DateTime<Utc>,
) -> Result<Job, DbError> {
    let schedule = def.schedule.to_json();
    let next = if schedule != job.schedule {
        def.schedule.initial_fire(now)
    } else {
        job.next_fire_at
    };
    let state = match job.state.as_str() {
        "completed" if next.is_some() => "active",
        s => s,
    };
    Ok(diesel::update(jobs::table.find(job.id))
        .set((
            jobs::payload.eq(&def.payload),
            jobs::schedule.eq(schedule),
            jobs::policy.eq(def.policy.to_json()),
            jobs::priority.eq(def.policy.priority as i16),
            jobs::overlap.eq(def.policy.overlap.as_str()),
            jobs::tags.eq(&def.tags),
            jobs::metadata.eq(&def.metadata),
            jobs::quota.eq(def.quota_json()),
            jobs::next_fire_at.eq(next),
            jobs::state.eq(state),
            jobs::updated_at.eq(now),
        ))
        .returning(Job::as_returning())
        .get_result(conn)?)
}

/// By id (a UUID) or by name.
pub fn find(conn: &mut PgConnection, key: &str) -> Result<Job, DbError> {
    let q = jobs::table.select(Job::as_select());
    Ok(match Uuid::parse_str(key) {
        Ok(id) => q.filter(jobs::id.eq(id)).first(conn)?,
        Err(_) => q.filter(jobs::name.eq(key)).first(conn)?,
    })
}

pub fn find_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<Job>, DbError> {
    Ok(jobs::table
        .filter(jobs::name.eq(name))
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub name_prefix: Option<String>,
    /// Keyset: names strictly after this one.
    pub after_name: Option<String>,
}

pub fn list(conn: &mut PgConnection, f: &JobFilter, limit: i64) -> Result<Vec<Job>, DbError> {
    let mut q = jobs::table.select(Job::as_select()).into_boxed();
    if let Some(s) = &f.state {
        q = q.filter(jobs::state.eq(s.clone()));
    }
    if let Some(k) = &f.kind {
        q = q.filter(jobs::kind.eq(k.clone()));
    }
    if let Some(t) = &f.tag {
        q = q.filter(jobs::tags.contains(vec![t.clone()]));
    }
    if let Some(prefix) = &f.name_prefix {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        q = q.filter(jobs::name.like(format!("{escaped}%")));
    }
    if let Some(after) = &f.after_name {
        q = q.filter(jobs::name.gt(after.clone()));
    }
    Ok(q.order(jobs::name.asc()).limit(limit).load(conn)?)
}

pub fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    now: DateTime<Utc>,
) -> Result<Job, DbError> {
    set_state_from(conn, id, state, None, now)
}

/// Sets a job's state and, when given, its source (`config` marks a declarative job).
pub fn set_state_from(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    source: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Job, DbError> {
    let row = jobs::table.find(id);
    let q = match source {
        Some(src) => diesel::update(row)
            .set((
                jobs::source.eq(src),
                jobs::state.eq(state),
                jobs::updated_at.eq(now),
            ))
            .returning(Job::as_returning())
            .get_result(conn),
        None => diesel::update(row)
            .set((jobs::state.eq(state), jobs::updated_at.eq(now)))
            .returning(Job::as_returning())
            .get_result(conn),
    };
    Ok(q?)
}

/// Declarative jobs no longer in the configuration: paused (never deleted). Returns their names.
pub fn pause_config_jobs_except(
    conn: &mut PgConnection,
    keep: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    Ok(diesel::update(
        jobs::table
            .filter(jobs::source.eq("config"))
            .filter(jobs::state.eq("active"))
            .filter(jobs::name.ne_all(keep)),
    )
    .set((jobs::state.eq("paused"), jobs::updated_at.eq(now)))
    .returning(jobs::name)
    .get_results(conn)?)
}

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
}

/// Where runs that are due now may start directly, from the fire transaction: the node and
/// how many free executor slots it has.
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    pub node: Uuid,
    pub slots: usize,
}

/// One fire step: locks up to `batch` due jobs (skipping rows another process holds), plans
/// each, records the runs and moves `next_fire_at`, all in one transaction. With `direct`,
/// the first due run of each idle job starts at once on that node (up to its free slots):
/// the run is inserted as `running`, saving the pending → running write and a round trip.
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
            .filter(jobs::state.eq("active"))
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
        for job in &due {
            let Some(def) = job.def(defaults) else {
                // A row that no longer parses (edited by hand?): park it, loudly.
                tracing::error!(job = %job.name, "stored schedule does not parse; pausing the job");
                upd_ids.push(job.id);
                upd_next.push(job.next_fire_at);
                upd_state.push("paused".to_string());
                continue;
            };
            let Some(due_at) = job.next_fire_at else {
                continue;
            };
            let FirePlan {
                runs: planned,
                next_fire_at,
                missed,
                failed,
            } = plan::plan(
                &def.schedule,
                &def.policy,
                due_at,
                now,
                busy.contains(&job.id),
            );
            let mut started_one = false;
            for r in planned {
                let mut run = NewRun::planned(job, &r, now);
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
                            job_name: job.name.clone(),
                            kind: job.kind.clone(),
                            payload: job.payload.clone(),
                            policy: job.policy.clone(),
                            metadata: job.metadata.clone(),
                            quota: job.quota.clone(),
                            lateness_ms: run.lateness_ms.unwrap_or(0),
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
                    "active"
                } else {
                    "completed"
                }
                .to_string(),
            );
        }
        for chunk in new_runs.chunks(1000) {
            out.runs += diesel::insert_into(runs::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)?;
        }
        diesel::sql_query(
            "UPDATE jobs SET next_fire_at = v.next, state = v.state, updated_at = $4 \
             FROM unnest($1, $2, $3) AS v(id, next, state) WHERE jobs.id = v.id",
        )
        .bind::<Array<SqlUuid>, _>(&upd_ids)
        .bind::<Array<Nullable<Timestamptz>>, _>(&upd_next)
        .bind::<Array<Text>, _>(&upd_state)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
        let rows = routing.rows(
            out.events
                .iter()
                .map(|o| (o.event.clone(), o.identity.clone())),
        );
        notifications::enqueue(conn, &rows)?;
        out.next_due = next_due(conn)?;
        Ok(out)
    })
}

/// The earliest `next_fire_at` of an active job (the scheduler sleeps until then).
pub fn next_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq("active"))
        .select(diesel::dsl::min(jobs::next_fire_at))
        .first::<Option<DateTime<Utc>>>(conn)?)
}
