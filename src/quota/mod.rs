//! Quotas as data: a quota's definition (limits per hour / day / week, the timezone of its
//! calendar windows, the first day of its week), its validation, and the windows an instant
//! falls in. Pure: no database, no actors (`db::quotas` stores and consumes, the
//! `quota_counter` actor serves).
//!
//! Windows are calendar windows in the quota's timezone: the hour (local hh:00), the day
//! (local midnight), the week (local midnight of `week_start`). Across DST changes a day is
//! 23 or 25 hours long; a local midnight that does not exist starts the day at the first
//! instant after it.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stdx::problems::Problems;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Hour,
    Day,
    Week,
}

impl WindowKind {
    pub const ALL: [WindowKind; 3] = [WindowKind::Hour, WindowKind::Day, WindowKind::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Hour => "hour",
            WindowKind::Day => "day",
            WindowKind::Week => "week",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A quota: at most `limit` units per window, for each window kind it limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaDef {
    pub name: String,
    pub hour: Option<i64>,
    pub day: Option<i64>,
    pub week: Option<i64>,
    pub timezone: Tz,
    pub week_start: Weekday,
}

/// One window of one quota: `[start, end)`, with its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kind: WindowKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub limit: i64,
}

use crate::stdx::names::{quota as valid_name, QUOTA_RULE as NAME_RULE};

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

impl QuotaDef {
    /// Parses `{limits: {hour?, day?, week?}, timezone?, week_start?}` (the API's PUT body and
    /// a `[[quotas]]` table, which also has `name`). Every problem is reported with its path.
    pub fn parse(name: &str, v: &Value) -> Result<Self, Problems> {
        let mut p = Problems::default();
        if !valid_name(name) {
            p.add("name", NAME_RULE);
        }
        let Some(obj) = v.as_object() else {
            p.add("", "expected an object with `limits`");
            return Err(p);
        };
        for k in obj.keys() {
            if !["name", "limits", "timezone", "week_start"].contains(&k.as_str()) {
                p.add(k, "unknown field");
            }
        }
        let mut limits = [None, None, None];
        match obj.get("limits").and_then(Value::as_object) {
            Some(l) if !l.is_empty() => {
                for (k, v) in l {
                    match WindowKind::parse(k) {
                        None => p.add(&format!("limits.{k}"), "expected hour, day or week"),
                        Some(kind) => match v.as_i64() {
                            Some(n) if n > 0 => limits[kind as usize] = Some(n),
                            _ => p.add(&format!("limits.{k}"), "expected a whole number above 0"),
                        },
                    }
                }
            }
            _ => p.add(
                "limits",
                "required: at least one of hour, day, week, like {\"day\": 50, \"week\": 200}",
            ),
        }
        let timezone = match obj.get("timezone") {
            None => Tz::UTC,
            Some(t) => match t.as_str().and_then(|s| s.parse::<Tz>().ok()) {
                Some(tz) => tz,
                None => {
                    p.add("timezone", "expected an IANA timezone like Europe/Berlin");
                    Tz::UTC
                }
            },
        };
        let week_start = match obj.get("week_start") {
            None => Weekday::Mon,
            Some(d) => match d.as_str().and_then(weekday) {
                Some(d) => d,
                None => {
                    p.add("week_start", "expected a weekday like monday or sunday");
                    Weekday::Mon
                }
            },
        };
        if !p.is_empty() {
            return Err(p);
        }
        Ok(Self {
            name: name.to_string(),
            hour: limits[0],
            day: limits[1],
            week: limits[2],
            timezone,
            week_start,
        })
    }

    pub fn limit(&self, kind: WindowKind) -> Option<i64> {
        match kind {
            WindowKind::Hour => self.hour,
            WindowKind::Day => self.day,
            WindowKind::Week => self.week,
        }
    }

    /// The windows of every limited kind that contain `now`.
    pub fn windows_at(&self, now: DateTime<Utc>) -> Vec<Window> {
        WindowKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let limit = self.limit(kind)?;
                let (start, end) = window_bounds(kind, self.timezone, self.week_start, now);
                Some(Window {
                    kind,
                    start,
                    end,
                    limit,
                })
            })
            .collect()
    }
}

/// The first instant at or after local `naive` (a local time skipped by DST starts late).
fn local_start(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut t = naive;
    for _ in 0..(4 * 24) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += Duration::minutes(15);
    }
    Utc.from_utc_datetime(&naive)
}

fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    local_start(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// `[start, end)` of the `kind` window containing `now` in `tz`.
pub fn window_bounds(
    kind: WindowKind,
    tz: Tz,
    week_start: Weekday,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&tz);
    let date = local.date_naive();
    match kind {
        WindowKind::Hour => {
            // The latest local hh:00 at or before now (twice per hour in a repeated hour).
            let naive = local.naive_local();
            let top = naive
                .date()
                .and_hms_opt(local.hour(), 0, 0)
                .unwrap_or(naive);
            let start = tz
                .from_local_datetime(&top)
                .latest()
                .map(|d| d.with_timezone(&Utc))
                .filter(|s| *s <= now)
                .or_else(|| {
                    tz.from_local_datetime(&top)
                        .earliest()
                        .map(|d| d.with_timezone(&Utc))
                })
                .unwrap_or_else(|| local_start(tz, top));
            (start, start + Duration::hours(1))
        }
        WindowKind::Day => (
            day_start(tz, date),
            day_start(tz, date.succ_opt().unwrap_or(date)),
        ),
        WindowKind::Week => {
            let back =
                (7 + date.weekday().num_days_from_monday() - week_start.num_days_from_monday()) % 7;
            let first = date - Duration::days(back as i64);
            (
                day_start(tz, first),
                day_start(tz, first + Duration::days(7)),
            )
        }
    }
}

/// A job's claim on a quota: `cost` units when a run is dispatched (0: none; a browser
/// script consumes per action with `consume` steps), returned if the run fails and
/// `refund_on_failure` is set; `max_per_run` caps what one run's `consume` steps may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobQuota {
    pub name: String,
    pub cost: i64,
    #[serde(default)]
    pub refund_on_failure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_run: Option<i64>,
}

