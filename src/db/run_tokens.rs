//! Run tokens (`OVERSEER_RUN_TOKEN`): stored by hash, valid while their run is `running` in
//! the attempt they were issued for.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Text, Uuid as SqlUuid};
use uuid::Uuid;

use crate::db::schema::run_tokens;

/// Every run token starts with this (the API tells them from configured tokens by it).
pub const RUN_TOKEN_PREFIX: &str = "ovr_";
use crate::db::DbError;

/// What a valid run token stands for.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct RunGrant {
    #[diesel(sql_type = SqlUuid)]
    pub run_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub job_id: Uuid,
    #[diesel(sql_type = Text)]
    pub job_name: String,
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = Array<Text>)]
    pub quotas: Vec<String>,
}

/// Stores a token (by hash) for the run's attempt, replacing any earlier one of the run.
pub fn issue(
    conn: &mut PgConnection,
    token_hash: &str,
    run_id: Uuid,
    attempt: i32,
    quotas: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    conn.transaction::<_, DbError, _>(|c| {
        diesel::delete(run_tokens::table.filter(run_tokens::run_id.eq(run_id))).execute(c)?;
        diesel::insert_into(run_tokens::table)
            .values((
                run_tokens::token_hash.eq(token_hash),
                run_tokens::run_id.eq(run_id),
                run_tokens::attempt.eq(attempt),
                run_tokens::quotas.eq(quotas),
                run_tokens::created_at.eq(now),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// The run's token stops working.
pub fn revoke(conn: &mut PgConnection, run_id: Uuid) -> Result<(), DbError> {
    revoke_all(conn, &[run_id]).map(|_| ())
}

/// Revokes the tokens of several runs at once (runs interrupted by a shutdown, in the
/// transaction that gives them back: they run again in the same attempt, where an old token
/// would be good again).
pub fn revoke_all(conn: &mut PgConnection, run_ids: &[Uuid]) -> Result<usize, DbError> {
    Ok(
        diesel::delete(run_tokens::table.filter(run_tokens::run_id.eq_any(run_ids)))
            .execute(conn)?,
    )
}

/// The grant of a token, if its run is running in the token's attempt.
pub fn lookup(conn: &mut PgConnection, token_hash: &str) -> Result<Option<RunGrant>, DbError> {
    let found: Vec<RunGrant> = diesel::sql_query(
        "SELECT t.run_id, r.job_id, j.name AS job_name, t.attempt, t.quotas \
         FROM run_tokens t JOIN runs r ON r.id = t.run_id JOIN jobs j ON j.id = r.job_id \
         WHERE t.token_hash = $1 AND r.state = 'running' AND r.attempt = t.attempt",
    )
    .bind::<Text, _>(token_hash)
    .load(conn)?;
    Ok(found.into_iter().next())
}
