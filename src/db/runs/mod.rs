//! The `runs` table: the execution history. Claims (pending → running) and completions
//! (running → terminal) are single set-based statements; completions are **fenced**: only
//! the node that holds the run, while it is still `running`, can record its result.
//!
//! One file per way a run changes hands: `dispatch` (claims, the hand-off to an executor,
//! hand-backs, heartbeats), `complete` (fenced results and retries), `rescue` (zombies),
//! `manual` (trigger, requeue, cancel), `prune` (history retention); reads are here.

mod complete;
mod dispatch;
mod manual;
mod prune;
mod rescue;

pub use complete::{complete, Completion, COMPLETE_SQL};
pub use dispatch::{
    claim, hand_back, heartbeat, promote_deferred, running_on, wait_for_hand_backs, Claimed,
    Handoff, CLAIM_SQL,
};
pub use manual::{cancel_open, requeue, trigger, RequeueError};
pub use prune::{prune, prune_batch_exclusive, PRUNE_LOCK, PRUNE_SQL};
pub use rescue::{rescue_zombies, running, RunningRun, RESCUE_SQL, RUNNING_SQL};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::jobs::Job;
use crate::db::schema::runs;
use crate::db::DbError;
use crate::jobs::plan::PlannedRun;
use crate::jobs::run_error::RunErrorKind;
use crate::jobs::run_state::RunState;

/// A stored error kind read as the type (diesel's side of `jobs::run_error`, which knows
/// nothing of diesel).
impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for RunErrorKind {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let s = <String as diesel::deserialize::FromSql<
            diesel::sql_types::Text,
            diesel::pg::Pg,
        >>::from_sql(bytes)?;
        Ok(RunErrorKind::from_stored(&s))
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = runs)]
pub struct Run {
    pub id: Uuid,
    pub job_id: Uuid,
    /// The scheduled time this run belongs to.
    pub fire_at: DateTime<Utc>,
    pub attempt: i32,
    /// `jobs::run_state` (its transitions are there).
    #[diesel(deserialize_as = String)]
    pub state: RunState,
    pub node_id: Option<Uuid>,
    pub priority: i16,
    /// The job's overlap policy when the run was created.
    pub overlap: String,
    /// How many fires this run stands for (a missed run can cover several).
    pub covers: i32,
    pub queued_at: DateTime<Utc>,
    /// Earliest start (retries wait for their delay).
    pub due_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `jobs::run_error`: why it failed, and whose trouble that was.
    pub error_kind: Option<RunErrorKind>,
    pub error_message: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// started_at − due_at, in milliseconds.
    pub lateness_ms: Option<i64>,
    /// The latest note the running program posted (`POST /api/v1/runs/{id}/progress`).
    pub progress: Option<String>,
    pub progress_at: Option<DateTime<Utc>>,
    /// When the executor started the job kind's work (after any quota gate); with
    /// `fire_at`, how late the work really began (`started_at` is when it was claimed).
    pub began_at: Option<DateTime<Utc>>,
    /// While the run waits for a person (`hand_over`): `{"for": "person", "reason", "since",
    /// "deadline", "live_id", "link"}`.
    #[schema(value_type = Option<Object>)]
    pub waiting: Option<Value>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = runs)]
pub struct NewRun {
    /// A time-ordered UUID (v7): each batch's new keys land at the right edge of the primary
    /// key's B-tree instead of on random pages.
    pub id: Uuid,
    pub job_id: Uuid,
    pub fire_at: DateTime<Utc>,
    pub attempt: i32,
    pub state: String,
    pub priority: i16,
    pub overlap: String,
    pub covers: i32,
    pub queued_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// Set when the run starts at once on this node (dispatched in the fire transaction).
    pub node_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub lateness_ms: Option<i64>,
}

impl NewRun {
    /// Turns this pending run into one running on `node` from `now`.
    pub fn start_on(&mut self, node: Uuid, now: DateTime<Utc>) {
        self.state = RunState::Running.as_str().to_string();
        self.node_id = Some(node);
        self.started_at = Some(now);
        self.heartbeat_at = Some(now);
        self.lateness_ms = Some((now - self.due_at).num_milliseconds().max(0));
    }

