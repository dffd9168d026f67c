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
use crate::jobs::job_state::JobState;
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
    /// active, paused, completed or cancelled (`jobs::job_state`).
    #[diesel(deserialize_as = String)]
    pub state: JobState,
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
            paused: self.state == JobState::Paused,
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
        JobState::Paused
    } else if next.is_none() {
        JobState::Completed
    } else {
        JobState::Active
    }
    .as_str();
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

/// Replaces a job's definition; returns the row as it was (locked, so read afresh: the
/// `job` the caller loaded may be older) and as it is now. The next fire is recomputed only
/// when the schedule changed, and a completed job whose new schedule fires again becomes
/// active; the state and next fire a concurrent fire, pause or cancel wrote are kept.
pub fn update_def(
    conn: &mut PgConnection,
    job: &Job,
    def: &JobDef,
    now: DateTime<Utc>,
) -> Result<(Job, Job), DbError> {
    conn.transaction(|conn| {
        let before: Job = jobs::table
            .find(job.id)
            .select(Job::as_select())
            .for_update()
            .first(conn)?;
        let schedule = def.schedule.to_json();
        let next = if schedule != before.schedule {
            def.schedule.initial_fire(now)
        } else {
            before.next_fire_at
        };
        let state = match before.state {
            JobState::Completed if next.is_some() => JobState::Active,
            s => s,
        };
        let after = diesel::update(jobs::table.find(job.id))
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
                jobs::state.eq(state.as_str()),
                jobs::updated_at.eq(now),
            ))
            .returning(Job::as_returning())
            .get_result(conn)?;
        Ok((before, after))
    })
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

/// A state change that did not happen: the job was no longer in a state it may change
/// from (another change won the race). Carries the job as it is.
#[derive(Debug)]
pub struct Lost(pub Job);

/// Changes a job's state to `to` when it is in one of the states that may become `to`
/// (`JobState::can_become`), in one conditional statement: a change that raced another
/// (a pause against a cancel) either happens from the state it expected or not at all, and
/// never undoes the other.
pub fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    to: JobState,
    now: DateTime<Utc>,
) -> Result<Result<Job, Lost>, DbError> {
    transition_from(conn, id, &JobState::sources_of(to), to, now)
}

/// [`transition`] from the given states only (each must be able to become `to`).
pub fn transition_from(
    conn: &mut PgConnection,
    id: Uuid,
    from: &[JobState],
    to: JobState,
    now: DateTime<Utc>,
) -> Result<Result<Job, Lost>, DbError> {
    debug_assert!(from.iter().all(|f| f.can_become(to)));
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let changed = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq_any(from)),
    )
    .set((jobs::state.eq(to.as_str()), jobs::updated_at.eq(now)))
    .returning(Job::as_returning())
    .get_result(conn)
    .optional()?;
    match changed {
        Some(job) => Ok(Ok(job)),
        None => Ok(Err(Lost(find_by_id(conn, id)?))),
    }
}

/// The job, share-locked for the rest of the transaction, unless it is cancelled (None): a
/// run made for it now (trigger, requeue) cannot slip past a cancel, which waits for this
/// lock and then cancels the job's open runs, that one included.
pub fn lock_unless_cancelled(conn: &mut PgConnection, id: Uuid) -> Result<Option<Job>, DbError> {
    Ok(jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::state.ne(JobState::Cancelled.as_str()))
        .select(Job::as_select())
        .for_share()
        .first(conn)
        .optional()?)
}

/// Marks who owns a job's definition (`config` for a declarative job, `api`).
pub fn set_source(conn: &mut PgConnection, id: Uuid, source: &str) -> Result<Job, DbError> {
    Ok(diesel::update(jobs::table.find(id))
        .set(jobs::source.eq(source))
        .returning(Job::as_returning())
        .get_result(conn)?)
}

pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Job, DbError> {
    Ok(jobs::table.find(id).select(Job::as_select()).first(conn)?)
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
            .filter(jobs::state.eq(JobState::Active.as_str()))
            .filter(jobs::name.ne_all(keep)),
    )
    .set((
        jobs::state.eq(JobState::Paused.as_str()),
        jobs::updated_at.eq(now),
    ))
    .returning(jobs::name)
    .get_results(conn)?)
}

/// The earliest `next_fire_at` of an active job (the scheduler sleeps until then).
pub fn next_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq(JobState::Active.as_str()))
        .select(diesel::dsl::min(jobs::next_fire_at))
        .first::<Option<DateTime<Utc>>>(conn)?)
}
