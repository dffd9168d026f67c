//! The `quotas` and `quota_usage` tables: definitions, and units used per calendar window.
//!
//! **Consumption is all-or-nothing and race-free** ([`consume_batch`]): in one transaction it
//! share-locks the quota's row (its limits cannot change meanwhile), makes sure a usage row
//! exists for every current window, locks those rows `FOR UPDATE` in a fixed order (so
//! concurrent consumers queue on them and never deadlock), admits requests in order while
//! every window has room, and adds the admitted total. Correctness rests on the row locks,
//! not on the isolation level: no number of processes can push `used` past a limit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc, Weekday};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{Array, Int8, Text, Timestamptz};
use serde::Serialize;
use serde_json::json;

use super::schema::{quota_usage, quotas};
use super::{notifications, DbError};
use crate::notify::Routing;
use crate::quota::{weekday_name, QuotaDef, Window, WindowKind};
use crate::telemetry::events::Event;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = quotas)]
pub struct QuotaRow {
    pub name: String,
    pub hour_limit: Option<i64>,
    pub day_limit: Option<i64>,
    pub week_limit: Option<i64>,
    pub timezone: String,
    pub week_start: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl QuotaRow {
    pub fn def(&self) -> QuotaDef {
        QuotaDef {
            name: self.name.clone(),
            hour: self.hour_limit,
            day: self.day_limit,
            week: self.week_limit,
            timezone: self.timezone.parse::<Tz>().unwrap_or(Tz::UTC),
            week_start: parse_weekday(&self.week_start),
        }
    }
}

fn parse_weekday(s: &str) -> Weekday {
    s.parse::<Weekday>().unwrap_or(Weekday::Mon)
}

/// Creates or replaces a quota. `source` is `config` or `api`.
pub fn upsert(
    conn: &mut PgConnection,
    def: &QuotaDef,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(QuotaRow, bool), DbError> {
    let existed = get(conn, &def.name).is_ok();
    let row = diesel::insert_into(quotas::table)
        .values((
            quotas::name.eq(&def.name),
            quotas::hour_limit.eq(def.hour),
            quotas::day_limit.eq(def.day),
            quotas::week_limit.eq(def.week),
            quotas::timezone.eq(def.timezone.name()),
            quotas::week_start.eq(weekday_name(def.week_start)),
            quotas::source.eq(source),
            quotas::created_at.eq(now),
            quotas::updated_at.eq(now),
        ))
        .on_conflict(quotas::name)
        .do_update()
        .set((
            quotas::hour_limit.eq(def.hour),
            quotas::day_limit.eq(def.day),
            quotas::week_limit.eq(def.week),
            quotas::timezone.eq(def.timezone.name()),
            quotas::week_start.eq(weekday_name(def.week_start)),
            quotas::source.eq(source),
            quotas::updated_at.eq(now),
        ))
        .returning(QuotaRow::as_returning())
        .get_result(conn)?;
    Ok((row, !existed))
}

/// Hands config-declared quotas not in `keep` to the API; returns their names.
pub fn release_config_quotas_except(
    conn: &mut PgConnection,
    keep: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    Ok(diesel::update(
        quotas::table
            .filter(quotas::source.eq("config"))
            .filter(quotas::name.ne_all(keep)),
    )
    .set((quotas::source.eq("api"), quotas::updated_at.eq(now)))
    .returning(quotas::name)
    .get_results(conn)?)
}

pub fn get(conn: &mut PgConnection, name: &str) -> Result<QuotaRow, DbError> {
    Ok(quotas::table
        .find(name)
        .select(QuotaRow::as_select())
        .first(conn)?)
}

/// The quotas among those `refs` name that exist (for `jobs::unresolved`).
pub fn referenced(
    conn: &mut PgConnection,
    refs: &[crate::jobs::Reference],
) -> Result<std::collections::HashSet<String>, DbError> {
    let names: Vec<String> = refs
        .iter()
        .filter(|r| r.to == crate::jobs::Referent::Quota)
        .map(|r| r.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(Default::default());
    }
    Ok(existing(conn, &names)?.into_iter().collect())
}

/// Which of `names` exist.
pub fn existing(conn: &mut PgConnection, names: &[String]) -> Result<Vec<String>, DbError> {
    Ok(quotas::table
        .filter(quotas::name.eq_any(names))
        .select(quotas::name)
        .load(conn)?)
}

pub fn list(conn: &mut PgConnection) -> Result<Vec<QuotaRow>, DbError> {
    Ok(quotas::table
        .select(QuotaRow::as_select())
        .order(quotas::name)
        .load(conn)?)
}

/// Names of jobs (not cancelled) that consume this quota.
pub fn users(conn: &mut PgConnection, name: &str) -> Result<Vec<String>, DbError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<N> = diesel::sql_query(
        "SELECT name FROM jobs WHERE state <> 'cancelled' \
         AND quota @> jsonb_build_array(jsonb_build_object('name', $1::text)) ORDER BY name",
    )
    .bind::<Text, _>(name)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

pub fn delete(conn: &mut PgConnection, name: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(quotas::table.find(name)).execute(conn)? > 0)
}

/// One window's state, as the API and the gauges show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WindowUsage {
    /// hour, day or week
    pub window: &'static str,
    pub limit: i64,
    pub used: i64,
    pub remaining: i64,
    pub start: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
}

