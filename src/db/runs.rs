//! The `runs` table: the execution history. Claims (pending → running) and completions
//! (running → terminal) are single set-based statements; completions are **fenced**: only
//! the node that holds the run, while it is still `running`, can record its result.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::jobs::Job;
use super::schema::runs;
use super::{notifications, DbError};
use crate::jobs::plan::PlannedRun;
use crate::jobs::policy::{Policy, PolicyDefaults};
use crate::jobs::run_state::RunState;
use crate::notify::Routing;
use crate::telemetry::events::{Event, Occurrence};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema, QueryableByName)]
#[diesel(table_name = runs)]
pub struct Run {
    pub id: Uuid,
    pub job_id: Uuid,
    /// The scheduled time this run belongs to.
    pub fire_at: DateTime<Utc>,
    pub attempt: i32,
    pub state: String,
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
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// started_at − due_at, in milliseconds.
    pub lateness_ms: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = runs)]
pub struct NewRun {
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
            id: Uuid::new_v4(),
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
            id: Uuid::new_v4(),
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
    back: Option<(super::Db, Uuid)>,
}

impl Handoff {
    pub fn new(db: &super::Db, node: Uuid, runs: Vec<Claimed>) -> Self {
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
    Ok(diesel::sql_query(
        "WITH picked AS ( \
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
                j.name AS job_name, j.kind, j.payload, j.policy, j.metadata, j.quota \
         FROM claimed c JOIN jobs j ON j.id = c.job_id",
    )
    .bind::<SqlUuid, _>(node)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// The result of one execution, reported by the executor.
#[derive(Debug, Clone)]
pub struct Completion {
    pub run_id: Uuid,
    pub state: RunState,
    /// With `RunState::Deferred`: when the run is due again (it returns to waiting).
    pub defer_until: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

/// Writes the routed events of a batch to the outbox, in the caller's transaction.
fn enqueue_events(
    conn: &mut PgConnection,
    routing: &Routing,
    events: &[Occurrence],
) -> Result<(), DbError> {
    let rows = routing.rows(events.iter().map(|o| (o.event.clone(), o.identity.clone())));
    notifications::enqueue(conn, &rows)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    job_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    fire_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    attempt: i32,
    #[diesel(sql_type = Int2)]
    priority: i16,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    job_name: String,
    #[diesel(sql_type = Jsonb)]
    policy: Value,
}

/// Records a batch of results in one transaction: a fenced update of every run, then the
/// next attempt of each failed run that has a retry left.
pub fn complete(
    conn: &mut PgConnection,
    node: Uuid,
    results: &[Completion],
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    routing: &Routing,
) -> Result<Vec<Occurrence>, DbError> {
    if results.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = results.iter().map(|r| r.run_id).collect();
    let states: Vec<String> = results
        .iter()
        .map(|r| r.state.as_str().to_string())
        .collect();
    let outputs: Vec<Option<Value>> = results.iter().map(|r| r.output.clone()).collect();
    let kinds: Vec<Option<String>> = results.iter().map(|r| r.error_kind.clone()).collect();
    let messages: Vec<Option<String>> = results.iter().map(|r| r.error_message.clone()).collect();
    let defers: Vec<Option<DateTime<Utc>>> = results.iter().map(|r| r.defer_until).collect();
    conn.transaction::<_, DbError, _>(|conn| {
        // A deferred run goes back to waiting: no node, not started, due again later.
        let recorded: Vec<Recorded> = diesel::sql_query(
            "WITH v AS (SELECT * FROM unnest($1, $2, $3, $4, $5, $8) AS v(id, state, output, ek, em, defer)), \
             done AS ( \
               UPDATE runs SET state = v.state, output = v.output, \
                      error_kind = v.ek, error_message = v.em, \
                      finished_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE $6 END, \
                      due_at = COALESCE(v.defer, runs.due_at), \
                      node_id = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.node_id END, \
                      started_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.started_at END, \
                      heartbeat_at = CASE WHEN v.state = 'deferred' THEN NULL ELSE runs.heartbeat_at END \
               FROM v WHERE runs.id = v.id AND runs.state = 'running' AND runs.node_id = $7 \
               RETURNING runs.id, runs.job_id, runs.fire_at, runs.attempt, runs.priority, runs.state) \
             SELECT done.*, j.name AS job_name, j.policy FROM done JOIN jobs j ON j.id = done.job_id",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Text>, _>(&states)
        .bind::<Array<Nullable<Jsonb>>, _>(&outputs)
        .bind::<Array<Nullable<Text>>, _>(&kinds)
        .bind::<Array<Nullable<Text>>, _>(&messages)
        .bind::<Timestamptz, _>(now)
        .bind::<SqlUuid, _>(node)
        .bind::<Array<Nullable<Timestamptz>>, _>(&defers)
        .load(conn)?;

        let mut events = Vec::with_capacity(results.len());
        let mut retries = Vec::new();
        for r in &recorded {
            if r.state == RunState::Deferred.as_str() {
                let result = results.iter().find(|c| c.run_id == r.id);
                events.push(Occurrence::new(
                    r.id,
                    Event::RunDeferred {
                        job: r.job_name.clone(),
                        run_id: r.id,
                        reason: result.and_then(|c| c.error_message.clone()).unwrap_or_default(),
                        until: result.and_then(|c| c.defer_until).unwrap_or(now),
                    },
                ));
                continue;
            }
            if r.state == RunState::Succeeded.as_str() {
                events.push(Occurrence::new(
                    r.id,
                    Event::JobExecuted {
                        job: r.job_name.clone(),
                        run_id: r.id,
                        attempt: r.attempt,
                    },
                ));
                continue;
            }
            let result = results.iter().find(|c| c.run_id == r.id);
            events.push(Occurrence::new(
                r.id,
                Event::JobError {
                    job: r.job_name.clone(),
                    run_id: r.id,
                    attempt: r.attempt,
                    kind: result.and_then(|c| c.error_kind.clone()).unwrap_or_default(),
                    message: result.and_then(|c| c.error_message.clone()).unwrap_or_default(),
                },
            ));
            retry_or_fail(r, now, defaults, &mut retries, &mut events);
        }
        for id in &ids {
            if !recorded.iter().any(|r| r.id == *id) {
                events.push(Occurrence::new(id, Event::RunRefused { run_id: *id }));
            }
        }
        insert_retries(conn, &retries)?;
        enqueue_events(conn, routing, &events)?;
        Ok(events)
    })
}

/// The retry policy after a failed attempt (error, timeout, zombie): the next attempt of the
/// same fire after its delay, or the dead letter and `job.failed`.
fn retry_or_fail(
    r: &Recorded,
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    retries: &mut Vec<NewRun>,
    events: &mut Vec<Occurrence>,
) {
    let policy = Policy::from_stored(&r.policy, defaults);
    match policy.next_attempt_after(r.attempt as u32) {
        Some(delay) => {
            let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
            retries.push(NewRun::pending(
                r.job_id,
                r.priority,
                policy.overlap.as_str(),
                r.fire_at,
                r.attempt + 1,
                now + delay,
                now,
            ));
            events.push(Occurrence::new(
                r.id,
                Event::JobRetryScheduled {
                    job: r.job_name.clone(),
                    run_id: r.id,
                    next_attempt: r.attempt + 1,
                    delay_ms: delay.num_milliseconds(),
                },
            ));
        }
        None => events.push(Occurrence::new(
            r.id,
            Event::JobFailed {
                job: r.job_name.clone(),
                reason: "retries exhausted".to_string(),
            },
        )),
    }
}

fn insert_retries(conn: &mut PgConnection, retries: &[NewRun]) -> Result<(), DbError> {
    if !retries.is_empty() {
        diesel::insert_into(runs::table)
            .values(retries)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(())
}

/// A running run, with what the zombie detector judges it by (times from the database's
/// clock, so node clocks do not matter).
#[derive(Debug, Clone, QueryableByName)]
pub struct RunningRun {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub node_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Jsonb)]
    pub policy: Value,
    /// None when the node row is gone.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub node_last_seen: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub node_stopped_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub db_now: DateTime<Utc>,
}

/// Every running run (uses the partial index on running runs).
pub fn running(conn: &mut PgConnection) -> Result<Vec<RunningRun>, DbError> {
    Ok(diesel::sql_query(
        "SELECT r.id, r.node_id, r.started_at, r.heartbeat_at, j.policy, \
                n.last_seen AS node_last_seen, n.stopped_at AS node_stopped_at, now() AS db_now \
         FROM runs r JOIN jobs j ON j.id = r.job_id LEFT JOIN nodes n ON n.id = r.node_id \
         WHERE r.state = 'running'",
    )
    .load(conn)?)
}

/// Marks runs as zombies (only those still `running`: a result recorded meanwhile wins) and
/// applies the retry policy to each, in one transaction. Returns the rescued runs' events.
pub fn rescue_zombies(
    conn: &mut PgConnection,
    zombies: &[(Uuid, &'static str)],
    now: DateTime<Utc>,
    defaults: &PolicyDefaults,
    routing: &Routing,
) -> Result<Vec<Occurrence>, DbError> {
    if zombies.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = zombies.iter().map(|z| z.0).collect();
    let reasons: Vec<String> = zombies.iter().map(|z| z.1.to_string()).collect();
    conn.transaction::<_, DbError, _>(|conn| {
        let recorded: Vec<Recorded> = diesel::sql_query(
            "WITH v AS (SELECT * FROM unnest($1, $2) AS v(id, reason)), \
             done AS ( \
               UPDATE runs SET state = 'zombie', finished_at = $3, error_kind = v.reason, \
                      error_message = 'rescued by the zombie detector: ' || v.reason \
               FROM v WHERE runs.id = v.id AND runs.state = 'running' \
               RETURNING runs.id, runs.job_id, runs.fire_at, runs.attempt, runs.priority, runs.state) \
             SELECT done.*, j.name AS job_name, j.policy FROM done JOIN jobs j ON j.id = done.job_id",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Text>, _>(&reasons)
        .bind::<Timestamptz, _>(now)
        .load(conn)?;
        let mut events = Vec::new();
        let mut retries = Vec::new();
        for r in &recorded {
            let reason = zombies
                .iter()
                .find(|z| z.0 == r.id)
                .map(|z| z.1)
                .unwrap_or("unknown");
            events.push(Occurrence::new(
                r.id,
                Event::RunZombie {
                    job: r.job_name.clone(),
                    run_id: r.id,
                    attempt: r.attempt,
                    reason: reason.to_string(),
                },
            ));
            retry_or_fail(r, now, defaults, &mut retries, &mut events);
        }
        insert_retries(conn, &retries)?;
        enqueue_events(conn, routing, &events)?;
        Ok(events)
    })
}

/// Refreshes `heartbeat_at` of this node's in-flight runs.
pub fn heartbeat(
    conn: &mut PgConnection,
    node: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(
        runs::table
            .filter(runs::id.eq_any(ids))
            .filter(runs::state.eq("running"))
            .filter(runs::node_id.eq(node)),
    )
    .set(runs::heartbeat_at.eq(now))
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
    /// Keyset: runs strictly before (queued_at, id), newest first.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

pub fn list(conn: &mut PgConnection, f: &RunFilter, limit: i64) -> Result<Vec<Run>, DbError> {
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
    if let Some((t, id)) = f.before {
        q = q.filter(
            runs::queued_at
                .lt(t)
                .or(runs::queued_at.eq(t).and(runs::id.lt(id))),
        );
    }
    Ok(q.order((runs::queued_at.desc(), runs::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// A run now (`trigger`): a fire at `now`, attempt 1.
pub fn trigger(conn: &mut PgConnection, job: &Job, now: DateTime<Utc>) -> Result<Run, DbError> {
    let new = NewRun::pending(job.id, job.priority, &job.overlap, now, 1, now, now);
    Ok(diesel::insert_into(runs::table)
        .values(&new)
        .returning(Run::as_returning())
        .get_result(conn)?)
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error("only a failed or timed-out run can be requeued (this one is {0})")]
    NotDead(String),
    #[error("a newer attempt of this fire exists (attempt {0})")]
    Superseded(i32),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RequeueError {
    fn from(e: diesel::result::Error) -> Self {
        RequeueError::Db(e.into())
    }
}

/// Requeues a dead letter: a new attempt of the same fire, due now.
pub fn requeue(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<Run, RequeueError> {
    conn.transaction::<_, RequeueError, _>(|conn| {
        let run: Run = runs::table
            .find(id)
            .select(Run::as_select())
            .for_update()
            .first(conn)
            .map_err(DbError::from)?;
        if !["failed", "timed_out", "zombie", "missed"].contains(&run.state.as_str()) {
            return Err(RequeueError::NotDead(run.state));
        }
        let latest: i32 = runs::table
            .filter(runs::job_id.eq(run.job_id))
            .filter(runs::fire_at.eq(run.fire_at))
            .select(diesel::dsl::max(runs::attempt))
            .first::<Option<i32>>(conn)
            .map_err(DbError::from)?
            .unwrap_or(run.attempt);
        if latest != run.attempt {
            return Err(RequeueError::Superseded(latest));
        }
        let new = NewRun::pending(
            run.job_id,
            run.priority,
            &run.overlap,
            run.fire_at,
            run.attempt + 1,
            now,
            now,
        );
        Ok(diesel::insert_into(runs::table)
            .values(&new)
            .returning(Run::as_returning())
            .get_result(conn)
            .map_err(DbError::from)?)
    })
}

/// Cancels a job's pending and deferred runs (the job was cancelled).
pub fn cancel_pending(
    conn: &mut PgConnection,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        runs::table
            .filter(runs::job_id.eq(job_id))
            .filter(runs::state.eq_any(["pending", "deferred"])),
    )
    .set((
        runs::state.eq("cancelled"),
        runs::finished_at.eq(now),
        runs::error_kind.eq("job_cancelled"),
    ))
    .execute(conn)?)
}

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

/// Deletes terminal runs older than their retention, `batch` rows at a time; returns the
/// number deleted.
pub fn prune(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    retention: chrono::Duration,
    failed_retention: chrono::Duration,
    batch: i64,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "DELETE FROM runs WHERE id IN ( \
           SELECT id FROM runs WHERE \
             (state IN ('succeeded', 'missed', 'cancelled') AND finished_at < $1) \
             OR (state IN ('failed', 'timed_out', 'zombie') AND finished_at < $2) \
           LIMIT $3)",
    )
    .bind::<Timestamptz, _>(now - retention)
    .bind::<Timestamptz, _>(now - failed_retention)
    .bind::<BigInt, _>(batch)
    .execute(conn)?)
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

pub fn count_in_state(conn: &mut PgConnection, state: RunState) -> Result<i64, DbError> {
    Ok(runs::table
        .filter(runs::state.eq(state.as_str()))
        .count()
        .get_result(conn)?)
}
