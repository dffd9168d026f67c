//! The embedded diesel migrations (`migrations/` is compiled into the binary).

use diesel::migration::MigrationVersion;
use diesel::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

fn err(e: impl std::fmt::Display) -> DbError {
    DbError::Migration(e.to_string())
}

/// Applies every pending migration; returns the versions applied.
pub fn run_pending(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(err)?;
    Ok(applied.iter().map(MigrationVersion::to_string).collect())
}

/// Reverts the most recently applied migration; returns its version.
pub fn revert_last(conn: &mut PgConnection) -> Result<String, DbError> {
    conn.revert_last_migration(MIGRATIONS)
        .map(|v| v.to_string())
        .map_err(err)
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