fn usage_of(w: &Window, used: i64) -> WindowUsage {
    WindowUsage {
        window: w.kind.as_str(),
        limit: w.limit,
        used,
        remaining: (w.limit - used).max(0),
        start: w.start,
        resets_at: w.end,
    }
}

/// Used units of the windows containing `now` (no lock: a reading).
pub fn usage(
    conn: &mut PgConnection,
    def: &QuotaDef,
    now: DateTime<Utc>,
) -> Result<Vec<WindowUsage>, DbError> {
    let windows = def.windows_at(now);
    let starts: Vec<DateTime<Utc>> = windows.iter().map(|w| w.start).collect();
    let rows: Vec<(String, DateTime<Utc>, i64)> = quota_usage::table
        .filter(quota_usage::quota.eq(&def.name))
        .filter(quota_usage::window_start.eq_any(&starts))
        .select((
            quota_usage::window_kind,
            quota_usage::window_start,
            quota_usage::used,
        ))
        .load(conn)?;
    Ok(windows
        .iter()
        .map(|w| {
            let used = rows
                .iter()
                .find(|r| r.0 == w.kind.as_str() && r.1 == w.start)
                .map(|r| r.2)
                .unwrap_or(0);
            usage_of(w, used)
        })
        .collect())
}

/// Where a consumption was counted, so that a refund goes back to the same windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub quota: String,
    pub cost: i64,
    pub windows: Vec<(WindowKind, DateTime<Utc>)>,
}

/// The answer to one request of a batch.
#[derive(Debug, Clone)]
pub enum Decision {
    Admitted {
        receipt: Receipt,
        /// The quota's windows after this request.
        windows: Vec<WindowUsage>,
        /// Admitted although over a limit (the `quota_enforcement` flag is off).
        over_limit: bool,
    },
    Refused {
        /// When every window that lacks room has reset.
        retry_at: DateTime<Utc>,
        /// The windows that lack room.
        blocking: Vec<&'static str>,
        windows: Vec<WindowUsage>,
    },
    /// The cost is above a window's limit: it can never be admitted.
    TooLarge { window: &'static str, limit: i64 },
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Text)]
    window_kind: String,
    #[diesel(sql_type = Int8)]
    used: i64,
}

/// Creates a quota's current windows ($1 quota, $2 kinds, $3 starts, $4 ends); `tests/plans.rs` EXPLAINs it.
pub const ENSURE_WINDOWS_SQL: &str = "INSERT INTO quota_usage (quota, window_kind, window_start, window_end) \
             SELECT $1, k, s, e FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS v(k, s, e) \
             ON CONFLICT DO NOTHING";

