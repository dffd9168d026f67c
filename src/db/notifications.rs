//! The `notifications` outbox: rows written beside the state changes that caused them, claimed
//! by notifiers with `FOR UPDATE SKIP LOCKED` (each row by one node at a time), recorded as
//! sent, retried with backoff, or failed.
//!
//! A claim moves `next_attempt_at` to the claim's expiry and counts the attempt: a node that
//! dies mid-delivery leaves the row pending, and it is claimed again after the expiry (so a
//! delivery can repeat, always with the same id: at-least-once, deduplicable).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::schema::notifications;
use super::DbError;
use crate::notify::channel::Outgoing;
use crate::notify::OutboxRow;

/// Writes outbox rows (normally inside the caller's transaction). A row whose dedupe key
/// exists already is dropped. Returns how many rows are new.
pub fn enqueue(conn: &mut PgConnection, rows: &[OutboxRow]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for chunk in rows.chunks(1000) {
        let col = |f: fn(&OutboxRow) -> String| chunk.iter().map(f).collect::<Vec<String>>();
        let data: Vec<Value> = chunk.iter().map(|r| r.data.clone()).collect();
        n += diesel::sql_query(
            "INSERT INTO notifications (event, severity, subject, body, data, channel, dedupe_key) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], \
                                  $6::text[], $7::text[]) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind::<Array<Text>, _>(col(|r| r.event.clone()))
        .bind::<Array<Text>, _>(col(|r| r.severity.to_string()))
        .bind::<Array<Text>, _>(col(|r| r.subject.clone()))
        .bind::<Array<Text>, _>(col(|r| r.body.clone()))
        .bind::<Array<Jsonb>, _>(data)
        .bind::<Array<Text>, _>(col(|r| r.channel.clone()))
        .bind::<Array<Text>, _>(col(|r| r.dedupe_key.clone()))
        .execute(conn)?;
    }
    Ok(n)
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    event: String,
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = Jsonb)]
    data: Value,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// Claims due pending notifications ($1 limit, $2 claim ms); `tests/plans.rs` EXPLAINs it.
pub const CLAIM_SQL: &str = "UPDATE notifications n \
         SET attempts = n.attempts + 1, \
             next_attempt_at = now() + make_interval(secs => $2::float8 / 1000) \
         WHERE n.id = ANY(ARRAY( \
               SELECT id FROM notifications \
               WHERE state = 'pending' AND next_attempt_at <= now() \
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)) \
         RETURNING n.id, n.event, n.severity, n.subject, n.body, n.data, n.channel, n.attempts, \
                   n.created_at";

/// Claims up to `limit` due pending notifications for `claim_ms` (oldest due first).
pub fn claim(conn: &mut PgConnection, limit: i64, claim_ms: i64) -> Result<Vec<Outgoing>, DbError> {
    let rows: Vec<ClaimedRow> = diesel::sql_query(CLAIM_SQL)
        .bind::<Int8, _>(limit)
        .bind::<Int8, _>(claim_ms)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Outgoing {
            id: r.id,
            event: r.event,
            severity: r.severity,
            subject: r.subject,
            body: r.body,
            data: r.data,
            channel: r.channel,
            attempts: r.attempts,
            created_at: r.created_at,
        })
        .collect())
}

/// What became of one claimed notification.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent,
    /// Another attempt at this time, with the error that made it necessary.
    Retry(DateTime<Utc>, String),
    Failed(String),
}

/// Records delivery outcomes ($1 ids, $2 states, $3 next attempts, $4 errors, $5 now); `tests/plans.rs` EXPLAINs it.
pub const RECORD_SQL: &str =
    "UPDATE notifications n SET state = v.state, next_attempt_at = v.next, \
                last_error = COALESCE(v.err, n.last_error), \
                sent_at = CASE WHEN v.state = 'sent' THEN $5 ELSE n.sent_at END \
         FROM unnest($1, $2, $3, $4) AS v(id, state, next, err) \
         WHERE n.id = v.id AND n.state = 'pending'";

