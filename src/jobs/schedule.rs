//! Schedules: `at` (once), `every` (fixed interval from an anchor), `cron` (5 or 6 fields,
//! aliases, `L`, `W`, `#`, in an IANA timezone). Parsed once into [`Schedule`]; all time
//! arithmetic is a pure function of the instants passed in (tests control the clock).
//!
//! DST (croner's rules): a local time skipped by spring-forward fires right after the gap; a
//! local time repeated by fall-back fires once.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::stdx::duration::{format_duration, parse_duration};
use crate::stdx::problems::Problems;

#[derive(Debug, Clone)]
pub enum Schedule {
    At(DateTime<Utc>),
    Every {
        interval: Duration,
        /// Fires are `anchor + k·interval`, k ≥ 0.
        anchor: DateTime<Utc>,
    },
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
        tz: Tz,
    },
}

/// The years an instant given by a user may fall in.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// Parses an RFC 3339 instant with an offset, in the years 1970–9999, truncated to
/// microseconds (as PostgreSQL keeps it).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(s.trim())
        .map_err(|_| {
            "expected an RFC 3339 time with an offset, like 2026-12-01T09:00:00+01:00".to_string()
        })?
        .with_timezone(&Utc);
    if !YEARS.contains(&chrono::Datelike::year(&t)) {
        return Err(format!(
            "the year must be {} to {}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(t.trunc_subsecs(6))
}

impl Schedule {
    /// Parses the API / config form at `path` (e.g. "schedule"). `now` anchors `every`
    /// schedules given without a start. Errors go to `problems` with their JSON path.
    pub fn parse(value: &Value, path: &str, now: DateTime<Utc>, p: &mut Problems) -> Option<Self> {
        let Some(obj) = value.as_object() else {
            p.add(
                path,
                "expected an object with one of `at`, `every` or `cron`",
            );
            return None;
        };
        let has = |k: &str| obj.contains_key(k);
        let kinds = [has("at"), has("every"), has("cron")]
            .iter()
            .filter(|b| **b)
            .count();
        if kinds != 1 {
            p.add(path, "give exactly one of `at`, `every` or `cron`");
            return None;
        }
        for key in obj.keys() {
            if !["kind", "at", "every", "start", "cron", "timezone"].contains(&key.as_str()) {
                p.add(&format!("{path}.{key}"), "unknown field");
            }
        }
        let str_at = |key: &str, p: &mut Problems| -> Option<String> {
            match obj.get(key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    p.add(&format!("{path}.{key}"), "expected a string");
                    None
                }
            }
        };
        if has("at") {
            let raw = str_at("at", p)?;
            return match parse_instant(&raw) {
                Ok(t) => Some(Schedule::At(t)),
                Err(e) => {
                    p.add(&format!("{path}.at"), e);
                    None
                }
            };
        }
        if has("every") {
            let raw = str_at("every", p)?;
            let interval = match parse_duration(&raw) {
                Ok(d) if d >= Duration::from_secs(1) => d,
                Ok(_) => {
                    p.add(&format!("{path}.every"), "the interval must be at least 1s");
                    return None;
                }
                Err(e) => {
                    p.add(&format!("{path}.every"), e);
                    return None;
                }
            };
            // PostgreSQL keeps microseconds: every instant is truncated to them, so that a
            // time computed here equals the same time read back from a row.
            let anchor = match str_at("start", p) {
                None => now.trunc_subsecs(6),
                Some(s) => match parse_instant(&s) {
                    Ok(t) => t,
                    Err(e) => {
                        p.add(&format!("{path}.start"), e);
                        return None;
                    }
                },
            };
            return Some(Schedule::Every { interval, anchor });
        }
        let expr = str_at("cron", p)?;
        let tz_name = str_at("timezone", p).unwrap_or_else(|| "UTC".to_string());
        let tz: Option<Tz> = match tz_name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                p.add(
                    &format!("{path}.timezone"),
                    format!("unknown IANA timezone `{tz_name}` (like \"Europe/Berlin\")"),
                );
                None
            }
        };
        let fields = expr.split_whitespace().count();
        let cron = if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            p.add(
                &format!("{path}.cron"),
                format!("expected 5 or 6 fields (or an alias like @hourly), got {fields}"),
            );
            None
        } else {
            match croner::parser::CronParser::new().parse(&expr) {
                Ok(c) => Some(c),
                Err(e) => {
                    p.add(
                        &format!("{path}.cron"),
                        format!("invalid cron expression: {e}"),
                    );
                    None
                }
            }
        };
        let (cron, tz) = (cron?, tz?);
        // An expression that never fires (e.g. 30 February) is a mistake, not a schedule.
        if cron
            .find_next_occurrence(&now.with_timezone(&tz), false)
            .is_err()
        {
            p.add(&format!("{path}.cron"), "this expression never fires");
            return None;
        }
        Some(Schedule::Cron {
            expr,
            cron: Box::new(cron),
            tz,
        })
    }

    /// The stored (normalised) form; [`Schedule::parse`] reads it back identically.
    pub fn to_json(&self) -> Value {
        match self {
            Schedule::At(t) => json!({ "kind": "at", "at": t.to_rfc3339() }),
            Schedule::Every { interval, anchor } => json!({
                "kind": "every",
                "every": format_duration(*interval),
                "start": anchor.to_rfc3339(),
            }),
            Schedule::Cron { expr, tz, .. } => json!({
                "kind": "cron",
                "cron": expr,
                "timezone": tz.name(),
            }),
        }
    }

    /// The first fire strictly after `t`, if any.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::At(at) => (*at > t).then_some(*at),
            Schedule::Every { interval, anchor } => {
                if t < *anchor {
                    return Some(*anchor);
                }
                let step = interval.as_millis() as i64;
                let since = (t - *anchor).num_milliseconds();
                let k = since / step + 1;
                Some(*anchor + chrono::Duration::milliseconds(k * step))
            }
            // Cron has whole seconds: asked from a time with a fraction, croner keeps the
            // fraction in its answer (09:00:00.288 instead of 09:00:00).
            Schedule::Cron { cron, tz, .. } => {
                use chrono::Timelike;
                let whole = t.with_nanosecond(0).unwrap_or(t);
                cron.find_next_occurrence(&whole.with_timezone(tz), false)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            }
        }
    }

    /// The first fire at or after `t`.
    pub fn first_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(t - chrono::Duration::milliseconds(1))
    }

    /// The first `next_fire_at` of a job created (or rescheduled) at `now`. A recurring
    /// schedule starts from now (its past is not a backlog); a one-off `at` in the past is
    /// overdue and fires at once (missed or late, per misfire_grace).
    pub fn initial_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::At(at) => Some(*at),
            _ => self.first_at_or_after(now),
        }
    }

    /// How many fires lie in `(after, until]`, counting at most `cap`; and the last of them.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        cap: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < cap {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod cron_seconds {
    use super::*;

    #[test]
    fn cron_fires_fall_on_whole_seconds_whatever_the_time_asked_from() {
        let mut p = Problems::default();
        let now = DateTime::parse_from_rfc3339("2026-12-01T08:59:59.734512+00:00")
            .unwrap()
            .with_timezone(&Utc);
        let s = Schedule::parse(
            &serde_json::json!({"cron": "0 9 * * *", "timezone": "UTC"}),
            "schedule",
            now,
            &mut p,
        )
        .unwrap();
        assert_eq!(
            s.initial_fire(now).unwrap().to_rfc3339(),
            "2026-12-01T09:00:00+00:00"
        );
        let after = DateTime::parse_from_rfc3339("2026-12-01T09:00:00.5+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            s.next_after(after).unwrap().to_rfc3339(),
            "2026-12-02T09:00:00+00:00"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn parse(v: Value) -> Result<Schedule, Vec<(String, String)>> {
        let mut p = Problems::default();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        match Schedule::parse(&v, "schedule", now, &mut p) {
            Some(s) if p.is_empty() => Ok(s),
            _ => Err(p
                .into_vec()
                .into_iter()
                .map(|f| (f.path, f.message))
                .collect()),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn at_fires_once() {
        let s = parse(json!({"at": "2026-12-01T09:00:00+01:00"})).unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-12-01T08:00:00Z"))
        );
        assert_eq!(s.next_after(utc("2026-12-01T08:00:00Z")), None);
        assert_eq!(s.to_json()["at"], "2026-12-01T08:00:00+00:00");
    }

    #[test]
    fn every_steps_from_its_anchor() {
        let s = parse(json!({"every": "90s", "start": "2026-01-01T00:00:00Z"})).unwrap();
        assert_eq!(
            next_n(&s, "2026-01-01T00:00:00Z", 3),
            [
                "2026-01-01T00:01:30+00:00",
                "2026-01-01T00:03:00+00:00",
                "2026-01-01T00:04:30+00:00"
            ]
        );
        assert_eq!(
            s.first_at_or_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.fires_between(
                utc("2026-01-01T00:00:00Z"),
                utc("2026-01-01T00:10:00Z"),
                100
            )
            .len(),
            6
        );
        assert_eq!(
            s.fires_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-02T00:00:00Z"), 10)
                .len(),
            10,
            "capped"
        );
    }

    #[test]
    fn cron_aliases_and_extensions() {
        let hourly = parse(json!({"cron": "@hourly"})).unwrap();
        assert_eq!(
            next_n(&hourly, "2026-03-03T10:15:00Z", 2),
            ["2026-03-03T11:00:00+00:00", "2026-03-03T12:00:00+00:00"]
        );
        // Last day of the month.
        let last = parse(json!({"cron": "0 12 L * *"})).unwrap();
        assert_eq!(
            next_n(&last, "2026-02-01T00:00:00Z", 1),
            ["2026-02-28T12:00:00+00:00"]
        );
        // Second Monday.
        let nth = parse(json!({"cron": "0 9 * * MON#2"})).unwrap();
        assert_eq!(
            next_n(&nth, "2026-03-01T00:00:00Z", 1),
            ["2026-03-09T09:00:00+00:00"]
        );
        // Closest weekday to the 1st (2026-08-01 is a Saturday → Monday 3rd).
        let w = parse(json!({"cron": "0 9 1W * *"})).unwrap();
        assert_eq!(
            next_n(&w, "2026-07-31T00:00:00Z", 1),
            ["2026-08-03T09:00:00+00:00"]
        );
        // Six fields: seconds.
        let six = parse(json!({"cron": "*/20 * * * * *"})).unwrap();
        assert_eq!(
            next_n(&six, "2026-03-03T10:15:00Z", 2),
            ["2026-03-03T10:15:20+00:00", "2026-03-03T10:15:40+00:00"]
        );
    }

    #[test]
    fn dst_new_york() {
        // Spring forward 2026-03-08: 02:00 → 03:00 local. 02:30 does not exist: it fires right
        // after the gap (03:00 EDT = 07:00Z), once.
        let s = parse(json!({"cron": "30 2 * * *", "timezone": "America/New_York"})).unwrap();
        let fires = next_n(&s, "2026-03-07T12:00:00Z", 3);
        assert_eq!(fires[0], "2026-03-08T07:00:00+00:00", "{fires:?}");
        assert_eq!(fires[1], "2026-03-09T06:30:00+00:00", "{fires:?}");
        // Fall back 2026-11-01: 01:30 happens twice; it fires once.
        let s = parse(json!({"cron": "30 1 * * *", "timezone": "America/New_York"})).unwrap();
        let fires = next_n(&s, "2026-10-31T12:00:00Z", 3);
        assert_eq!(
            fires,
            [
                "2026-11-01T05:30:00+00:00",
                "2026-11-02T06:30:00+00:00",
                "2026-11-03T06:30:00+00:00"
            ]
        );
    }

    #[test]
    fn dst_berlin() {
        // Spring forward 2026-03-29: 02:00 → 03:00 CEST. 02:30 runs right after the gap.
        let s = parse(json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"})).unwrap();
        let fires = next_n(&s, "2026-03-28T12:00:00Z", 2);
        assert_eq!(fires[0], "2026-03-29T01:00:00+00:00", "{fires:?}");
        assert_eq!(fires[1], "2026-03-30T00:30:00+00:00", "{fires:?}");
        // Fall back 2026-10-25: 02:30 exists twice (CEST then CET); once.
        let s = parse(json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"})).unwrap();
        let fires = next_n(&s, "2026-10-24T12:00:00Z", 2);
        assert_eq!(
            fires,
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
        // An hourly job keeps firing hourly across the change (no double 02:00 run).
        let s = parse(json!({"cron": "0 * * * *", "timezone": "Europe/Berlin"})).unwrap();
        let fires = next_n(&s, "2026-10-24T23:30:00Z", 4);
        let unique: std::collections::BTreeSet<_> = fires.iter().collect();
        assert_eq!(unique.len(), 4, "{fires:?}");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (json!({"cron": "61 * * * *"}), "schedule.cron"),
            (json!({"cron": "* * *"}), "schedule.cron"),
            (
                json!({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}),
                "schedule.timezone",
            ),
            (json!({"every": "500ms"}), "schedule.every"),
            (json!({"every": "often"}), "schedule.every"),
            (json!({"at": "tomorrow"}), "schedule.at"),
            (json!({"at": "2026-12-01T09:00:00"}), "schedule.at"),
            (json!({"at": "0000-01-01T00:00:00Z"}), "schedule.at"),
            (json!({"at": "1969-12-31T23:59:59Z"}), "schedule.at"),
            (json!({"every": "9999999999999h"}), "schedule.every"),
            (json!({"every": "11years"}), "schedule.every"),
            (
                json!({"every": "1h", "start": "0001-01-01T00:00:00Z"}),
                "schedule.start",
            ),
            (json!({"every": "1m", "cron": "@daily"}), "schedule"),
            (json!({}), "schedule"),
            (json!("daily"), "schedule"),
            (json!({"cron": "0 0 30 2 *"}), "schedule.cron"),
            (json!({"cron": "@daily", "tz": "UTC"}), "schedule.tz"),
        ];
        for (input, path) in cases {
            let errs = parse(input.clone()).expect_err(&input.to_string());
            assert!(
                errs.iter().any(|(p, _)| p == path),
                "{input}: expected an error at {path}, got {errs:?}"
            );
        }
    }

    #[test]
    fn stored_form_round_trips() {
        for input in [
            json!({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"}),
            json!({"every": "1h 30m", "start": "2026-01-01T00:00:00Z"}),
            json!({"at": "2026-12-01T09:00:00+01:00"}),
        ] {
            let s = parse(input).unwrap();
            let again = parse(s.to_json()).unwrap();
            assert_eq!(s.to_json(), again.to_json());
            let t = utc("2026-06-01T00:00:00Z");
            assert_eq!(s.next_after(t), again.next_after(t));
        }
    }
}
