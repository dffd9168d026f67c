//! The `jobs` table: definitions, their state, and the fire query that turns due jobs into
//! runs exactly once across every process (row locks with `FOR UPDATE SKIP LOCKED`, and the
//! unique key on runs).

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::jobs;
use super::DbError;
use crate::jobs::policy::{Policy, PolicyDefaults};
use crate::jobs::schedule::Schedule;
use crate::jobs::JobDef;
use crate::stdx::problems::Problems;

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
        let (schedule, policy) = self.timing(defaults)?;
        Some(JobDef {
            name: self.name.clone(),
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            schedule,
            policy,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            quota: serde_json::from_value(self.quota.clone()).unwrap_or_default(),
            paused: self.state == "paused",
        })
    }

    /// What a fire needs of the stored definition: the schedule and the policy (None when
    /// the stored schedule no longer parses). The rest of [`Job::def`] is not copied.
    pub fn timing(&self, defaults: &PolicyDefaults) -> Option<(Schedule, Policy)> {
        let mut p = Problems::default();
        let schedule = Schedule::parse(&self.schedule, "schedule", self.created_at, &mut p)?;
        Some((schedule, Policy::from_stored(&self.policy, defaults)))
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
            id: Uuid::now_v7(),
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
        // The literal predicate of the partial index (migration 000016), so that it applies.
        q = q
            .filter(jobs::tags.contains(vec![t.clone()]))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "jobs.tags <> '{}'",
            ));
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

/// The earliest `next_fire_at` of an active job (the scheduler sleeps until then).
pub fn next_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq("active"))
        .select(diesel::dsl::min(jobs::next_fire_at))
        .first::<Option<DateTime<Utc>>>(conn)?)
}
