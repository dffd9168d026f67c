//! The audit log: who changed what through the API. A successful change writes its row in
//! the change's own transaction ([`record`] on the same connection); a refused or failed
//! attempt writes one by itself after the answer (`api::audit`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::DbError;

/// One row to write. `diff` is already redacted (`api::audit` builds it).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub run_id: Option<Uuid>,
    pub action: String,
    pub target: Option<String>,
    /// `ok`, `refused` (4xx) or `failed` (5xx).
    pub outcome: &'static str,
    pub status: i16,
    pub reason: Option<String>,
    pub diff: Option<Value>,
    pub request_id: Option<String>,
    pub source: Option<String>,
    pub node_id: Option<Uuid>,
}

const INSERT_SQL: &str = "INSERT INTO audit_log \
     (at, actor, role, run_id, action, target, outcome, status, reason, diff, request_id, source, node_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Writes `entry` on `conn` (inside the caller's transaction, when it has one).
pub fn record(conn: &mut PgConnection, entry: &Entry) -> Result<(), DbError> {
    diesel::sql_query(INSERT_SQL)
        .bind::<Timestamptz, _>(entry.at)
        .bind::<Nullable<Text>, _>(entry.actor.as_deref())
        .bind::<Nullable<Text>, _>(entry.role.as_deref())
        .bind::<Nullable<SqlUuid>, _>(entry.run_id)
        .bind::<Text, _>(&entry.action)
        .bind::<Nullable<Text>, _>(entry.target.as_deref())
        .bind::<Text, _>(entry.outcome)
        .bind::<SmallInt, _>(entry.status)
        .bind::<Nullable<Text>, _>(entry.reason.as_deref())
        .bind::<Nullable<Jsonb>, _>(entry.diff.as_ref())
        .bind::<Nullable<Text>, _>(entry.request_id.as_deref())
        .bind::<Nullable<Text>, _>(entry.source.as_deref())
        .bind::<Nullable<SqlUuid>, _>(entry.node_id)
        .execute(conn)?;
    Ok(())
}

/// Writes every entry in one statement (a quota batch's consume calls).
pub fn record_many(conn: &mut PgConnection, entries: &[Entry]) -> Result<(), DbError> {
    use diesel::sql_types::Array;
    match entries {
        [] => return Ok(()),
        [one] => return record(conn, one),
        _ => {}
    }
    let col = |f: fn(&Entry) -> Option<String>| entries.iter().map(f).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO audit_log \
         (at, actor, role, run_id, action, target, outcome, status, reason, diff, request_id, source, node_id) \
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[], \
             $6::text[], $7::text[], $8::smallint[], $9::text[], $10::jsonb[], $11::text[], \
             $12::text[], $13::uuid[])",
    )
    .bind::<Array<Timestamptz>, _>(entries.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.actor.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.role.clone()))
    .bind::<Array<Nullable<SqlUuid>>, _>(entries.iter().map(|e| e.run_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.action.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.target.clone()))
    .bind::<Array<Text>, _>(entries.iter().map(|e| e.outcome).collect::<Vec<_>>())
    .bind::<Array<SmallInt>, _>(entries.iter().map(|e| e.status).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.reason.clone()))
    .bind::<Array<Nullable<Jsonb>>, _>(entries.iter().map(|e| e.diff.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.request_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(|e| e.source.clone()))
    .bind::<Array<Nullable<SqlUuid>>, _>(entries.iter().map(|e| e.node_id).collect::<Vec<_>>())
    .execute(conn)?;
    Ok(())
}

/// A live view's row (written when it opened, `diff.live_id` naming it) gets its end: when,
/// how long after its start, and why.
pub fn finish_live(
    conn: &mut PgConnection,
    live_id: Uuid,
    ended_at: DateTime<Utc>,
    reason: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE audit_log SET diff = diff || jsonb_build_object('ended_at', $2::timestamptz,              'duration_s', round(extract(epoch FROM $2::timestamptz - (diff->>'started_at')::timestamptz)::numeric, 1),              'end_reason', $3::text)          WHERE action = 'browser.live' AND diff->>'live_id' = $1::text",
    )
    .bind::<Text, _>(live_id.to_string())
    .bind::<Timestamptz, _>(ended_at)
    .bind::<Text, _>(reason)
    .execute(conn)?;
    Ok(())
}

