//! Per-job execution policy: misfire grace, catch-up, retries, timeout, overlap, priority.
//! Defaults come from `[scheduler.defaults]`; a job stores its resolved policy, so changing
//! the defaults later does not silently change existing jobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::stdx::duration::{format_duration, parse_duration};
use crate::stdx::problems::Problems;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// One run for all missed fires (the default).
    Latest,
    /// Record the misses, run nothing for them.
    Skip,
    /// One run per missed fire, at most `max_catch_up` of them.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// A fire that comes while the previous run is pending or running is skipped (recorded).
    Skip,
    /// It waits until the previous run finishes.
    Queue,
    /// It runs alongside.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub misfire_grace: Duration,
    pub catch_up: CatchUp,
    pub max_catch_up: u32,
    pub max_retries: u32,
    /// Delay before retry n (1-based) is `retry_delays[min(n, len) - 1]`: the last repeats.
    pub retry_delays: Vec<Duration>,
    pub timeout: Option<Duration>,
    pub overlap: Overlap,
    pub priority: u8,
}

/// `[scheduler.defaults]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDefaults {
    #[serde(with = "humantime_serde")]
    pub misfire_grace: Duration,
    pub catch_up: CatchUp,
    pub max_catch_up: u32,
    pub max_retries: u32,
    #[serde(with = "duration_list")]
    pub retry_delays: Vec<Duration>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub overlap: Overlap,
    pub priority: u8,
}

