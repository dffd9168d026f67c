//! The `browser_sessions` table: browser profiles per machine and the state of their
//! browser (running with its pid, closed, crashed), with launch, crash and run counts. The
//! browser pool writes every change and rehydrates from it when it starts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Uuid as SqlUuid};
use serde::Serialize;
use uuid::Uuid;

use super::schema::browser_sessions;
use super::DbError;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = browser_sessions)]
pub struct BrowserSession {
    /// The machine whose `<state_dir>/profiles/<profile>` this is.
    pub hostname: String,
    pub profile: String,
    /// The node that last ran this profile's browser.
    pub node_id: Option<Uuid>,
    /// running, closed or crashed
    pub state: String,
    /// Chromium's process id while running.
    pub pid: Option<i32>,
    pub launches: i64,
    pub crashes: i64,
    pub runs: i64,
    pub last_error: Option<String>,
    pub launched_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One change to a profile's row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The new state (None: unchanged).
    pub state: Option<&'static str>,
    /// With a new state: the pid (None clears it).
    pub pid: Option<i32>,
    pub launches: i64,
    pub crashes: i64,
    pub runs: i64,
    pub error: Option<String>,
}

/// Applies a change to the profile's row (created when missing).
pub fn apply(
    conn: &mut PgConnection,
    hostname: &str,
    node_id: Uuid,
    profile: &str,
    change: &Change,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO browser_sessions AS s (hostname, profile, node_id, state, pid, launches, \
                crashes, runs, last_error, launched_at, last_used_at) \
         VALUES ($1, $2, $3, coalesce($4, 'closed'), $5, $6, $7, $8, $9, \
                 CASE WHEN $6 > 0 THEN now() END, CASE WHEN $8 > 0 THEN now() END) \
         ON CONFLICT (hostname, profile) DO UPDATE SET \
             node_id = EXCLUDED.node_id, \
             state = coalesce($4, s.state), \
             pid = CASE WHEN $4 IS NULL THEN s.pid ELSE $5 END, \
             launches = s.launches + $6, crashes = s.crashes + $7, runs = s.runs + $8, \
             last_error = CASE WHEN $6 > 0 THEN NULL ELSE coalesce($9, s.last_error) END, \
             launched_at = coalesce(EXCLUDED.launched_at, s.launched_at), \
             last_used_at = coalesce(EXCLUDED.last_used_at, s.last_used_at), \
             updated_at = now()",
    )
    .bind::<Text, _>(hostname)
    .bind::<Text, _>(profile)
    .bind::<SqlUuid, _>(node_id)
    .bind::<Nullable<Text>, _>(change.state)
    .bind::<Nullable<Integer>, _>(change.pid)
    .bind::<BigInt, _>(change.launches)
    .bind::<BigInt, _>(change.crashes)
    .bind::<BigInt, _>(change.runs)
    .bind::<Nullable<Text>, _>(change.error.as_deref())
    .execute(conn)?;
    Ok(())
}

/// At the pool's start: this machine's rows still `running` whose Chromium is gone (`alive`
/// says no for their pid: the earlier overseer stopped or was killed, and its browsers with
/// it) are closed; profiles found on disk get a row. Returns how many were closed and this
/// machine's profiles.
pub fn rehydrate(
    conn: &mut PgConnection,
    hostname: &str,
    on_disk: &[String],
    alive: fn(i32) -> bool,
) -> Result<(usize, Vec<BrowserSession>), DbError> {
    conn.transaction(|conn| {
        let running: Vec<(String, Option<i32>)> = browser_sessions::table
            .filter(browser_sessions::hostname.eq(hostname))
            .filter(browser_sessions::state.eq("running"))
            .select((browser_sessions::profile, browser_sessions::pid))
            .for_update()
            .load(conn)?;
        let stale: Vec<String> = running
            .into_iter()
            .filter(|(_, pid)| !pid.is_some_and(alive))
            .map(|(profile, _)| profile)
            .collect();
        let closed = diesel::update(
            browser_sessions::table
                .filter(browser_sessions::hostname.eq(hostname))
                .filter(browser_sessions::profile.eq_any(&stale)),
        )
        .set((
            browser_sessions::state.eq("closed"),
            browser_sessions::pid.eq(None::<i32>),
            browser_sessions::last_error.eq("closed when its overseer stopped"),
            browser_sessions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
        for profile in on_disk {
            diesel::insert_into(browser_sessions::table)
                .values((
                    browser_sessions::hostname.eq(hostname),
                    browser_sessions::profile.eq(profile),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
        }
        let rows = browser_sessions::table
            .filter(browser_sessions::hostname.eq(hostname))
            .select(BrowserSession::as_select())
            .order(browser_sessions::profile)
            .load(conn)?;
        Ok((closed, rows))
    })
}

/// Every profile of every machine.
pub fn list(conn: &mut PgConnection) -> Result<Vec<BrowserSession>, DbError> {
    Ok(browser_sessions::table
        .select(BrowserSession::as_select())
        .order((browser_sessions::hostname, browser_sessions::profile))
        .load(conn)?)
}
