//! `once` keys of browser scripts (see `browser::script::OnceLedger`): entered by one run
//! before the block's steps start, done when they all succeeded.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use crate::db::DbError;

/// What [`enter`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entered {
    /// The key is now this run's: run the block.
    Run,
    Done,
    /// Held by a run that is running now.
    Busy(Uuid),
    /// Held by a run that is no longer running (it died in the block).
    Uncertain(Uuid),
}

#[derive(Debug, Clone, QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = SqlUuid)]
    run_id: Uuid,
    #[diesel(sql_type = Int4)]
    attempt: i32,
    /// The holder's run is running in the attempt that entered the key.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    live: bool,
    /// The holder was interrupted inside the block (a shutdown, see [`interrupted`]).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    interrupted: bool,
}

/// Enters `key` for the run, in one transaction: a new key is taken at once; a done key is
/// done; a key held by a live run is busy; one held by a run that died, or that was
/// interrupted inside the block, is uncertain — taken over only when `retry_uncertain`.
pub fn enter(
    conn: &mut PgConnection,
    job_id: Uuid,
    key: &str,
    run_id: Uuid,
    attempt: i32,
    retry_uncertain: bool,
    now: DateTime<Utc>,
) -> Result<Entered, DbError> {
    conn.transaction::<_, DbError, _>(|c| {
        let inserted = diesel::sql_query(
            "INSERT INTO once_keys (job_id, key, state, run_id, attempt, started_at) \
             VALUES ($1, $2, 'running', $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind::<SqlUuid, _>(job_id)
        .bind::<Text, _>(key)
        .bind::<SqlUuid, _>(run_id)
        .bind::<Int4, _>(attempt)
        .bind::<Timestamptz, _>(now)
        .execute(c)?;
        if inserted == 1 {
            return Ok(Entered::Run);
        }
        let holder: Holder = diesel::sql_query(
            "SELECT k.state, k.run_id, k.attempt, \
                    EXISTS (SELECT 1 FROM runs r WHERE r.id = k.run_id AND r.state = 'running' \
                            AND r.attempt = k.attempt) AS live, \
                    k.interrupted_at IS NOT NULL AS interrupted \
             FROM once_keys k WHERE k.job_id = $1 AND k.key = $2 FOR UPDATE",
        )
        .bind::<SqlUuid, _>(job_id)
        .bind::<Text, _>(key)
        .get_result(c)?;
        if holder.state == "done" {
            return Ok(Entered::Done);
        }
        // The run's own key, entered before it was deferred (a quota said wait inside the
        // block): its steps go on. Not after an interruption: where they stopped is unknown.
        if holder.run_id == run_id && holder.attempt == attempt && !holder.interrupted {
            return Ok(Entered::Run);
        }
        if holder.live && !holder.interrupted {
            return Ok(Entered::Busy(holder.run_id));
        }
        if !retry_uncertain {
            return Ok(Entered::Uncertain(holder.run_id));
        }
        diesel::sql_query(
            "UPDATE once_keys SET run_id = $3, attempt = $4, started_at = $5, interrupted_at = NULL \
             WHERE job_id = $1 AND key = $2",
        )
        .bind::<SqlUuid, _>(job_id)
        .bind::<Text, _>(key)
        .bind::<SqlUuid, _>(run_id)
        .bind::<Int4, _>(attempt)
        .bind::<Timestamptz, _>(now)
        .execute(c)?;
        Ok(Entered::Run)
    })
}

/// The run's block for `key` succeeded.
pub fn complete(
    conn: &mut PgConnection,
    job_id: Uuid,
    key: &str,
    run_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE once_keys SET state = 'done', finished_at = $4 \
         WHERE job_id = $1 AND key = $2 AND run_id = $3 AND state = 'running'",
    )
    .bind::<SqlUuid, _>(job_id)
    .bind::<Text, _>(key)
    .bind::<SqlUuid, _>(run_id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(n == 1)
}

/// These runs were interrupted (a shutdown) and are given back to run again, the same
/// attempt: the keys they hold inside a block become uncertain. In the transaction that
/// records them (`runs::complete`).
pub fn interrupted(
    conn: &mut PgConnection,
    run_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "UPDATE once_keys SET interrupted_at = $2 WHERE run_id = ANY($1) AND state = 'running'",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(run_ids)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?)
}

/// The run's block for `key` failed before it completed: the key is forgotten.
pub fn abandon(
    conn: &mut PgConnection,
    job_id: Uuid,
    key: &str,
    run_id: Uuid,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "DELETE FROM once_keys WHERE job_id = $1 AND key = $2 AND run_id = $3 AND state = 'running'",
    )
    .bind::<SqlUuid, _>(job_id)
    .bind::<Text, _>(key)
    .bind::<SqlUuid, _>(run_id)
    .execute(conn)?;
    Ok(n == 1)
}

/// A key as the API shows it.
#[derive(Debug, Clone, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct OnceKey {
    #[diesel(sql_type = Text)]
    pub key: String,
    /// `done`, `running` (a run is in the block now) or `uncertain` (a run died in it, or
    /// was interrupted in it).
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = SqlUuid)]
    pub run_id: Uuid,
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job's keys, by key, after `after` (keyset pagination).
pub fn list(
    conn: &mut PgConnection,
    job_id: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<OnceKey>, DbError> {
    Ok(diesel::sql_query(
        "SELECT k.key, \
                CASE WHEN k.state = 'done' THEN 'done' \
                     WHEN k.interrupted_at IS NOT NULL THEN 'uncertain' \
                     WHEN EXISTS (SELECT 1 FROM runs r WHERE r.id = k.run_id AND r.state = 'running' \
                                  AND r.attempt = k.attempt) THEN 'running' \
                     ELSE 'uncertain' END AS state, \
                k.run_id, k.attempt, k.started_at, k.finished_at \
         FROM once_keys k WHERE k.job_id = $1 AND ($2::text IS NULL OR k.key > $2) \
         ORDER BY k.key LIMIT $3",
    )
    .bind::<SqlUuid, _>(job_id)
    .bind::<Nullable<Text>, _>(after)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)?)
}

/// Forgets a key (its block may run again); false when there was none.
pub fn forget(conn: &mut PgConnection, job_id: Uuid, key: &str) -> Result<bool, DbError> {
    let n = diesel::sql_query("DELETE FROM once_keys WHERE job_id = $1 AND key = $2")
        .bind::<SqlUuid, _>(job_id)
        .bind::<Text, _>(key)
        .execute(conn)?;
    Ok(n == 1)
}
