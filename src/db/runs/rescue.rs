//! Zombie rescue: running runs whose worker died or hung, marked `zombie` (only if still
//! running) with the retry policy applied, in one transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde_json::Value;
use uuid::Uuid;

use super::complete::{enqueue_events, insert_retries, retry_or_fail, Recorded};
use crate::db::DbError;
use crate::jobs::policy::PolicyDefaults;
use crate::notify::Routing;
use crate::telemetry::events::{Event, Occurrence};

/// A running run, with what the zombie detector judges it by (times from the database's
/// clock, so node clocks do not matter).
#[derive(Debug, Clone, QueryableByName)]
pub struct RunningRun {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub node_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Jsonb)]
    pub policy: Value,
    /// None when the node row is gone.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub node_last_seen: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub node_stopped_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub db_now: DateTime<Utc>,
    /// Time waited for a person so far (ended waits), and since when it waits now.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub waited_ms: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub waiting_since: Option<DateTime<Utc>>,
}

/// The zombie sweep's read of every running run; `tests/plans.rs` EXPLAINs it. Each run's
/// policy is looked up by the job's primary key (a join lets the planner read every job
/// once there are many running runs: the cost must follow the running runs, not the jobs).
pub const RUNNING_SQL: &str = "SELECT r.id, r.node_id, r.started_at, r.heartbeat_at, \
                COALESCE((SELECT j.policy FROM jobs j WHERE j.id = r.job_id), '{}'::jsonb) AS policy, \
                n.last_seen AS node_last_seen, n.stopped_at AS node_stopped_at, now() AS db_now, \
                r.waited_ms, (r.waiting->>'since')::timestamptz AS waiting_since \
         FROM runs r LEFT JOIN nodes n ON n.id = r.node_id \
         WHERE r.state = 'running'";

/// Every running run (uses the partial index on running runs).
pub fn running(conn: &mut PgConnection) -> Result<Vec<RunningRun>, DbError> {
    Ok(diesel::sql_query(RUNNING_SQL).load(conn)?)
}

/// Marks runs as zombies ($1 ids, $2 reasons, $3 now); `tests/plans.rs` EXPLAINs it.
pub const RESCUE_SQL: &str = "WITH v AS (SELECT * FROM unnest($1, $2) AS v(id, reason)), \
             done AS ( \
               UPDATE runs SET state = 'zombie', finished_at = $3, error_kind = v.reason, waiting = NULL, \
                      error_message = 'rescued by the zombie detector: ' || v.reason \
               FROM v WHERE runs.id = v.id AND runs.state = 'running' \
               RETURNING runs.id, runs.job_id, runs.fire_at, runs.attempt, runs.priority) \
             SELECT done.*, j.name AS job_name, j.policy FROM done JOIN jobs j ON j.id = done.job_id";

/// Marks runs as zombies (only those still `running`: a result recorded meanwhile wins) and
/// applies the retry policy to each, in one transaction. Returns the rescued runs' events.
pub fn rescue_zombies(
    conn: &mut PgConnection,
    zombies: &[(Uuid, &'static str)],
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    routing: &Routing,
) -> Result<Vec<Occurrence>, DbError> {
    if zombies.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = zombies.iter().map(|z| z.0).collect();
    let reasons: Vec<String> = zombies.iter().map(|z| z.1.to_string()).collect();
    conn.transaction::<_, DbError, _>(|conn| {
        let recorded: Vec<Recorded> = diesel::sql_query(RESCUE_SQL)
            .bind::<Array<SqlUuid>, _>(&ids)
            .bind::<Array<Text>, _>(&reasons)
            .bind::<Timestamptz, _>(now)
            .load(conn)?;
        let mut events = Vec::new();
        let mut retries = Vec::new();
        for r in &recorded {
            let reason = zombies
                .iter()
                .find(|z| z.0 == r.id)
                .map(|z| z.1)
                .unwrap_or("unknown");
            events.push(Occurrence::new(
                r.id,
                Event::RunZombie {
                    job: r.job_name.clone(),
                    run_id: r.id,
                    attempt: r.attempt,
                    reason: reason.to_string(),
                },
            ));
            retry_or_fail(r, now, defaults, &mut retries, &mut events);
        }
        insert_retries(conn, &retries)?;
        enqueue_events(conn, routing, &events)?;
        Ok(events)
    })
}