    pub fn planned(job: &Job, r: &PlannedRun, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            job_id: job.id,
            fire_at: r.fire_at,
            attempt: r.attempt,
            state: r.state.as_str().to_string(),
            priority: job.priority,
            overlap: job.overlap.clone(),
            covers: r.covers,
            queued_at: now,
            due_at: r.due_at,
            finished_at: r.state.is_terminal().then_some(now),
            error_kind: r.error_kind.map(str::to_string),
            error_message: r.error_message.clone(),
            node_id: None,
            started_at: None,
            heartbeat_at: None,
            lateness_ms: None,
        }
    }

    pub fn pending(
        job_id: Uuid,
        priority: i16,
        overlap: &str,
        fire_at: DateTime<Utc>,
        attempt: i32,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            job_id,
            fire_at,
            attempt,
            state: RunState::Pending.as_str().to_string(),
            priority,
            overlap: overlap.to_string(),
            covers: 1,
            queued_at: now,
            due_at,
            finished_at: None,
            error_kind: None,
            error_message: None,
            node_id: None,
            started_at: None,
            heartbeat_at: None,
            lateness_ms: None,
        }
    }
}

/// Inserts runs ($1..$17: one array per column, in [`NewRun`]'s order), skipping any whose
/// (job, fire, attempt) exists. One statement text for every batch size: PostgreSQL parses
/// and plans it once per connection, where a multi-row VALUES list with a bind parameter
/// per cell (17,000 for 1,000 runs) was parsed anew for every batch.
///
/// The skip is an anti-join, not `ON CONFLICT DO NOTHING`: a speculative insertion costs
/// every row an extra probe of the unique index and a WAL record (17 % of the insert's time,
/// measured). The unique key still guards exactly-once: every writer of a run holds what
/// decides its key (the job row's lock for a fire, the fenced run for a retry), so a
/// concurrent duplicate cannot get past the anti-join; were one to, the transaction fails
/// on the key and is tried again, never recording a second run.
pub const INSERT_SQL: &str = "INSERT INTO runs (id, job_id, fire_at, attempt, state, priority, \
       overlap, covers, queued_at, due_at, finished_at, error_kind, error_message, node_id, \
       started_at, heartbeat_at, lateness_ms) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int4[], $5::text[], \
       $6::int2[], $7::text[], $8::int4[], $9::timestamptz[], $10::timestamptz[], \
       $11::timestamptz[], $12::text[], $13::text[], $14::uuid[], $15::timestamptz[], \
       $16::timestamptz[], $17::int8[]) \
       AS n(id, job_id, fire_at, attempt, state, priority, overlap, covers, queued_at, due_at, \
         finished_at, error_kind, error_message, node_id, started_at, heartbeat_at, lateness_ms) \
     WHERE NOT EXISTS (SELECT 1 FROM runs r \
       WHERE r.job_id = n.job_id AND r.fire_at = n.fire_at AND r.attempt = n.attempt)";

