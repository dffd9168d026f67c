//! The embedded diesel migrations (`migrations/` is compiled into the binary).

use chrono::{DateTime, Utc};
use diesel::migration::MigrationVersion;
use diesel::{PgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));

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

/// A migration's version and when it was applied (None: pending).
pub type Status = (String, Option<DateTime<Utc>>);

/// Every known migration with when it was applied, oldest first.
pub fn status(conn: &mut PgConnection) -> Result<Vec<Status>, DbError> {
    let applied: Vec<Applied> = diesel::sql_query(
        "SELECT version, run_on FROM __diesel_schema_migrations ORDER BY version",
    )
    .load(conn)
    .or_else(|e| match e {
        // No migration ever ran: the table is not there yet.
        diesel::result::Error::DatabaseError(_, ref info)
            if info.message().contains("does not exist") =>
        {
            Ok(Vec::new())
        }
        other => Err(other),
    })?;
    Ok(known()?
        .into_iter()
        .map(|v| {
            let at = applied
                .iter()
                .find(|a| a.version == v)
                .map(|a| a.run_on.and_utc());
            (v, at)
        })
        .collect())
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    run_on: chrono::NaiveDateTime,
}

/// Every embedded migration's version, oldest first.
fn known() -> Result<Vec<String>, DbError> {
    let mut all: Vec<String> =
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
            .map_err(err)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
    all.sort();
    Ok(all)
}

/// The pending migrations with their folder name and `up.sql`, oldest first: what
/// `run_pending` would apply, applied by nothing here.
pub fn pending_sql(
    conn: &mut PgConnection,
) -> Result<Vec<(String, &'static str, &'static str)>, DbError> {
    Ok(status(conn)?
        .into_iter()
        .filter(|(_, at)| at.is_none())
        .map(|(v, _)| {
            let (name, up) = MIGRATION_SQL
                .iter()
                .find(|m| m.0 == v)
                .map(|m| (m.1, m.2))
                .unwrap_or(("?", "-- (the SQL of this migration is not embedded)"));
            (v, name, up)
        })
        .collect())
}

/// Why `revert_to` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("no migration has version {0} (see `overseer migrate status`)")]
    UnknownVersion(String),
    #[error("reverting {version} failed ({reason}); reverted before it: {done:?}")]
    Failed {
        version: String,
        reason: String,
        done: Vec<String>,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Reverts, newest first, every applied migration newer than `version` (which stays
/// applied), each in a transaction of its own (diesel runs each `down.sql` in one); stops at
/// the first failure. Returns the versions reverted.
pub fn revert_to(conn: &mut PgConnection, version: &str) -> Result<Vec<String>, RevertError> {
    if !known()?.iter().any(|v| v == version) {
        return Err(RevertError::UnknownVersion(version.to_string()));
    }
    let mut done = Vec::new();
    let mut failed: Option<(String, String)> = None;
    locked(conn, |conn| loop {
        let newest = status(conn)?
            .into_iter()
            .filter(|(_, at)| at.is_some())
            .map(|(v, _)| v)
            .next_back();
        match newest {
            Some(v) if v.as_str() > version => match conn.revert_last_migration(MIGRATIONS) {
                Ok(r) => done.push(r.to_string()),
                Err(e) => {
                    failed = Some((v, e.to_string()));
                    return Ok(());
                }
            },
            _ => return Ok(()),
        }
    })?;
    match failed {
        Some((version, reason)) => Err(RevertError::Failed {
            version,
            reason,
            done,
        }),
        None => Ok(done),
    }
}