/// Locks a quota's current windows ($1 quota, $2 kinds, $3 starts); `tests/plans.rs` EXPLAINs it.
pub const LOCK_WINDOWS_SQL: &str = "SELECT u.window_kind, u.used FROM quota_usage u \
             JOIN unnest($2::text[], $3::timestamptz[]) AS v(k, s) \
               ON u.window_kind = v.k AND u.window_start = v.s \
             WHERE u.quota = $1 ORDER BY u.window_kind FOR UPDATE OF u";

/// Adds admitted units to a quota's windows ($1 quota, $2 kinds, $3 starts, $4 units); `tests/plans.rs` EXPLAINs it.
pub const ADD_USAGE_SQL: &str = "UPDATE quota_usage SET used = used + $4 \
                 FROM unnest($2::text[], $3::timestamptz[]) AS v(k, s) \
                 WHERE quota = $1 AND window_kind = v.k AND window_start = v.s";

/// Consumes `costs` (in order) from quota `name` in one transaction; see the module doc.
/// With `enforce` off every request is admitted and over-limit ones are marked. A refusal
/// writes one `quota.exhausted` notification per quota and window (its key dedupes).
/// A consume call's audit row, completed with what the batch decided for it.
fn audit_of(entry: &crate::db::audit::Entry, d: &Decision, cost: i64) -> crate::db::audit::Entry {
    let mut e = entry.clone();
    match d {
        Decision::Admitted { over_limit, .. } => {
            e.diff =
                Some(serde_json::json!({"cost": cost, "admitted": true, "over_limit": over_limit}));
        }
        Decision::Refused { blocking, .. } => {
            e.outcome = "refused";
            e.status = 429;
            e.reason = Some(format!(
                "quota_exhausted: no room in this {}",
                blocking.join(" and ")
            ));
            e.diff = Some(serde_json::json!({"cost": cost, "admitted": false}));
        }
        Decision::TooLarge { window, limit } => {
            e.outcome = "refused";
            e.status = 422;
            e.reason = Some(format!(
                "cost {cost} is more than the {window} limit {limit}"
            ));
        }
    }
    e
}

