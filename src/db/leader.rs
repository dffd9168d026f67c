//! The `leader_lease` table: one lease per once-per-cluster duty group. The holder renews
//! it; anyone may take it once it expired. Expiry is judged by the database's clock.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use super::schema::leader_lease;
use super::DbError;

/// The lease for the maintenance duties (zombie sweeps, history pruning).
pub const MAINTENANCE: &str = "maintenance";

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = leader_lease)]
pub struct Lease {
    pub name: String,
    pub node_id: Uuid,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Takes the lease if it is free or expired, or renews it if `node` holds it. Returns the
/// lease as it stands afterwards (held by `node` or by someone else).
pub fn acquire(
    conn: &mut PgConnection,
    name: &str,
    node: Uuid,
    lease_ms: i64,
) -> Result<Lease, DbError> {
    diesel::sql_query(
        "INSERT INTO leader_lease (name, node_id, acquired_at, expires_at) \
         VALUES ($1, $2, now(), now() + $3 * interval '1 millisecond') \
         ON CONFLICT (name) DO UPDATE SET \
           node_id = EXCLUDED.node_id, \
           acquired_at = CASE WHEN leader_lease.node_id = EXCLUDED.node_id \
                              THEN leader_lease.acquired_at ELSE now() END, \
           expires_at = EXCLUDED.expires_at \
         WHERE leader_lease.node_id = EXCLUDED.node_id OR leader_lease.expires_at < now()",
    )
    .bind::<Text, _>(name)
    .bind::<SqlUuid, _>(node)
    .bind::<BigInt, _>(lease_ms)
    .execute(conn)?;
    Ok(leader_lease::table
        .find(name)
        .select(Lease::as_select())
        .first(conn)?)
}

/// Gives the lease up (clean shutdown), so another node takes over at once.
pub fn release(conn: &mut PgConnection, name: &str, node: Uuid) -> Result<(), DbError> {
    diesel::delete(
        leader_lease::table
            .filter(leader_lease::name.eq(name))
            .filter(leader_lease::node_id.eq(node)),
    )
    .execute(conn)?;
    Ok(())
}

pub fn current(conn: &mut PgConnection, name: &str) -> Result<Option<Lease>, DbError> {
    Ok(leader_lease::table
        .find(name)
        .select(Lease::as_select())
        .first(conn)
        .optional()?)
}
