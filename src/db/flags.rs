//! Runtime overrides of feature flags (`flags::Live` holds them in memory).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{SmallInt, Text, Timestamptz};

use crate::db::DbError;
use crate::flags::{Name, Override};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = SmallInt)]
    percent: i16,
    #[diesel(sql_type = Text)]
    set_by: String,
    #[diesel(sql_type = Timestamptz)]
    set_at: DateTime<Utc>,
}

/// Every override of a flag this version knows (rows of unknown flags, from a newer
/// version, are left alone).
pub fn load(conn: &mut PgConnection) -> Result<BTreeMap<Name, Override>, DbError> {
    let rows: Vec<Row> =
        diesel::sql_query("SELECT name, percent, set_by, set_at FROM flag_overrides").load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((Name::parse(&r.name)?, to_override(r))))
        .collect())
}

fn to_override(r: Row) -> Override {
    Override {
        percent: r.percent.clamp(0, 100) as u8,
        set_by: r.set_by,
        set_at: r.set_at,
    }
}

/// Sets `name`'s override; returns the previous one. One statement: the previous row is
/// locked and read in the snapshot of the upsert, so two concurrent changes each report the
/// value they replaced.
pub fn set(conn: &mut PgConnection, name: Name, o: &Override) -> Result<Option<Override>, DbError> {
    let before: Option<Row> = diesel::sql_query(
        "WITH before AS ( \
           SELECT name, percent, set_by, set_at FROM flag_overrides WHERE name = $1 FOR UPDATE \
         ), upsert AS ( \
           INSERT INTO flag_overrides (name, percent, set_by, set_at) VALUES ($1, $2, $3, $4) \
           ON CONFLICT (name) DO UPDATE SET percent = $2, set_by = $3, set_at = $4 \
         ) \
         SELECT name, percent, set_by, set_at FROM before",
    )
    .bind::<Text, _>(name.as_str())
    .bind::<SmallInt, _>(i16::from(o.percent))
    .bind::<Text, _>(&o.set_by)
    .bind::<Timestamptz, _>(o.set_at)
    .get_result(conn)
    .optional()?;
    Ok(before.map(to_override))
}

/// Removes `name`'s override; returns it (None: there was none).
pub fn clear(conn: &mut PgConnection, name: Name) -> Result<Option<Override>, DbError> {
    let before: Option<Row> = diesel::sql_query(
        "DELETE FROM flag_overrides WHERE name = $1 RETURNING name, percent, set_by, set_at",
    )
    .bind::<Text, _>(name.as_str())
    .get_result(conn)
    .optional()?;
    Ok(before.map(to_override))
}
