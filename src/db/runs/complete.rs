//! Fenced completion: the results of a batch recorded in one statement, only for runs still
//! `running` on the reporting node, then each failed run's retry or dead letter.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::db::{notifications, DbError};
use crate::jobs::policy::{Policy, PolicyDefaults};
use crate::jobs::run_state::RunState;
use crate::notify::Routing;
use crate::telemetry::events::{Event, Occurrence};

/// The result of one execution, reported by the executor.
#[derive(Debug, Clone)]
pub struct Completion {
    pub run_id: Uuid,
    /// The run's job, as the executor claimed it (named in the run's events).
    pub job_name: String,
    pub state: RunState,
    /// With `RunState::Deferred`: when the run is due again (it returns to waiting).
    pub defer_until: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// When the executor started the kind's work (None when it never did).
    pub began_at: Option<DateTime<Utc>>,
    /// The run's work was cut off where it was (a shutdown; the run is deferred to run
    /// again): the `once` keys it holds inside a block become uncertain and its run tokens
    /// are revoked.
    pub interrupted: bool,
}

impl Completion {
    /// The run goes back to waiting until `until`, the same attempt (a quota or a circuit
    /// said wait, or the node is shutting down), saying why.
    pub fn deferred(run_id: Uuid, job_name: String, until: DateTime<Utc>, why: String) -> Self {
        Self {
            run_id,
            job_name,
            state: RunState::Deferred,
            defer_until: Some(until),
            output: None,
            error_kind: None,
            error_message: Some(why),
            began_at: None,
            interrupted: false,
        }
    }
}

/// Writes the routed events of a batch to the outbox, in the caller's transaction.
pub(super) fn enqueue_events(
    conn: &mut PgConnection,
    routing: &Routing,
    events: &[Occurrence],
) -> Result<(), DbError> {
    let rows = routing.rows(events.iter().map(|o| (&o.event, &o.identity)));
    notifications::enqueue(conn, &rows)?;
    Ok(())
}

/// A run [`COMPLETE_SQL`] recorded; the job's policy only for a failed run (its retry).
#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    job_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    fire_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    attempt: i32,
    #[diesel(sql_type = Int2)]
    priority: i16,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    policy: Option<Value>,
}

/// A failed attempt, as the retry policy needs it (from a recorded batch or a rescue).
#[derive(QueryableByName)]
pub(super) struct Recorded {
    #[diesel(sql_type = SqlUuid)]
    pub(super) id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub(super) job_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub(super) fire_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    pub(super) attempt: i32,
    #[diesel(sql_type = Int2)]
    pub(super) priority: i16,
    #[diesel(sql_type = Text)]
    pub(super) job_name: String,
    #[diesel(sql_type = Jsonb)]
    pub(super) policy: Value,
}

/// The fenced completion of a batch (the job's policy is read only for a failed run: the
/// executor names the job in the events; $1 ids, $2 states, $3 outputs, $4 error kinds, $5 messages, $6 now, $7 node, $8 defer times, $9 began times); `tests/plans.rs` EXPLAINs it.
pub const COMPLETE_SQL: &str = "WITH v AS (SELECT * FROM unnest($1, $2, $3, $4, $5, $8, $9) AS v(id, state, output, ek, em, defer, began)), \
             done AS ( \
               UPDATE runs SET state = v.state, output = v.output, waiting = NULL, \
                      error_kind = v.ek, error_message = v.em, \
                      finished_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE $6 END, \
                      began_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE v.began END, \
                      due_at = COALESCE(v.defer, runs.due_at), \
                      node_id = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.node_id END, \
                      started_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.started_at END, \
                      heartbeat_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.heartbeat_at END \
               FROM v WHERE runs.id = v.id AND runs.state = 'running' AND runs.node_id = $7 \
               RETURNING runs.id, runs.job_id, runs.fire_at, runs.attempt, runs.priority, runs.state) \
             SELECT done.*, CASE WHEN done.state NOT IN ('succeeded', 'deferred') \
                    THEN (SELECT j.policy FROM jobs j WHERE j.id = done.job_id) END AS policy \
             FROM done";

