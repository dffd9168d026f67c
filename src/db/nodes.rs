//! The `nodes` table: one row per overseer process.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::schema::nodes;
use super::DbError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = nodes)]
pub struct Node {
    pub id: Uuid,
    pub hostname: String,
    pub pid: i32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Registers (or re-registers after an actor restart) this process; returns the stored row.
pub fn register(conn: &mut PgConnection, node: &Node) -> Result<Node, DbError> {
    Ok(diesel::insert_into(nodes::table)
        .values(node)
        .on_conflict(nodes::id)
        .do_update()
        .set((
            nodes::last_seen.eq(diesel::dsl::now),
            nodes::stopped_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(Node::as_returning())
        .get_result(conn)?)
}

/// Refreshes `last_seen`; false when the row is gone (someone deleted it).
pub fn touch(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    let n = diesel::update(nodes::table.find(id))
        .set(nodes::last_seen.eq(diesel::dsl::now))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn mark_stopped(conn: &mut PgConnection, id: Uuid) -> Result<(), DbError> {
    diesel::update(nodes::table.find(id))
        .set(nodes::stopped_at.eq(diesel::dsl::now))
        .execute(conn)?;
    Ok(())
}

pub fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<Node>, DbError> {
    Ok(nodes::table
        .order(nodes::started_at.desc())
        .limit(limit)
        .select(Node::as_select())
        .load(conn)?)
}

/// How many nodes with running runs have been silent (or stopped) for longer than
/// `timeout`, by the database's clock.
pub fn silent_with_running_runs(
    conn: &mut PgConnection,
    timeout: std::time::Duration,
) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    Ok(diesel::sql_query(
        "SELECT count(DISTINCT r.node_id) AS n FROM runs r LEFT JOIN nodes n ON n.id = r.node_id \
         WHERE r.state = 'running' \
           AND (n.id IS NULL OR n.stopped_at IS NOT NULL \
                OR n.last_seen < now() - $1 * interval '1 millisecond')",
    )
    .bind::<diesel::sql_types::BigInt, _>(timeout.as_millis() as i64)
    .get_result::<N>(conn)?
    .n)
}