/// Parses a job's `quota` field: `[{name, cost?, refund_on_failure?}]`.
pub fn parse_job_quota(v: &Value, path: &str, p: &mut Problems) -> Vec<JobQuota> {
    let Some(list) = v.as_array() else {
        p.add(
            path,
            "expected a list like [{\"name\": \"linkedin:messages\", \"cost\": 1}]",
        );
        return Vec::new();
    };
    let mut out: Vec<JobQuota> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{path}.{i}");
        let Some(obj) = item.as_object() else {
            p.add(&at, "expected an object with `name`");
            continue;
        };
        for k in obj.keys() {
            if !["name", "cost", "refund_on_failure", "max_per_run"].contains(&k.as_str()) {
                p.add(&format!("{at}.{k}"), "unknown field");
            }
        }
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        if !valid_name(name) {
            p.add(&format!("{at}.name"), NAME_RULE);
        } else if out.iter().any(|q| q.name == name) {
            p.add(&format!("{at}.name"), "each quota once per job");
        }
        let cost = match obj.get("cost") {
            None => 1,
            Some(c) => match c.as_i64() {
                Some(n) if (0..=1_000_000).contains(&n) => n,
                _ => {
                    p.add(
                        &format!("{at}.cost"),
                        "expected a whole number from 0 (consume in the script) to 1000000",
                    );
                    1
                }
            },
        };
        let refund_on_failure = match obj.get("refund_on_failure") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                p.add(&format!("{at}.refund_on_failure"), "expected true or false");
                false
            }
        };
        let max_per_run = match obj.get("max_per_run") {
            None => None,
            Some(m) => match m.as_i64() {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    p.add(
                        &format!("{at}.max_per_run"),
                        "expected a whole number above 0",
                    );
                    None
                }
            },
        };
        out.push(JobQuota {
            name: name.to_string(),
            cost,
            refund_on_failure,
            max_per_run,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn def(tz: &str, week_start: &str) -> QuotaDef {
        QuotaDef::parse(
            "q",
            &json!({"limits": {"hour": 1, "day": 2, "week": 3}, "timezone": tz, "week_start": week_start}),
        )
        .unwrap()
    }

    fn bounds(d: &QuotaDef, kind: WindowKind, now: &str) -> (String, String) {
        let w = d
            .windows_at(utc(now))
            .into_iter()
            .find(|w| w.kind == kind)
            .unwrap();
        (w.start.to_rfc3339(), w.end.to_rfc3339())
    }

    #[test]
    fn names() {
        assert!(valid_name("linkedin:messages"));
        assert!(valid_name("0a.b_c-d"));
        assert!(!valid_name("Linkedin"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(129)));
        assert!(valid_name(&"a".repeat(128)));
    }

    #[test]
    fn utc_windows() {
        let d = def("UTC", "monday");
        // 2026-11-25 is a Wednesday.
        assert_eq!(
            bounds(&d, WindowKind::Hour, "2026-11-25T10:59:59Z"),
            (
                "2026-11-25T10:00:00+00:00".into(),
                "2026-11-25T11:00:00+00:00".into()
            )
        );
        assert_eq!(
            bounds(&d, WindowKind::Day, "2026-11-25T00:00:00Z"),
            (
                "2026-11-25T00:00:00+00:00".into(),
                "2026-11-26T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            bounds(&d, WindowKind::Week, "2026-11-25T10:00:00Z"),
            (
                "2026-11-23T00:00:00+00:00".into(),
                "2026-11-30T00:00:00+00:00".into()
            )
        );
        let sunday = def("UTC", "sunday");
        assert_eq!(
            bounds(&sunday, WindowKind::Week, "2026-11-25T10:00:00Z"),
            (
                "2026-11-22T00:00:00+00:00".into(),
                "2026-11-29T00:00:00+00:00".into()
            )
        );
        // On the first day itself, the week starts that midnight.
        assert_eq!(
            bounds(&sunday, WindowKind::Week, "2026-11-29T00:00:00Z").0,
            "2026-11-29T00:00:00+00:00"
        );
    }

    #[test]
    fn days_follow_local_midnight() {
        let d = def("Asia/Kolkata", "monday"); // +05:30
        assert_eq!(
            bounds(&d, WindowKind::Day, "2026-11-25T18:29:59Z"),
            (
                "2026-11-24T18:30:00+00:00".into(),
                "2026-11-25T18:30:00+00:00".into()
            )
        );
        assert_eq!(
            bounds(&d, WindowKind::Hour, "2026-11-25T18:29:59Z"),
            (
                "2026-11-25T17:30:00+00:00".into(),
                "2026-11-25T18:30:00+00:00".into()
            )
        );
        let ny = def("America/New_York", "monday");
        assert_eq!(
            bounds(&ny, WindowKind::Day, "2026-11-25T04:59:59Z").0,
            "2026-11-24T05:00:00+00:00"
        );
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let b = def("Europe/Berlin", "monday");
        // Spring forward: 2026-03-29 02:00 → 03:00 local.
        let (s, e) = bounds(&b, WindowKind::Day, "2026-03-29T12:00:00Z");
        assert_eq!(s, "2026-03-28T23:00:00+00:00");
        assert_eq!(e, "2026-03-29T22:00:00+00:00");
        // Fall back: 2026-10-25 03:00 → 02:00 local.
        let (s, e) = bounds(&b, WindowKind::Day, "2026-10-25T12:00:00Z");
        assert_eq!(s, "2026-10-24T22:00:00+00:00");
        assert_eq!(e, "2026-10-25T23:00:00+00:00");
        // The repeated hour 02:00-03:00 local is two windows of one hour each.
        assert_eq!(
            bounds(&b, WindowKind::Hour, "2026-10-25T00:30:00Z"),
            (
                "2026-10-25T00:00:00+00:00".into(),
                "2026-10-25T01:00:00+00:00".into()
            )
        );
        assert_eq!(
            bounds(&b, WindowKind::Hour, "2026-10-25T01:30:00Z"),
            (
                "2026-10-25T01:00:00+00:00".into(),
                "2026-10-25T02:00:00+00:00".into()
            )
        );
        // A week across the change is 167 hours long.
        let (s, e) = bounds(&b, WindowKind::Week, "2026-03-29T12:00:00Z");
        assert_eq!(s, "2026-03-22T23:00:00+00:00");
        assert_eq!(e, "2026-03-29T22:00:00+00:00");
        // New York springs forward at 02:00 on 2026-03-08.
        let ny = def("America/New_York", "sunday");
        let (s, e) = bounds(&ny, WindowKind::Week, "2026-03-10T12:00:00Z");
        assert_eq!(s, "2026-03-08T05:00:00+00:00");
        assert_eq!(e, "2026-03-15T04:00:00+00:00");
    }

    #[test]
    fn a_missing_local_midnight_starts_the_day_late() {
        // America/Santiago skipped 2026-09-06 00:00 → 01:00 (DST starts at midnight).
        let d = def("America/Santiago", "monday");
        let (s, _) = bounds(&d, WindowKind::Day, "2026-09-06T12:00:00Z");
        let local = utc(&s).with_timezone(&"America/Santiago".parse::<Tz>().unwrap());
        assert_eq!(local.date_naive().to_string(), "2026-09-06");
        assert!(chrono::Timelike::hour(&local) <= 1, "{local}");
    }

    #[test]
    fn parse_reports_paths() {
        let e = QuotaDef::parse(
            "Bad Name",
            &json!({"limits": {"day": 0, "month": 3}, "timezone": "Mars/Olympus", "week_start": "someday", "x": 1}),
        )
        .unwrap_err();
        let paths: Vec<String> = e.into_vec().into_iter().map(|f| f.path).collect();
        for p in [
            "name",
            "limits.day",
            "limits.month",
            "timezone",
            "week_start",
            "x",
        ] {
            assert!(paths.contains(&p.to_string()), "{p} in {paths:?}");
        }
        let mut p = Problems::default();
        let q = parse_job_quota(
            &json!([{"name": "a", "cost": 2}, {"name": "a"}, {"name": "b", "cost": -1, "refund_on_failure": "yes"}]),
            "quota",
            &mut p,
        );
        assert_eq!(
            q[0],
            JobQuota {
                name: "a".into(),
                cost: 2,
                refund_on_failure: false,
                max_per_run: None,
            }
        );
        let paths: Vec<String> = p.into_vec().into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            ["quota.1.name", "quota.2.cost", "quota.2.refund_on_failure"]
        );
    }
}