/// Records a batch of results in one transaction: a fenced update of every run, then the
/// next attempt of each failed run that has a retry left.
pub fn complete(
    conn: &mut PgConnection,
    node: Uuid,
    results: &[Completion],
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    routing: &Routing,
) -> Result<Vec<Occurrence>, DbError> {
    if results.is_empty() {
        return Ok(Vec::new());
    }
    // Every result is a transition from `running`: the table in `run_state` says which.
    if let Some(bad) = results
        .iter()
        .find(|r| !RunState::Running.can_become(r.state))
    {
        return Err(DbError::Query(diesel::result::Error::QueryBuilderError(
            format!("a running run cannot become {}", bad.state.as_str()).into(),
        )));
    }
    let ids: Vec<Uuid> = results.iter().map(|r| r.run_id).collect();
    let states: Vec<String> = results
        .iter()
        .map(|r| r.state.as_str().to_string())
        .collect();
    let outputs: Vec<Option<Value>> = results.iter().map(|r| r.output.clone()).collect();
    let kinds: Vec<Option<String>> = results.iter().map(|r| r.error_kind.clone()).collect();
    let messages: Vec<Option<String>> = results.iter().map(|r| r.error_message.clone()).collect();
    let defers: Vec<Option<DateTime<Utc>>> = results.iter().map(|r| r.defer_until).collect();
    let began: Vec<Option<DateTime<Utc>>> = results.iter().map(|r| r.began_at).collect();
    conn.transaction::<_, DbError, _>(|conn| {
        // A deferred run goes back to waiting: no node, not started, due again later.
        let recorded: Vec<Done> = diesel::sql_query(COMPLETE_SQL)
            .bind::<Array<SqlUuid>, _>(&ids)
            .bind::<Array<Text>, _>(&states)
            .bind::<Array<Nullable<Jsonb>>, _>(&outputs)
            .bind::<Array<Nullable<Text>>, _>(&kinds)
            .bind::<Array<Nullable<Text>>, _>(&messages)
            .bind::<Timestamptz, _>(now)
            .bind::<SqlUuid, _>(node)
            .bind::<Array<Nullable<Timestamptz>>, _>(&defers)
            .bind::<Array<Nullable<Timestamptz>>, _>(&began)
            .load(conn)?;
        let cut_off: Vec<Uuid> = results
            .iter()
            .filter(|r| r.interrupted)
            .map(|r| r.run_id)
            .collect();
        if !cut_off.is_empty() {
            crate::db::once_keys::interrupted(conn, &cut_off, now)?;
            crate::db::run_tokens::revoke_all(conn, &cut_off)?;
        }

        let mut events = Vec::with_capacity(results.len());
        let mut retries = Vec::new();
        let mut done_ids = HashSet::with_capacity(recorded.len());
        let by_id: HashMap<Uuid, &Completion> = results.iter().map(|c| (c.run_id, c)).collect();
        for d in recorded {
            done_ids.insert(d.id);
            let result = by_id.get(&d.id).copied();
            let job = result.map_or("", |c| c.job_name.as_str());
            if d.state == RunState::Deferred.as_str() {
                events.push(Occurrence::new(
                    d.id,
                    Event::RunDeferred {
                        job: job.to_string(),
                        run_id: d.id,
                        reason: result
                            .and_then(|c| c.error_message.clone())
                            .unwrap_or_default(),
                        until: result.and_then(|c| c.defer_until).unwrap_or(now),
                    },
                ));
                continue;
            }
            if d.state == RunState::Succeeded.as_str() {
                events.push(Occurrence::new(
                    d.id,
                    Event::JobExecuted {
                        job: job.to_string(),
                        run_id: d.id,
                        attempt: d.attempt,
                    },
                ));
                continue;
            }
            events.push(Occurrence::new(
                d.id,
                Event::JobError {
                    job: job.to_string(),
                    run_id: d.id,
                    attempt: d.attempt,
                    kind: result
                        .and_then(|c| c.error_kind.clone())
                        .unwrap_or_default(),
                    message: result
                        .and_then(|c| c.error_message.clone())
                        .unwrap_or_default(),
                },
            ));
            // The retry policy shares its path with the zombie rescue's (`Recorded`).
            let failed = Recorded {
                id: d.id,
                job_id: d.job_id,
                fire_at: d.fire_at,
                attempt: d.attempt,
                priority: d.priority,
                job_name: job.to_string(),
                policy: d.policy.unwrap_or(Value::Null),
            };
            // What fails the same way every time is not retried.
            let retryable = result
                .and_then(|c| c.error_kind.as_deref())
                .is_none_or(|k| crate::jobs::run_error::RunErrorKind::from_stored(k).retries());
            if retryable {
                retry_or_fail(&failed, now, defaults, &mut retries, &mut events);
            } else {
                events.push(Occurrence::new(
                    failed.id,
                    Event::JobFailed {
                        job: failed.job_name.clone(),
                        reason: format!(
                            "{} is not retried: it would fail the same way until the job or the configuration changes",
                            result.and_then(|c| c.error_kind.as_deref()).unwrap_or("this error")
                        ),
                    },
                ));
            }
        }
        for id in &ids {
            if !done_ids.contains(id) {
                events.push(Occurrence::new(id, Event::RunRefused { run_id: *id }));
            }
        }
        insert_retries(conn, &retries)?;
        enqueue_events(conn, routing, &events)?;
        Ok(events)
    })
}

/// The retry policy after a failed attempt (error, timeout, zombie): the next attempt of the
/// same fire after its delay, or the dead letter and `job.failed`.
pub(super) fn retry_or_fail(
    r: &Recorded,
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    retries: &mut Vec<NewRun>,
    events: &mut Vec<Occurrence>,
) {
    let policy = Policy::from_stored(&r.policy, defaults);
    match policy.next_attempt_after(r.attempt as u32) {
        Some(delay) => {
            let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
            retries.push(NewRun::pending(
                r.job_id,
                r.priority,
                policy.overlap.as_str(),
                r.fire_at,
                r.attempt + 1,
                now + delay,
                now,
            ));
            events.push(Occurrence::new(
                r.id,
                Event::JobRetryScheduled {
                    job: r.job_name.clone(),
                    run_id: r.id,
                    next_attempt: r.attempt + 1,
                    delay_ms: delay.num_milliseconds(),
                },
            ));
        }
        None => events.push(Occurrence::new(
            r.id,
            Event::JobFailed {
                job: r.job_name.clone(),
                reason: "retries exhausted".to_string(),
            },
        )),
    }
}

pub(super) fn insert_retries(conn: &mut PgConnection, retries: &[NewRun]) -> Result<(), DbError> {
    super::insert_many(conn, retries)?;
    Ok(())
}