/// Inserts `rows` with [`INSERT_SQL`]; returns how many were new.
pub fn insert_many(conn: &mut PgConnection, rows: &[NewRun]) -> Result<usize, DbError> {
    use diesel::sql_types::Uuid as SqlUuid;
    use diesel::sql_types::{Array, BigInt, Int2, Int4, Nullable, Text, Timestamptz};
    if rows.is_empty() {
        return Ok(0);
    }
    fn col<T: Clone>(rows: &[NewRun], f: impl Fn(&NewRun) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    Ok(diesel::sql_query(INSERT_SQL)
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.id))
        .bind::<Array<SqlUuid>, _>(col(rows, |r| r.job_id))
        .bind::<Array<Timestamptz>, _>(col(rows, |r| r.fire_at))
        .bind::<Array<Int4>, _>(col(rows, |r| r.attempt))
        .bind::<Array<Text>, _>(col(rows, |r| r.state.clone()))
        .bind::<Array<Int2>, _>(col(rows, |r| r.priority))
        .bind::<Array<Text>, _>(col(rows, |r| r.overlap.clone()))
        .bind::<Array<Int4>, _>(col(rows, |r| r.covers))
        .bind::<Array<Timestamptz>, _>(col(rows, |r| r.queued_at))
        .bind::<Array<Timestamptz>, _>(col(rows, |r| r.due_at))
        .bind::<Array<Nullable<Timestamptz>>, _>(col(rows, |r| r.finished_at))
        .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_kind.clone()))
        .bind::<Array<Nullable<Text>>, _>(col(rows, |r| r.error_message.clone()))
        .bind::<Array<Nullable<SqlUuid>>, _>(col(rows, |r| r.node_id))
        .bind::<Array<Nullable<Timestamptz>>, _>(col(rows, |r| r.started_at))
        .bind::<Array<Nullable<Timestamptz>>, _>(col(rows, |r| r.heartbeat_at))
        .bind::<Array<Nullable<BigInt>>, _>(col(rows, |r| r.lateness_ms))
        .execute(conn)?)
}

pub fn get(conn: &mut PgConnection, id: Uuid) -> Result<Run, DbError> {
    Ok(runs::table.find(id).select(Run::as_select()).first(conn)?)
}

#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub job_id: Option<Uuid>,
    pub state: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset: the runs listed after this one (its queued_at and id), newest first.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// The first run id [`list`] orders by id: UUIDv7 of 2026-12-03T00:00:00Z. Runs created
/// since have time-ordered ids, and the primary key lists them newest first; older runs
/// (random v4 ids, and the first v7 ones) keep a partial index on `(queued_at, id)`
/// (migration 000020) until the retention prunes them. No index on `(queued_at, id)` over
/// every run: it cost each run an entry at insert and another at its recorded update.
pub const LISTED_BY_ID_FROM: Uuid = Uuid::from_u128(0x01a23933_6800_7000_8000_000000000000);

/// The runs listed by `(queued_at, id)`: the partial index's predicate, to the letter (the
/// rest, [`listed_by_id`], are listed by id).
const BY_QUEUED_SQL: &str =
    "NOT (id >= '01a23933-6800-7000-8000-000000000000' AND substring(id::text, 15, 1) = '7')";

fn listed_by_id(id: Uuid) -> bool {
    id >= LISTED_BY_ID_FROM && id.get_version_num() == 7
}

/// The smallest UUIDv7 of the millisecond `t` (a bound on ids created from then on).
fn v7_floor(t: DateTime<Utc>) -> Uuid {
    let ms = t.timestamp_millis().max(0) as u128;
    Uuid::from_u128(((ms & 0xffff_ffff_ffff) << 80) | (0x7u128 << 76) | (0x8u128 << 60))
}