/// Records a batch of delivery outcomes in one statement.
pub fn record(
    conn: &mut PgConnection,
    outcomes: &[(Uuid, Outcome)],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.0).collect();
    let states: Vec<&str> = outcomes
        .iter()
        .map(|o| match o.1 {
            Outcome::Sent => "sent",
            Outcome::Retry(..) => "pending",
            Outcome::Failed(_) => "failed",
        })
        .collect();
    let next: Vec<DateTime<Utc>> = outcomes
        .iter()
        .map(|o| match &o.1 {
            Outcome::Retry(at, _) => *at,
            _ => now,
        })
        .collect();
    let errors: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| match &o.1 {
            Outcome::Sent => None,
            Outcome::Retry(_, e) | Outcome::Failed(e) => Some(e.as_str()),
        })
        .collect();
    diesel::sql_query(RECORD_SQL)
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Text>, _>(&states)
        .bind::<Array<Timestamptz>, _>(&next)
        .bind::<Array<Nullable<Text>>, _>(&errors)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
    Ok(())
}

/// A notification as the API shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = notifications)]
pub struct Notification {
    pub id: Uuid,
    pub event: String,
    pub severity: String,
    pub subject: String,
    pub body: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub channel: String,
    pub dedupe_key: String,
    /// pending, sent or failed
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub state: Option<String>,
    pub event: Option<String>,
    pub channel: Option<String>,
    /// Keyset: strictly older than this (created_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// Newest first.
pub fn list(conn: &mut PgConnection, f: &Filter, limit: i64) -> Result<Vec<Notification>, DbError> {
    let mut q = notifications::table
        .select(Notification::as_select())
        .into_boxed();
    if let Some(s) = &f.state {
        q = q.filter(notifications::state.eq(s.clone()));
    }
    if let Some(e) = &f.event {
        q = q.filter(notifications::event.eq(e.clone()));
    }
    if let Some(c) = &f.channel {
        q = q.filter(notifications::channel.eq(c.clone()));
    }
    if let Some((t, id)) = f.before {
        q = q.filter(
            notifications::created_at.lt(t).or(notifications::created_at
                .eq(t)
                .and(notifications::id.lt(id))),
        );
    }
    Ok(
        q.order((notifications::created_at.desc(), notifications::id.desc()))
            .limit(limit)
            .load(conn)?,
    )
}

/// One batch of the outbox's pruning ($1 cutoff, $2 batch); `tests/plans.rs` EXPLAINs it.
pub const PRUNE_SQL: &str = "DELETE FROM notifications WHERE id = ANY(ARRAY( \
           SELECT id FROM notifications WHERE created_at < $1 AND state <> 'pending' \
           ORDER BY created_at LIMIT $2))";

/// Deletes up to `batch` sent or failed notifications created before `cutoff`.
pub fn prune_batch(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(PRUNE_SQL)
        .bind::<Timestamptz, _>(cutoff)
        .bind::<Int8, _>(batch)
        .execute(conn)?)
}

/// Pending notifications (for the backlog gauge).
pub fn pending_count(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(notifications::table
        .filter(notifications::state.eq("pending"))
        .count()
        .get_result(conn)?)
}

/// Sends a failed notification again: pending now, with its attempts counted afresh. None
/// when there is no such notification; `Err(state)` when it has not failed.
pub fn resend(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Result<Notification, String>>, DbError> {
    conn.transaction(|c| {
        let found: Option<Notification> = notifications::table
            .find(id)
            .select(Notification::as_select())
            .for_update()
            .first(c)
            .optional()?;
        let Some(n) = found else {
            return Ok(None);
        };
        if n.state != "failed" {
            return Ok(Some(Err(n.state)));
        }
        let n = diesel::update(notifications::table.find(id))
            .set((
                notifications::state.eq("pending"),
                notifications::attempts.eq(0),
                notifications::next_attempt_at.eq(now),
                notifications::last_error.eq(None::<String>),
            ))
            .returning(Notification::as_returning())
            .get_result(c)?;
        Ok(Some(Ok(n)))
    })
}
