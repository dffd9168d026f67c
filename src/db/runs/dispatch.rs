//! Claims (pending → running), the hand-off of claimed runs to an executor and their
//! hand-back, run heartbeats, deferred runs coming due.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int2, Int4, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::runs;
use crate::db::DbError;

/// A run handed to an executor, with what it needs from its job.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub job_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub fire_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = Int2)]
    pub priority: i16,
    #[diesel(sql_type = Text)]
    pub job_name: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = Jsonb)]
    pub policy: Value,
    #[diesel(sql_type = Jsonb)]
    pub metadata: Value,
    /// The job's quotas (`[{name, cost, refund_on_failure}]`).
    #[diesel(sql_type = Jsonb)]
    pub quota: Value,
    #[diesel(sql_type = BigInt)]
    pub lateness_ms: i64,
    /// The timezone of the job's schedule, if it has one (a script's `today`).
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub timezone: Option<String>,
}

/// Runs committed as `running` on this node and not yet taken by an executor: the owner of
/// a `Handoff` either gives its runs to an executor ([`Handoff::take`]) or, by dropping it
/// — an error after the commit, a dead executor's mailbox, a cancelled tick — hands them
/// back: pending again with the same attempt, for any node to claim. So a run that changes
/// hands between a committed transaction and an actor cannot be dropped on an error path.
///
/// The hand-back runs on its own thread with a blocking connection (a drop may happen on an
/// event loop, on the blocking pool or while a runtime shuts down), retrying while the
/// database is unreachable. If the process dies first, the zombie detector rescues them.
pub struct Handoff {
    runs: Vec<Claimed>,
    back: Option<(crate::db::Db, Uuid)>,
}

