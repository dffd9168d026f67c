//! Dashboard sessions (`ui/`): stored by the hash of their id, expiring when idle.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

use crate::db::DbError;

#[derive(Debug, Clone, QueryableByName)]
pub struct Session {
    #[diesel(sql_type = Text)]
    pub token_name: String,
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Text)]
    pub csrf: String,
    #[diesel(sql_type = Timestamptz)]
    pub last_seen_at: DateTime<Utc>,
}

pub fn create(
    conn: &mut PgConnection,
    id_hash: &str,
    token_name: &str,
    role: &str,
    csrf: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO ui_sessions (id_hash, token_name, role, csrf, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind::<Text, _>(id_hash)
    .bind::<Text, _>(token_name)
    .bind::<Text, _>(role)
    .bind::<Text, _>(csrf)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}

/// The session, if it exists and was seen after `idle_since`; its `last_seen_at` moves to
/// `now` when it is older than a minute (one write a minute, not one per request).
pub fn touch(
    conn: &mut PgConnection,
    id_hash: &str,
    idle_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<Session>, DbError> {
    let found: Vec<Session> = diesel::sql_query(
        "SELECT token_name, role, csrf, last_seen_at FROM ui_sessions \
         WHERE id_hash = $1 AND last_seen_at > $2",
    )
    .bind::<Text, _>(id_hash)
    .bind::<Timestamptz, _>(idle_since)
    .load(conn)?;
    let Some(s) = found.into_iter().next() else {
        return Ok(None);
    };
    if now - s.last_seen_at > chrono::Duration::minutes(1) {
        diesel::sql_query("UPDATE ui_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind::<Text, _>(id_hash)
            .bind::<Timestamptz, _>(now)
            .execute(conn)?;
    }
    Ok(Some(s))
}

pub fn delete(conn: &mut PgConnection, id_hash: &str) -> Result<(), DbError> {
    diesel::sql_query("DELETE FROM ui_sessions WHERE id_hash = $1")
        .bind::<Text, _>(id_hash)
        .execute(conn)?;
    Ok(())
}

/// Deletes sessions idle since before `idle_since`.
pub fn prune(conn: &mut PgConnection, idle_since: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(
        diesel::sql_query("DELETE FROM ui_sessions WHERE last_seen_at <= $1")
            .bind::<Timestamptz, _>(idle_since)
            .execute(conn)?,
    )
}