pub fn consume_batch(
    conn: &mut PgConnection,
    name: &str,
    costs: &[i64],
    audits: &[Option<crate::db::audit::Entry>],
    enforce: bool,
    now: DateTime<Utc>,
    routing: &Routing,
) -> Result<Vec<Decision>, DbError> {
    conn.transaction::<_, DbError, _>(|conn| {
        let row: QuotaRow = quotas::table
            .find(name)
            .select(QuotaRow::as_select())
            .for_share()
            .first(conn)?;
        let def = row.def();
        let windows = def.windows_at(now);
        let kinds: Vec<&str> = windows.iter().map(|w| w.kind.as_str()).collect();
        let starts: Vec<DateTime<Utc>> = windows.iter().map(|w| w.start).collect();
        let ends: Vec<DateTime<Utc>> = windows.iter().map(|w| w.end).collect();
        diesel::sql_query(ENSURE_WINDOWS_SQL)
            .bind::<Text, _>(name)
            .bind::<Array<Text>, _>(&kinds)
            .bind::<Array<Timestamptz>, _>(&starts)
            .bind::<Array<Timestamptz>, _>(&ends)
            .execute(conn)?;
        let locked: Vec<Locked> = diesel::sql_query(LOCK_WINDOWS_SQL)
            .bind::<Text, _>(name)
            .bind::<Array<Text>, _>(&kinds)
            .bind::<Array<Timestamptz>, _>(&starts)
            .load(conn)?;
        let mut used: BTreeMap<&'static str, i64> = windows
            .iter()
            .map(|w| {
                let u = locked
                    .iter()
                    .find(|l| l.window_kind == w.kind.as_str())
                    .map(|l| l.used)
                    .unwrap_or(0);
                (w.kind.as_str(), u)
            })
            .collect();
        let snapshot = |used: &BTreeMap<&'static str, i64>| -> Vec<WindowUsage> {
            windows
                .iter()
                .map(|w| usage_of(w, used[w.kind.as_str()]))
                .collect()
        };
        let mut decisions = Vec::with_capacity(costs.len());
        let mut total = 0i64;
        let mut exhausted: Vec<&Window> = Vec::new();
        for &cost in costs {
            if let Some(w) = windows.iter().find(|w| cost > w.limit) {
                decisions.push(Decision::TooLarge {
                    window: w.kind.as_str(),
                    limit: w.limit,
                });
                continue;
            }
            let blocking: Vec<&Window> = windows
                .iter()
                .filter(|w| used[w.kind.as_str()] + cost > w.limit)
                .collect();
            if blocking.is_empty() || !enforce {
                for w in &windows {
                    *used.entry(w.kind.as_str()).or_default() += cost;
                }
                total += cost;
                decisions.push(Decision::Admitted {
                    receipt: Receipt {
                        quota: name.to_string(),
                        cost,
                        windows: windows.iter().map(|w| (w.kind, w.start)).collect(),
                    },
                    windows: snapshot(&used),
                    over_limit: !blocking.is_empty(),
                });
            } else {
                let retry_at = blocking.iter().map(|w| w.end).max().unwrap_or(now);
                for w in &blocking {
                    if !exhausted.iter().any(|e| e.kind == w.kind) {
                        exhausted.push(w);
                    }
                }
                decisions.push(Decision::Refused {
                    retry_at,
                    blocking: blocking.iter().map(|w| w.kind.as_str()).collect(),
                    windows: snapshot(&used),
                });
            }
        }
        if total > 0 {
            diesel::sql_query(ADD_USAGE_SQL)
                .bind::<Text, _>(name)
                .bind::<Array<Text>, _>(&kinds)
                .bind::<Array<Timestamptz>, _>(&starts)
                .bind::<Int8, _>(total)
                .execute(conn)?;
        }
        if !exhausted.is_empty() {
            let rows = routing.rows(exhausted.iter().map(|w| {
                (
                    Event::QuotaExhausted {
                        quota: name.to_string(),
                        window: w.kind.as_str().to_string(),
                        limit: w.limit,
                        resets_at: w.end,
                    },
                    format!("{name}:{}:{}", w.kind.as_str(), w.start.timestamp()),
                )
            }));
            notifications::enqueue(conn, &rows)?;
        }
        // The API's consume calls: their audit rows, in this transaction, with the decision.
        let audited: Vec<crate::db::audit::Entry> = audits
            .iter()
            .zip(&decisions)
            .zip(costs)
            .filter_map(|((a, d), cost)| Some(audit_of(a.as_ref()?, d, *cost)))
            .collect();
        crate::db::audit::record_many(conn, &audited)?;
        Ok(decisions)
    })
}

/// Returns a receipt's units to the windows they were counted in (never below zero).
pub fn refund(conn: &mut PgConnection, receipt: &Receipt) -> Result<usize, DbError> {
    let kinds: Vec<&str> = receipt.windows.iter().map(|w| w.0.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = receipt.windows.iter().map(|w| w.1).collect();
    Ok(diesel::sql_query(
        "UPDATE quota_usage SET used = GREATEST(used - $4, 0) \
         FROM unnest($2::text[], $3::timestamptz[]) AS v(k, s) \
         WHERE quota = $1 AND window_kind = v.k AND window_start = v.s",
    )
    .bind::<Text, _>(&receipt.quota)
    .bind::<Array<Text>, _>(&kinds)
    .bind::<Array<Timestamptz>, _>(&starts)
    .bind::<Int8, _>(receipt.cost)
    .execute(conn)?)
}

/// Deletes usage rows of windows that ended before `cutoff`.
pub fn prune(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(
        diesel::delete(quota_usage::table.filter(quota_usage::window_end.lt(cutoff)))
            .execute(conn)?,
    )
}

/// The JSON the API shows for a quota.
pub fn describe(row: &QuotaRow, windows: &[WindowUsage]) -> serde_json::Value {
    let mut limits = serde_json::Map::new();
    for (k, v) in [
        ("hour", row.hour_limit),
        ("day", row.day_limit),
        ("week", row.week_limit),
    ] {
        if let Some(v) = v {
            limits.insert(k.into(), v.into());
        }
    }
    json!({
        "name": row.name,
        "limits": limits,
        "timezone": row.timezone,
        "week_start": row.week_start,
        "source": row.source,
        "windows": windows,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}