impl Handoff {
    pub fn new(db: &crate::db::Db, node: Uuid, runs: Vec<Claimed>) -> Self {
        Self {
            runs,
            back: Some((db.clone(), node)),
        }
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Claimed> {
        self.runs.iter()
    }

    /// Adds another hand-off's runs to this one (same node).
    pub fn absorb(&mut self, mut other: Handoff) {
        self.runs.append(&mut other.runs);
    }

    /// The runs, now the caller's to execute.
    pub fn take(mut self) -> Vec<Claimed> {
        self.back = None;
        std::mem::take(&mut self.runs)
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("runs", &self.runs.len())
            .finish()
    }
}

/// Retry pause of a hand-back while the database is unreachable (doubles up to the cap).
const HAND_BACK_RETRY: std::time::Duration = std::time::Duration::from_millis(200);
const HAND_BACK_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Handoff {
    fn drop(&mut self) {
        let Some((db, node)) = self.back.take() else {
            return;
        };
        if self.runs.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.runs.iter().map(|r| r.id).collect();
        hand_backs_changed(1);
        let spawned = std::thread::Builder::new()
            .name("overseer-hand-back".into())
            .spawn(move || {
                let _done = HandBackDone;
                let mut tries = 0;
                loop {
                    match db.get_blocking().and_then(|mut c| hand_back(&mut c, node, &ids)) {
                        Ok(n) => {
                            metrics::counter!(crate::telemetry::names::RUNS_HANDED_BACK)
                                .increment(n as u64);
                            tracing::warn!(
                                runs = ids.len(),
                                handed_back = n,
                                "runs claimed for this node were not taken by an executor; handed back"
                            );
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(runs = ids.len(), error = %e, "handing back claimed runs failed; retrying");
                            std::thread::sleep(crate::stdx::backoff::exponential(
                                HAND_BACK_RETRY,
                                HAND_BACK_RETRY_MAX,
                                tries,
                            ));
                            tries += 1;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            hand_backs_changed(-1);
            tracing::error!(error = %e, "could not start the hand-back of claimed runs; the zombie detector will rescue them");
        }
    }
}

/// Hand-backs still in progress in this process (shutdown waits for them).
static HAND_BACKS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

fn hand_backs_changed(delta: isize) {
    let mut n = HAND_BACKS.0.lock().unwrap_or_else(|p| p.into_inner());
    *n = n.saturating_add_signed(delta);
    HAND_BACKS.1.notify_all();
}

struct HandBackDone;

impl Drop for HandBackDone {
    fn drop(&mut self) {
        hand_backs_changed(-1);
    }
}

/// Blocks until every hand-back started in this process is done, at most `timeout`;
/// returns how many are still going (shutdown: after the actors stopped, before exit).
pub fn wait_for_hand_backs(timeout: std::time::Duration) -> usize {
    let guard = HAND_BACKS.0.lock().unwrap_or_else(|p| p.into_inner());
    let (n, _) = HAND_BACKS
        .1
        .wait_timeout_while(guard, timeout, |n| *n > 0)
        .unwrap_or_else(|p| p.into_inner());
    *n
}

/// Gives runs this node holds back to waiting (pending, same attempt, due now): only those
/// still `running` on `node`. Returns how many went back.
pub fn hand_back(conn: &mut PgConnection, node: Uuid, ids: &[Uuid]) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(
        runs::table
            .filter(runs::id.eq_any(ids))
            .filter(runs::state.eq("running"))
            .filter(runs::node_id.eq(node)),
    )
    .set((
        runs::state.eq("pending"),
        runs::node_id.eq(None::<Uuid>),
        runs::started_at.eq(None::<DateTime<Utc>>),
        runs::heartbeat_at.eq(None::<DateTime<Utc>>),
        runs::lateness_ms.eq(None::<i64>),
    ))
    .execute(conn)?)
}

/// The runs `running` on `node` (an executor's start-up: those of a previous incarnation).
pub fn running_on(conn: &mut PgConnection, node: Uuid) -> Result<Vec<Uuid>, DbError> {
    Ok(runs::table
        .filter(runs::state.eq("running"))
        .filter(runs::node_id.eq(node))
        .select(runs::id)
        .load(conn)?)
}

/// The claim statement ($1 node, $2 now, $3 limit); `tests/plans.rs` EXPLAINs it.
pub const CLAIM_SQL: &str = "WITH picked AS ( \
           SELECT r.id FROM runs r \
           WHERE r.state = 'pending' AND r.due_at <= $2 \
             AND (r.overlap <> 'queue' OR ( \
                   NOT EXISTS (SELECT 1 FROM runs x WHERE x.job_id = r.job_id AND x.state = 'running') \
                   AND r.id = (SELECT y.id FROM runs y WHERE y.job_id = r.job_id AND y.state = 'pending' \
                               ORDER BY y.due_at, y.fire_at, y.attempt LIMIT 1))) \
           ORDER BY r.priority DESC, r.due_at \
           LIMIT $3 \
           FOR UPDATE SKIP LOCKED \
         ), claimed AS ( \
           UPDATE runs SET state = 'running', node_id = $1, started_at = $2, heartbeat_at = $2, \
                  lateness_ms = GREATEST(0, (EXTRACT(EPOCH FROM ($2 - runs.due_at)) * 1000)::bigint) \
           FROM picked WHERE runs.id = picked.id \
           RETURNING runs.id, runs.job_id, runs.fire_at, runs.attempt, runs.priority, runs.lateness_ms \
         ) \
         SELECT c.id, c.job_id, c.fire_at, c.attempt, c.priority, c.lateness_ms, \
                j.name AS job_name, j.kind, j.payload, j.policy, j.metadata, j.quota, \
                j.schedule->>'timezone' AS timezone \
         FROM claimed c JOIN jobs j ON j.id = c.job_id";

/// Claims up to `limit` due pending runs for `node` (pending → running), highest priority
/// first. Safe with many processes: rows another transaction holds are skipped. A `queue`
/// job's run waits while another run of the job is running, and only its oldest pending run
/// is eligible (so one claim never starts two of them).
pub fn claim(
    conn: &mut PgConnection,
    node: Uuid,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, DbError> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(CLAIM_SQL)
        .bind::<SqlUuid, _>(node)
        .bind::<Timestamptz, _>(now)
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// Refreshes `heartbeat_at` of this node's in-flight runs; returns those still running
/// here (any other was cancelled, or rescued by the zombie detector).
pub fn heartbeat(
    conn: &mut PgConnection,
    node: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::update(
        runs::table
            .filter(runs::id.eq_any(ids))
            .filter(runs::state.eq("running"))
            .filter(runs::node_id.eq(node)),
    )
    .set(runs::heartbeat_at.eq(now))
    .returning(runs::id)
    .get_results(conn)?)
}

/// Deferred runs whose time has come wait again like any pending run (deferred → pending).
pub fn promote_deferred(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::update(
        runs::table
            .filter(runs::state.eq("deferred"))
            .filter(runs::due_at.le(now)),
    )
    .set(runs::state.eq("pending"))
    .execute(conn)?)
}