/// Runs newest first: those with time-ordered ids by id (the primary key), then the older
/// ones by `(queued_at, id)`. A run's id and its `queued_at` come from the same clock, so
/// the time filters also bound the id scan (with a day's slack for clocks that drift).
pub fn list(conn: &mut PgConnection, f: &RunFilter, limit: i64) -> Result<Vec<Run>, DbError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let filtered = || {
        let mut q = runs::table.select(Run::as_select()).into_boxed();
        if let Some(j) = f.job_id {
            q = q.filter(runs::job_id.eq(j));
        }
        if let Some(s) = &f.state {
            q = q.filter(runs::state.eq(s.clone()));
        }
        if let Some(t) = f.since {
            q = q.filter(runs::queued_at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(runs::queued_at.lt(t));
        }
        q
    };
    let slack = chrono::Duration::days(1);
    let mut out = Vec::new();
    let cursor_by_id = f.before.map(|(_, id)| listed_by_id(id));
    if cursor_by_id != Some(false) {
        // Bounded above, so the scan never walks the older runs' random ids above it.
        let upper = f
            .until
            .unwrap_or_else(Utc::now)
            .min(Utc::now() + chrono::Duration::days(365))
            + slack;
        let lower = f.since.map_or(LISTED_BY_ID_FROM, |t| {
            v7_floor(t - slack).max(LISTED_BY_ID_FROM)
        });
        // A plain range of the primary key, so the planner walks it backwards and stops at
        // the limit; the rare random (v4) id that falls in the range belongs to the older
        // runs and is skipped here.
        let mut after = f.before.map(|(_, id)| id);
        loop {
            let want = limit - out.len() as i64;
            let mut q = filtered()
                .filter(runs::id.ge(lower))
                .filter(runs::id.lt(v7_floor(upper)));
            if let Some(id) = after {
                q = q.filter(runs::id.lt(id));
            }
            let page: Vec<Run> = q.order(runs::id.desc()).limit(want).load(conn)?;
            let exhausted = (page.len() as i64) < want;
            after = page.last().map(|r| r.id).or(after);
            out.extend(page.into_iter().filter(|r| listed_by_id(r.id)));
            if exhausted || out.len() as i64 >= limit {
                break;
            }
        }
    }
    let left = limit - out.len() as i64;
    if left > 0 {
        let mut q = filtered().filter(sql::<Bool>(BY_QUEUED_SQL));
        if let Some((t, id)) = f.before.filter(|(_, id)| !listed_by_id(*id)) {
            q = q.filter(
                runs::queued_at
                    .lt(t)
                    .or(runs::queued_at.eq(t).and(runs::id.lt(id))),
            );
        }
        out.extend(
            q.order((runs::queued_at.desc(), runs::id.desc()))
                .limit(left)
                .load::<Run>(conn)?,
        );
    }
    Ok(out)
}

/// The earliest due time of a pending or deferred run (the scheduler sleeps until then).
pub fn next_pending_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    let pending = runs::table
        .filter(runs::state.eq("pending"))
        .select(diesel::dsl::min(runs::due_at))
        .first::<Option<DateTime<Utc>>>(conn)?;
    let deferred = runs::table
        .filter(runs::state.eq("deferred"))
        .select(diesel::dsl::min(runs::due_at))
        .first::<Option<DateTime<Utc>>>(conn)?;
    Ok(pending.into_iter().chain(deferred).min())
}

/// The cluster's backlog for the gauges: runs pending, running and deferred, how long the
/// oldest due pending run has waited (seconds), open circuits; `tests/plans.rs` EXPLAINs it
/// (each count is an index-only scan of a partial index).
pub const BACKLOG_SQL: &str = "SELECT \
       (SELECT count(*) FROM runs WHERE state = 'pending') AS pending, \
       (SELECT count(*) FROM runs WHERE state = 'running') AS running, \
       (SELECT count(*) FROM runs WHERE state = 'deferred') AS deferred, \
       (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(due_at)), 0)::float8 FROM runs \
          WHERE state = 'pending' AND due_at <= now()) AS oldest_due, \
       (SELECT count(*) FROM circuits WHERE state = 'open') AS circuits_open";

#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct Backlog {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub pending: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub running: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub deferred: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub oldest_due: f64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub circuits_open: i64,
}

pub fn backlog(conn: &mut PgConnection) -> Result<Backlog, DbError> {
    Ok(diesel::sql_query(BACKLOG_SQL).get_result(conn)?)
}

pub fn count_in_state(conn: &mut PgConnection, state: RunState) -> Result<i64, DbError> {
    Ok(runs::table
        .filter(runs::state.eq(state.as_str()))
        .count()
        .get_result(conn)?)
}

/// A running run waits for a person (`Some`: since the database's now), or no longer does
/// (`None`: the wait is added to `waited_ms`). False when the run is no longer running.
pub fn set_waiting(
    conn: &mut PgConnection,
    run_id: Uuid,
    waiting: Option<&Value>,
) -> Result<bool, DbError> {
    use diesel::sql_types::{Jsonb, Nullable, Uuid as SqlUuid};
    let n = diesel::sql_query(
        "UPDATE runs SET \
             waited_ms = waited_ms + CASE WHEN $2::jsonb IS NULL AND waiting ? 'since' THEN \
                 greatest(0, (extract(epoch FROM now() - (waiting->>'since')::timestamptz) * 1000)::bigint) \
                 ELSE 0 END, \
             waiting = CASE WHEN $2::jsonb IS NULL THEN NULL \
                 ELSE $2::jsonb || jsonb_build_object('since', now()) END \
         WHERE id = $1 AND state = 'running'",
    )
    .bind::<SqlUuid, _>(run_id)
    .bind::<Nullable<Jsonb>, _>(waiting)
    .execute(conn)?;
    Ok(n == 1)
}

