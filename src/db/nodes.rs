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
