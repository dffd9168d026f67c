//! History retention: old terminal runs deleted in batches (leader only, under an advisory
//! lock).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};

use crate::db::DbError;

/// Advisory lock key held (per transaction) by the node that prunes.
pub const PRUNE_LOCK: i64 = 0x006f_7670_7275_6e65; // "ovprune"

/// One pruning batch, only if no other node is pruning right now (a transaction-scoped
/// advisory lock). Returns None when another node holds the lock.
pub fn prune_batch_exclusive(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    retention: chrono::Duration,
    failed_retention: chrono::Duration,
    batch: i64,
) -> Result<Option<usize>, DbError> {
    conn.transaction(|c| {
        #[derive(QueryableByName)]
        struct Got {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            got: bool,
        }
        let lock: Got = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS got")
            .bind::<BigInt, _>(PRUNE_LOCK)
            .get_result(c)?;
        if !lock.got {
            return Ok(None);
        }
        prune(c, now, retention, failed_retention, batch).map(Some)
    })
}

/// One batch of the run history's pruning ($1 success cutoff, $2 failure cutoff, $3 batch); `tests/plans.rs` EXPLAINs it.
pub const PRUNE_SQL: &str = "DELETE FROM runs WHERE id IN ( \
           SELECT id FROM runs WHERE \
             (state IN ('succeeded', 'missed', 'cancelled') AND finished_at < $1) \
             OR (state IN ('failed', 'timed_out', 'zombie') AND finished_at < $2) \
           LIMIT $3)";

/// Deletes terminal runs older than their retention, `batch` rows at a time; returns the
/// number deleted.
pub fn prune(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    retention: chrono::Duration,
    failed_retention: chrono::Duration,
    batch: i64,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(PRUNE_SQL)
        .bind::<Timestamptz, _>(now - retention)
        .bind::<Timestamptz, _>(now - failed_retention)
        .bind::<BigInt, _>(batch)
        .execute(conn)?)
}
