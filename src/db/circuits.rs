//! The `circuits` table: per-domain circuit breakers for browser runs. Every decision locks
//! the domain's row, so concurrent runs on several nodes agree (one probe when half-open).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::circuits;
use super::{notifications, DbError};
use crate::notify::Routing;
use crate::telemetry::events::Event;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = circuits)]
pub struct Circuit {
    pub domain: String,
    /// closed, open or half_open
    pub state: String,
    /// Consecutive failures.
    pub failures: i32,
    /// Consecutive openings (the open period doubles with each).
    pub opens: i32,
    pub open_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The breaker's settings (`[browser]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub failures: i32,
    pub open_initial: Duration,
    pub open_max: Duration,
}

/// May a run go to this domain now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Half-open: this run is the one that tries.
    Probe,
    /// Open (or another run is probing): wait until then.
    Wait(DateTime<Utc>),
}

/// A half-open probe that never reported (its node died) stops blocking after this.
const PROBE_TIMEOUT: chrono::Duration = chrono::Duration::minutes(5);

fn locked(conn: &mut PgConnection, domain: &str) -> Result<Circuit, DbError> {
    diesel::insert_into(circuits::table)
        .values(circuits::domain.eq(domain))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(circuits::table
        .find(domain)
        .select(Circuit::as_select())
        .for_update()
        .first(conn)?)
}

pub fn admit(
    conn: &mut PgConnection,
    domain: &str,
    now: DateTime<Utc>,
) -> Result<Admission, DbError> {
    conn.transaction(|conn| {
        let c = locked(conn, domain)?;
        let open_until = c.open_until.unwrap_or(now);
        Ok(match c.state.as_str() {
            "open" if now < open_until => Admission::Wait(open_until),
            "open" => {
                diesel::update(circuits::table.find(domain))
                    .set((
                        circuits::state.eq("half_open"),
                        circuits::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Admission::Probe
            }
            "half_open" if now - c.updated_at < PROBE_TIMEOUT => {
                Admission::Wait(now + chrono::Duration::seconds(2))
            }
            "half_open" => {
                diesel::update(circuits::table.find(domain))
                    .set(circuits::updated_at.eq(now))
                    .execute(conn)?;
                Admission::Probe
            }
            _ => Admission::Go,
        })
    })
}

/// Records a run's outcome on its domain; opens or closes the circuit (with its event in the
/// outbox, same transaction). Returns the new state when it changed.
pub fn record(
    conn: &mut PgConnection,
    domain: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
    s: &Settings,
    routing: &Routing,
) -> Result<Option<&'static str>, DbError> {
    conn.transaction(|conn| {
        let c = locked(conn, domain)?;
        let (changed, event_rows) = match error {
            None => {
                if c.state == "closed" && c.failures == 0 {
                    return Ok(None);
                }
                diesel::update(circuits::table.find(domain))
                    .set((
                        circuits::state.eq("closed"),
                        circuits::failures.eq(0),
                        circuits::opens.eq(0),
                        circuits::open_until.eq(None::<DateTime<Utc>>),
                        circuits::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                if c.state == "closed" {
                    return Ok(None);
                }
                let rows = routing.rows([(
                    Event::CircuitClosed {
                        domain: domain.to_string(),
                    },
                    format!("{domain}:{}", now.timestamp_micros()),
                )]);
                (Some("closed"), rows)
            }
            Some(err) => {
                let failures = c.failures + 1;
                let open =
                    c.state == "half_open" || (c.state == "closed" && failures >= s.failures);
                if open {
                    let period = crate::stdx::backoff::exponential(
                        s.open_initial,
                        s.open_max,
                        c.opens.max(0) as u32,
                    );
                    let until = now
                        + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::zero());
                    diesel::update(circuits::table.find(domain))
                        .set((
                            circuits::state.eq("open"),
                            circuits::failures.eq(failures),
                            circuits::opens.eq(c.opens + 1),
                            circuits::open_until.eq(Some(until)),
                            circuits::last_error.eq(err),
                            circuits::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    let rows = routing.rows([(
                        Event::CircuitOpened {
                            domain: domain.to_string(),
                            failures,
                            until,
                            error: err.to_string(),
                        },
                        format!("{domain}:{}", now.timestamp_micros()),
                    )]);
                    (Some("open"), rows)
                } else {
                    diesel::update(circuits::table.find(domain))
                        .set((
                            circuits::failures.eq(failures),
                            circuits::last_error.eq(err),
                            circuits::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    (None, Vec::new())
                }
            }
        };
        notifications::enqueue(conn, &event_rows)?;
        Ok(changed)
    })
}

pub fn list(conn: &mut PgConnection) -> Result<Vec<Circuit>, DbError> {
    Ok(circuits::table
        .select(Circuit::as_select())
        .order(circuits::domain)
        .load(conn)?)
}