/// A stored row, as `GET /api/v1/audit` shows it.
#[derive(Debug, Clone, Serialize, QueryableByName, utoipa::ToSchema)]
pub struct Row {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    /// The token's name (a dashboard session shows its token's); null: not authenticated.
    #[diesel(sql_type = Nullable<Text>)]
    pub actor: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub role: Option<String>,
    /// Set when a run token made the call.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub run_id: Option<Uuid>,
    /// e.g. `job.create`, `quota.consume`, `flag.set`.
    #[diesel(sql_type = Text)]
    pub action: String,
    /// e.g. `job/nightly-report`, `run/<id>`, `quota/linkedin`.
    #[diesel(sql_type = Nullable<Text>)]
    pub target: Option<String>,
    /// `ok`, `refused` (4xx) or `failed` (5xx).
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = SmallInt)]
    pub status: i16,
    /// For refusals and failures: the error's code and message.
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    /// What changed (`{"field": {"from": …, "to": …}}` for an update, the new object for a
    /// create); secrets redacted.
    #[diesel(sql_type = Nullable<Jsonb>)]
    #[schema(value_type = Option<Object>)]
    pub diff: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
    /// The client's address (behind a trusted proxy: from `X-Forwarded-For`).
    #[diesel(sql_type = Nullable<Text>)]
    pub source: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub node_id: Option<Uuid>,
}

/// Filters of a listing (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    /// Exact, or a prefix when it ends with `.` (`job.` is every job action).
    pub action: Option<String>,
    /// Exact, or a prefix when it ends with `/` (`job/` is every job).
    pub target: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows older than this id (keyset pagination, newest first).
    pub before_id: Option<i64>,
}

fn prefix_or_exact(v: &str, sep: char) -> (String, bool) {
    if v.ends_with(sep) {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        (format!("{escaped}%"), true)
    } else {
        (v.to_string(), false)
    }
}

/// Newest first, at most `limit` rows.
pub fn list(conn: &mut PgConnection, f: &Filter, limit: i64) -> Result<Vec<Row>, DbError> {
    let (action, action_like) = f
        .action
        .as_deref()
        .map(|a| prefix_or_exact(a, '.'))
        .unwrap_or_default();
    let (target, target_like) = f
        .target
        .as_deref()
        .map(|t| prefix_or_exact(t, '/'))
        .unwrap_or_default();
    let sql = format!(
        "SELECT id, at, actor, role, run_id, action, target, outcome, status, reason, diff, \
                request_id, source, node_id \
         FROM audit_log \
         WHERE ($1::text IS NULL OR actor = $1) \
           AND ($2::text IS NULL OR action {}) \
           AND ($3::text IS NULL OR target {}) \
           AND ($4::text IS NULL OR outcome = $4) \
           AND ($5::timestamptz IS NULL OR at >= $5) \
           AND ($6::timestamptz IS NULL OR at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8",
        if action_like { "LIKE $2" } else { "= $2" },
        if target_like { "LIKE $3" } else { "= $3" },
    );
    Ok(diesel::sql_query(sql)
        .bind::<Nullable<Text>, _>(f.actor.as_deref())
        .bind::<Nullable<Text>, _>(f.action.as_ref().map(|_| action))
        .bind::<Nullable<Text>, _>(f.target.as_ref().map(|_| target))
        .bind::<Nullable<Text>, _>(f.outcome.as_deref())
        .bind::<Nullable<Timestamptz>, _>(f.since)
        .bind::<Nullable<Timestamptz>, _>(f.until)
        .bind::<Nullable<BigInt>, _>(f.before_id)
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// Deletes up to `batch` rows older than `cutoff`; returns how many.
pub fn prune_batch(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "DELETE FROM audit_log WHERE id IN \
         (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(batch)
    .execute(conn)?)
}
