//! The embedded diesel migrations (`migrations/` is compiled into the binary).

use diesel::migration::MigrationVersion;
use diesel::{PgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

fn err(e: impl std::fmt::Display) -> DbError {
    DbError::Migration(e.to_string())
}

/// The session-level advisory lock that serialises migrations across processes (every node
/// of a deployment starting at once, `overseer migrate` beside a running node). The key is
/// a constant (the bytes of "overmigr"), so that every version of overseer agrees on it.
const MIGRATION_LOCK: i64 = 0x6f76_6572_6d69_6772; // "overmigr"

/// Holds [`MIGRATION_LOCK`] on `conn` for `f`, released afterwards whatever `f` returned
/// (and by PostgreSQL if the connection breaks). A second process waits here, then finds
/// nothing left to do.
fn locked<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn)?;
    let out = f(conn);
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    match (out, unlocked) {
        (Ok(v), Ok(_)) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

/// Applies every pending migration; returns the versions applied. Serialised across
/// processes: with several starting together, one applies and the others find none.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    locked(conn, |conn| {
        let applied = conn.run_pending_migrations(MIGRATIONS).map_err(err)?;
        Ok(applied.iter().map(MigrationVersion::to_string).collect())
    })
}

/// Reverts the most recently applied migration; returns its version.
pub fn revert_last(conn: &mut PgConnection) -> Result<String, DbError> {
    locked(conn, |conn| {
        conn.revert_last_migration(MIGRATIONS)
            .map(|v| v.to_string())
            .map_err(err)
    })
}

pub fn has_pending(conn: &mut PgConnection) -> Result<bool, DbError> {
    conn.has_pending_migration(MIGRATIONS).map_err(err)
}

/// Every known migration with whether it is applied, oldest first.
pub fn status(conn: &mut PgConnection) -> Result<Vec<(String, bool)>, DbError> {
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(err)?
        .iter()
        .map(|v| v.to_string())
        .collect();
    let mut all: Vec<String> =
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
            .map_err(err)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
    all.sort();
    Ok(all
        .into_iter()
        .map(|v| {
            let done = applied.contains(&v);
            (v, done)
        })
        .collect())
}