/// A running run waits for a person: its row says so and its notices are queued, in one
/// transaction. False (nothing written) when the run is no longer running.
pub fn wait_for_person(
    conn: &mut PgConnection,
    run_id: Uuid,
    waiting: &Value,
    notices: &[crate::notify::OutboxRow],
) -> Result<bool, DbError> {
    conn.transaction(|c| {
        let running = set_waiting(c, run_id, Some(waiting))?;
        if running {
            crate::db::notifications::enqueue(c, notices)?;
        }
        Ok(running)
    })
}

/// Records a running run's progress note (and counts as a heartbeat). False when the run is
/// not running.
pub fn progress(
    conn: &mut PgConnection,
    run_id: Uuid,
    note: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE runs SET progress = $2, progress_at = $3, heartbeat_at = $3 \
         WHERE id = $1 AND state = 'running'",
    )
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .bind::<diesel::sql_types::Text, _>(note)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .execute(conn)?;
    Ok(n == 1)
}

/// Runs that finished in one time bucket.
#[derive(Debug, Clone, diesel::QueryableByName, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub finished: i64,
    /// failed, timed out or zombie
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub failed: i64,
}

/// Runs finished per minute or hour ($1 since, $2 hourly); `tests/plans.rs` EXPLAINs it.
pub const ACTIVITY_SQL: &str =
    "SELECT date_trunc(CASE WHEN $2 THEN 'hour' ELSE 'minute' END, finished_at) AS at, \
                count(*) AS finished, \
                count(*) FILTER (WHERE state IN ('failed', 'timed_out', 'zombie')) AS failed \
         FROM runs WHERE finished_at IS NOT NULL AND finished_at >= $1 GROUP BY 1 ORDER BY 1";

/// Runs finished since `since`, per `minute` or `hour` (buckets without runs are absent).
pub fn activity(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    hourly: bool,
) -> Result<Vec<Bucket>, DbError> {
    Ok(diesel::sql_query(ACTIVITY_SQL)
        .bind::<diesel::sql_types::Timestamptz, _>(since)
        .bind::<diesel::sql_types::Bool, _>(hourly)
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_split_is_one_boundary_in_code_and_sql() {
        // The partial index (migration 000020) and BY_QUEUED_SQL name the same first id.
        assert!(BY_QUEUED_SQL.contains(&LISTED_BY_ID_FROM.to_string()));
        let up = include_str!("../../../migrations/2026-12-03-000020_runs_listed_by_id/up.sql");
        assert!(
            up.contains(BY_QUEUED_SQL),
            "the index predicate is the listing's, to the letter"
        );
        assert_eq!(LISTED_BY_ID_FROM.get_version_num(), 7);
        let from = chrono::DateTime::parse_from_rfc3339("2026-12-03T00:00:00Z").unwrap();
        assert_eq!(v7_floor(from.with_timezone(&Utc)), LISTED_BY_ID_FROM);
    }

    #[test]
    fn time_ordered_ids_are_listed_by_id_and_random_ones_are_not() {
        assert!(listed_by_id(Uuid::now_v7()));
        assert!(!listed_by_id(Uuid::new_v4()));
        let early = Uuid::from_u128(0x019a_0000_0000_7000_8000_0000_0000_0001);
        assert!(!listed_by_id(early), "a v7 id before the boundary");
        let t = Utc::now();
        assert!(v7_floor(t) <= Uuid::now_v7());
        assert!(v7_floor(t + chrono::Duration::days(1)) > Uuid::now_v7());
    }
}