/// A list of durations written as strings ("60s").
mod duration_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| super::format_duration(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| super::parse_duration(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl Policy {
    pub fn from_defaults(d: &PolicyDefaults) -> Self {
        Self {
            misfire_grace: d.misfire_grace,
            catch_up: d.catch_up,
            max_catch_up: d.max_catch_up,
            max_retries: d.max_retries,
            retry_delays: d.retry_delays.clone(),
            timeout: (!d.timeout.is_zero()).then_some(d.timeout),
            overlap: d.overlap,
            priority: d.priority,
        }
    }

    /// The delay before retry number `n` (1 = the first retry).
    pub fn retry_delay(&self, n: u32) -> Duration {
        if self.retry_delays.is_empty() {
            return Duration::ZERO;
        }
        let i = (n.max(1) as usize - 1).min(self.retry_delays.len() - 1);
        self.retry_delays[i]
    }

    /// After attempt `attempt` failed: the delay before the next attempt, or None when the
    /// retries are used up (a dead letter).
    pub fn next_attempt_after(&self, attempt: u32) -> Option<Duration> {
        (attempt <= self.max_retries).then(|| self.retry_delay(attempt))
    }

    /// Applies the fields present in `value` (an API or config object) over `self`.
    pub fn merge(mut self, value: &Value, path: &str, p: &mut Problems) -> Self {
        let Some(obj) = value.as_object() else {
            if !value.is_null() {
                p.add(path, "expected an object");
            }
            return self;
        };
        let dur = |key: &str, v: &Value, p: &mut Problems| -> Option<Duration> {
            match v.as_str().map(parse_duration) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    p.add(&format!("{path}.{key}"), e);
                    None
                }
                None => {
                    p.add(
                        &format!("{path}.{key}"),
                        "expected a duration string like \"60s\"",
                    );
                    None
                }
            }
        };
        let uint = |key: &str, v: &Value, max: u64, p: &mut Problems| -> Option<u64> {
            match v.as_u64() {
                Some(n) if n <= max => Some(n),
                _ => {
                    p.add(
                        &format!("{path}.{key}"),
                        format!("expected an integer from 0 to {max}"),
                    );
                    None
                }
            }
        };
        for (key, v) in obj {
            match key.as_str() {
                "misfire_grace" => {
                    if let Some(d) = dur(key, v, p) {
                        self.misfire_grace = d;
                    }
                }
                "catch_up" => match serde_json::from_value::<CatchUp>(v.clone()) {
                    Ok(c) => self.catch_up = c,
                    Err(_) => p.add(&format!("{path}.catch_up"), "expected latest, skip or all"),
                },
                "max_catch_up" => {
                    if let Some(n) = uint(key, v, 10_000, p) {
                        self.max_catch_up = n as u32;
                    }
                }
                "max_retries" => {
                    if let Some(n) = uint(key, v, 100, p) {
                        self.max_retries = n as u32;
                    }
                }
                "retry_delays" => match v.as_array() {
                    Some(items) if !items.is_empty() && items.len() <= 32 => {
                        let mut out = Vec::new();
                        for (i, item) in items.iter().enumerate() {
                            if let Some(d) = dur(&format!("retry_delays[{i}]"), item, p) {
                                out.push(d);
                            }
                        }
                        self.retry_delays = out;
                    }
                    _ => p.add(
                        &format!("{path}.retry_delays"),
                        "expected a list of 1 to 32 durations",
                    ),
                },
                "timeout" => {
                    if v.is_null() {
                        self.timeout = None;
                    } else if let Some(d) = dur(key, v, p) {
                        if d.is_zero() {
                            self.timeout = None;
                        } else {
                            self.timeout = Some(d);
                        }
                    }
                }
                "overlap" => match serde_json::from_value::<Overlap>(v.clone()) {
                    Ok(o) => self.overlap = o,
                    Err(_) => p.add(&format!("{path}.overlap"), "expected skip, queue or allow"),
                },
                "priority" => {
                    if let Some(n) = uint(key, v, 9, p) {
                        self.priority = n as u8;
                    }
                }
                other => p.add(&format!("{path}.{other}"), "unknown field"),
            }
        }
        self
    }

    /// The stored form (every field explicit).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "misfire_grace".into(),
            json!(format_duration(self.misfire_grace)),
        );
        m.insert("catch_up".into(), json!(self.catch_up));
        m.insert("max_catch_up".into(), json!(self.max_catch_up));
        m.insert("max_retries".into(), json!(self.max_retries));
        m.insert(
            "retry_delays".into(),
            json!(self
                .retry_delays
                .iter()
                .map(|d| format_duration(*d))
                .collect::<Vec<_>>()),
        );
        m.insert(
            "timeout".into(),
            self.timeout
                .map(|d| json!(format_duration(d)))
                .unwrap_or(Value::Null),
        );
        m.insert("overlap".into(), json!(self.overlap));
        m.insert("priority".into(), json!(self.priority));
        Value::Object(m)
    }

    /// Reads the stored form back (over the defaults, so older rows missing a field load).
    pub fn from_stored(value: &Value, defaults: &PolicyDefaults) -> Self {
        let mut p = Problems::default();
        Policy::from_defaults(defaults).merge(value, "policy", &mut p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn defaults() -> PolicyDefaults {
        PolicyDefaults {
            misfire_grace: Duration::from_secs(60),
            catch_up: CatchUp::Latest,
            max_catch_up: 100,
            max_retries: 3,
            retry_delays: vec![
                Duration::from_secs(60),
                Duration::from_secs(120),
                Duration::from_secs(300),
            ],
            timeout: Duration::ZERO,
            overlap: Overlap::Skip,
            priority: 5,
        }
    }

    #[test]
    fn retry_delays_last_repeats_and_retries_run_out() {
        let p = Policy::from_defaults(&defaults());
        let secs: Vec<u64> = (1..=5).map(|n| p.retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 300, 300, 300]);
        assert_eq!(p.next_attempt_after(1), Some(Duration::from_secs(60)));
        assert_eq!(p.next_attempt_after(3), Some(Duration::from_secs(300)));
        assert_eq!(p.next_attempt_after(4), None, "1 attempt + 3 retries");
    }

    #[test]
    fn merge_validates_each_field_with_its_path() {
        let mut p = Problems::default();
        let merged = Policy::from_defaults(&defaults()).merge(
            &serde_json::json!({
                "misfire_grace": "5m", "max_retries": 0, "overlap": "queue",
                "retry_delays": ["1s", "2s"], "timeout": "30s", "priority": 9,
                "catch_up": "all", "max_catch_up": 3
            }),
            "policy",
            &mut p,
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(merged.misfire_grace, Duration::from_secs(300));
        assert_eq!(merged.overlap, Overlap::Queue);
        assert_eq!(merged.timeout, Some(Duration::from_secs(30)));
        let back = Policy::from_stored(&merged.to_json(), &defaults());
        assert_eq!(back, merged);

        let mut p = Problems::default();
        Policy::from_defaults(&defaults()).merge(
            &serde_json::json!({
                "misfire_grace": 60, "priority": 10, "overlap": "sometimes",
                "retry_delays": [], "bogus": true, "catch_up": "most"
            }),
            "policy",
            &mut p,
        );
        let paths: Vec<String> = p.into_vec().into_iter().map(|f| f.path).collect();
        for want in [
            "policy.misfire_grace",
            "policy.priority",
            "policy.overlap",
            "policy.retry_delays",
            "policy.bogus",
            "policy.catch_up",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} not in {paths:?}");
        }
    }
}
