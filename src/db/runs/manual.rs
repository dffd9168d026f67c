//! What operators do to runs: trigger a job now, requeue a dead letter, cancel pending runs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::*;
use crate::db::jobs::Job;
use crate::db::schema::runs;
use crate::db::DbError;

/// A run now (`trigger`): a fire at `now`, attempt 1.
pub fn trigger(conn: &mut PgConnection, job: &Job, now: DateTime<Utc>) -> Result<Run, DbError> {
    let new = NewRun::pending(job.id, job.priority, &job.overlap, now, 1, now, now);
    Ok(diesel::insert_into(runs::table)
        .values(&new)
        .returning(Run::as_returning())
        .get_result(conn)?)
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error("only a failed or timed-out run can be requeued (this one is {0})")]
    NotDead(String),
    #[error("a newer attempt of this fire exists (attempt {0})")]
    Superseded(i32),
    #[error("its job is cancelled")]
    JobCancelled,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RequeueError {
    fn from(e: diesel::result::Error) -> Self {
        RequeueError::Db(e.into())
    }
}

/// Requeues a dead letter: a new attempt of the same fire, due now.
pub fn requeue(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<Run, RequeueError> {
    conn.transaction::<_, RequeueError, _>(|conn| {
        let run: Run = runs::table
            .find(id)
            .select(Run::as_select())
            .for_update()
            .first(conn)
            .map_err(DbError::from)?;
        if !["failed", "timed_out", "zombie", "missed"].contains(&run.state.as_str()) {
            return Err(RequeueError::NotDead(run.state.to_string()));
        }
        let latest: i32 = runs::table
            .filter(runs::job_id.eq(run.job_id))
            .filter(runs::fire_at.eq(run.fire_at))
            .select(diesel::dsl::max(runs::attempt))
            .first::<Option<i32>>(conn)
            .map_err(DbError::from)?
            .unwrap_or(run.attempt);
        if latest != run.attempt {
            return Err(RequeueError::Superseded(latest));
        }
        // Held until the new attempt is committed: a cancel waits, then cancels it too.
        if crate::db::jobs::lock_unless_cancelled(conn, run.job_id)?.is_none() {
            return Err(RequeueError::JobCancelled);
        }
        let new = NewRun::pending(
            run.job_id,
            run.priority,
            &run.overlap,
            run.fire_at,
            run.attempt + 1,
            now,
            now,
        );
        Ok(diesel::insert_into(runs::table)
            .values(&new)
            .returning(Run::as_returning())
            .get_result(conn)
            .map_err(DbError::from)?)
    })
}

/// Cancels a job's open runs (the job was cancelled): pending and deferred ones never
/// start; running ones are `cancelled` now — their node's executor learns it at its next
/// heartbeat and ends the work (a command's process group, a browser run's page), and their
/// late result is refused by the fence.
pub fn cancel_open(
    conn: &mut PgConnection,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        runs::table
            .filter(runs::job_id.eq(job_id))
            .filter(runs::state.eq_any(["pending", "deferred", "running"])),
    )
    .set((
        runs::state.eq("cancelled"),
        runs::finished_at.eq(now),
        runs::error_kind.eq(crate::jobs::run_error::RunErrorKind::JobCancelled.as_str()),
        runs::error_message.eq("the job was cancelled"),
    ))
    .execute(conn)?)
}
