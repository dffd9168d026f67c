//! Feature flags as they are in effect now: the configured value of each (with the layer it
//! came from) and the runtime overrides stored in PostgreSQL (`flag_overrides`), which every
//! node reads every [`REFRESH`] (the node actor) and which survive restarts. Pure data and
//! logic: no actors, HTTP or diesel.
//!
//! An override is a percentage: 100 is on, 0 is off; a flag with a rollout subject
//! (`anti_detection`: the browser profile) may be on for a share of its subjects, decided
//! by a stable hash of the flag and the subject's name — the same profile always gets the
//! same answer for the same percentage, and raising the percentage only adds profiles.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Flags, Origin};
use crate::stdx::problems::FieldError;

/// How often every node re-reads the overrides.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Every flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    AntiDetection,
    ZombieDetection,
    Notifications,
    QuotaEnforcement,
}

impl Name {
    pub const ALL: [Name; 4] = [
        Name::AntiDetection,
        Name::ZombieDetection,
        Name::Notifications,
        Name::QuotaEnforcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::AntiDetection => "anti_detection",
            Name::ZombieDetection => "zombie_detection",
            Name::Notifications => "notifications",
            Name::QuotaEnforcement => "quota_enforcement",
        }
    }

    pub fn parse(s: &str) -> Option<Name> {
        Name::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// What a percentage rollout is decided by, if the flag has one.
    pub fn rollout_by(self) -> Option<&'static str> {
        match self {
            Name::AntiDetection => Some("profile"),
            _ => None,
        }
    }

    /// When a change takes effect.
    pub fn takes_effect(self) -> &'static str {
        match self {
            Name::AntiDetection => {
                "at each profile's next browser launch (an idle browser whose answer changed is closed)"
            }
            Name::ZombieDetection => "at the leader's next sweep",
            Name::Notifications => "at each node's next delivery round",
            Name::QuotaEnforcement => "at the next consumption",
        }
    }

    fn configured(self, f: &Flags) -> bool {
        match self {
            Name::AntiDetection => f.anti_detection,
            Name::ZombieDetection => f.zombie_detection,
            Name::Notifications => f.notifications,
            Name::QuotaEnforcement => f.quota_enforcement,
        }
    }
}

/// A runtime override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// 0 (off) to 100 (on).
    pub percent: u8,
    /// The token that set it.
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// The body of `PUT /api/v1/flags/{name}`: `{"enabled": true|false}` or `{"percent": n}`
/// (a flag with a rollout subject only). Returns the percentage, or every bad field.
pub fn parse_setting(name: Name, body: &Value) -> Result<u8, Vec<FieldError>> {
    let bad = |path: &str, message: String| {
        vec![FieldError {
            path: path.into(),
            message,
        }]
    };
    let Some(obj) = body.as_object() else {
        return Err(bad(
            "",
            "expected {\"enabled\": true|false} or {\"percent\": 0-100}".into(),
        ));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["enabled", "percent"].contains(&k.as_str()))
    {
        return Err(bad(k, "unknown field; expected enabled or percent".into()));
    }
    match (obj.get("enabled"), obj.get("percent")) {
        (Some(_), Some(_)) => Err(bad("percent", "give enabled or percent, not both".into())),
        (Some(Value::Bool(on)), None) => Ok(if *on { 100 } else { 0 }),
        (Some(_), None) => Err(bad("enabled", "expected true or false".into())),
        (None, Some(p)) => {
            let Some(p) = p.as_u64().filter(|p| *p <= 100) else {
                return Err(bad(
                    "percent",
                    "expected a whole number from 0 to 100".into(),
                ));
            };
            match name.rollout_by() {
                Some(_) => Ok(p as u8),
                None if p == 0 || p == 100 => Ok(p as u8),
                None => Err(bad(
                    "percent",
                    format!(
                        "`{}` is on or off for the whole cluster: only 0 or 100 (a percentage \
                         rollout is for anti_detection, by profile)",
                        name.as_str()
                    ),
                )),
            }
        }
        (None, None) => Err(bad(
            "",
            "expected {\"enabled\": true|false} or {\"percent\": 0-100}".into(),
        )),
    }
}

/// Whether `subject` is in the first `percent` of 100 buckets of `flag`.
pub fn in_rollout(flag: Name, subject: &str, percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    if percent == 0 {
        return false;
    }
    let digest = Sha256::digest(format!("{}:{subject}", flag.as_str()).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) < u64::from(percent)
}

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    File,
    Env,
    Runtime,
}

impl Source {
    fn of(origin: Option<&Origin>) -> (Source, Option<String>) {
        match origin {
            Some(Origin::File(p)) => (Source::File, Some(p.display().to_string())),
            Some(Origin::Env(v)) => (Source::Env, Some(v.clone())),
            _ => (Source::Default, None),
        }
    }
}

/// One flag as `GET /api/v1/flags` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct View {
    /// On for everything (`percent` 100).
    pub enabled: bool,
    /// 0 off, 100 on, between: on for that share of `rollout_by`.
    pub percent: u8,
    /// Where the effective value comes from: default, file, env or runtime.
    pub source: Source,
    /// The configured value (what `DELETE` returns to) and its layer.
    pub configured: bool,
    pub configured_source: Source,
    /// The file or environment variable of the configured value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configured_from: Option<String>,
    /// Who set the runtime override, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_at: Option<DateTime<Utc>>,
    /// What a percentage is decided by (a flag without one is on or off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_by: Option<&'static str>,
    pub takes_effect: &'static str,
}

#[derive(Debug)]
struct State {
    configured: Flags,
    origins: BTreeMap<Name, Origin>,
    overrides: BTreeMap<Name, Override>,
    /// Counts the overrides set here ([`Live::set_one`]), so that a refresh read before one
    /// does not undo it.
    epoch: u64,
}

/// The flags in effect, shared by every actor and the API of this process.
#[derive(Debug, Clone)]
pub struct Live(Arc<RwLock<State>>);

impl Live {
    /// The configured values; `origins` by dotted key (`flags.anti_detection`).
    pub fn new(configured: Flags, origins: &BTreeMap<String, Origin>) -> Self {
        let origins = Name::ALL
            .into_iter()
            .filter_map(|n| {
                origins
                    .get(&format!("flags.{}", n.as_str()))
                    .map(|o| (n, o.clone()))
            })
            .collect();
        Live(Arc::new(RwLock::new(State {
            configured,
            origins,
            overrides: BTreeMap::new(),
            epoch: 0,
        })))
    }

    /// Only configured values (tests, tools).
    pub fn fixed(configured: Flags) -> Self {
        Self::new(configured, &BTreeMap::new())
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    fn percent(&self, name: Name) -> u8 {
        self.read(|s| match s.overrides.get(&name) {
            Some(o) => o.percent,
            None => {
                if name.configured(&s.configured) {
                    100
                } else {
                    0
                }
            }
        })
    }

    /// Whether `name` is on (for a flag with a rollout subject: on for every subject).
    pub fn on(&self, name: Name) -> bool {
        self.percent(name) >= 100
    }

    /// Whether `name` is on for `subject` (a profile for `anti_detection`).
    pub fn on_for(&self, name: Name, subject: &str) -> bool {
        in_rollout(name, subject, self.percent(name))
    }

    /// The current epoch: take it before reading the table, give it to
    /// [`Live::refresh`].
    pub fn epoch(&self) -> u64 {
        self.read(|s| s.epoch)
    }

    /// Replaces every override with what the table held, unless an override was set here
    /// since `epoch` (the read may predate it: the next refresh brings both). Returns the
    /// flags whose effective value changed, with their new percentage.
    pub fn refresh(&self, epoch: u64, overrides: BTreeMap<Name, Override>) -> Vec<(Name, u8)> {
        if self.epoch() != epoch {
            return Vec::new();
        }
        self.set_overrides(overrides)
    }

    /// Replaces every override (what the table holds now); returns the flags whose
    /// effective value changed, with their new percentage.
    pub fn set_overrides(&self, overrides: BTreeMap<Name, Override>) -> Vec<(Name, u8)> {
        let before: Vec<u8> = Name::ALL.iter().map(|n| self.percent(*n)).collect();
        {
            let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
            guard.overrides = overrides;
        }
        Name::ALL
            .into_iter()
            .zip(before)
            .filter_map(|(n, b)| {
                let now = self.percent(n);
                (now != b).then_some((n, now))
            })
            .collect()
    }

    /// One override set or removed here (this node sees it at once; the others at their
    /// next refresh).
    pub fn set_one(&self, name: Name, o: Option<Override>) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        match o {
            Some(o) => guard.overrides.insert(name, o),
            None => guard.overrides.remove(&name),
        };
        guard.epoch += 1;
    }

    pub fn view(&self, name: Name) -> View {
        self.read(|s| {
            let configured = name.configured(&s.configured);
            let (configured_source, configured_from) = Source::of(s.origins.get(&name));
            let o = s.overrides.get(&name);
            let percent = match o {
                Some(o) => o.percent,
                None if configured => 100,
                None => 0,
            };
            View {
                enabled: percent >= 100,
                percent,
                source: if o.is_some() {
                    Source::Runtime
                } else {
                    configured_source
                },
                configured,
                configured_source,
                configured_from,
                set_by: o.map(|o| o.set_by.clone()),
                set_at: o.map(|o| o.set_at),
                rollout_by: name.rollout_by(),
                takes_effect: name.takes_effect(),
            }
        })
    }

    pub fn views(&self) -> BTreeMap<&'static str, View> {
        Name::ALL
            .into_iter()
            .map(|n| (n.as_str(), self.view(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flags() -> Flags {
        Flags {
            anti_detection: true,
            zombie_detection: true,
            notifications: false,
            quota_enforcement: true,
        }
    }

    fn o(percent: u8) -> Override {
        Override {
            percent,
            set_by: "ops".into(),
            set_at: Utc::now(),
        }
    }

    #[test]
    fn overrides_win_and_removing_one_returns_to_the_configured_value() {
        let env = BTreeMap::from([(
            "flags.notifications".to_string(),
            Origin::Env("OVERSEER__FLAGS__NOTIFICATIONS".into()),
        )]);
        let live = Live::new(flags(), &env);
        assert!(!live.on(Name::Notifications));
        let v = live.view(Name::Notifications);
        assert_eq!((v.source, v.configured_source), (Source::Env, Source::Env));
        assert_eq!(
            v.configured_from.as_deref(),
            Some("OVERSEER__FLAGS__NOTIFICATIONS")
        );
        assert_eq!(live.view(Name::ZombieDetection).source, Source::Default);

        let changed = live.set_overrides(BTreeMap::from([(Name::Notifications, o(100))]));
        assert_eq!(changed, vec![(Name::Notifications, 100)]);
        assert!(live.on(Name::Notifications));
        let v = live.view(Name::Notifications);
        assert_eq!(v.source, Source::Runtime);
        assert!(!v.configured);
        assert_eq!(v.set_by.as_deref(), Some("ops"));
        // The same overrides again: nothing changed.
        assert!(live
            .set_overrides(BTreeMap::from([(Name::Notifications, o(100))]))
            .is_empty());
        // A refresh read before a local change does not undo it.
        let epoch = live.epoch();
        live.set_one(Name::Notifications, None);
        assert!(live
            .refresh(epoch, BTreeMap::from([(Name::Notifications, o(100))]))
            .is_empty());
        assert!(!live.on(Name::Notifications));
        assert_eq!(live.view(Name::Notifications).source, Source::Env);
    }

    #[test]
    fn a_rollout_is_stable_per_subject_and_grows_monotonically() {
        let profiles: Vec<String> = (0..1000).map(|i| format!("account-{i}")).collect();
        let share = |p: u8| {
            profiles
                .iter()
                .filter(|s| in_rollout(Name::AntiDetection, s, p))
                .count()
        };
        assert_eq!(share(0), 0);
        assert_eq!(share(100), 1000);
        let thirty = share(30);
        assert!((230..=370).contains(&thirty), "{thirty} of 1000 at 30%");
        for s in &profiles {
            if in_rollout(Name::AntiDetection, s, 30) {
                assert!(in_rollout(Name::AntiDetection, s, 31), "{s}");
            }
            assert_eq!(
                in_rollout(Name::AntiDetection, s, 30),
                in_rollout(Name::AntiDetection, s, 30)
            );
        }
        let live = Live::fixed(flags());
        live.set_one(Name::AntiDetection, Some(o(30)));
        assert!(!live.on(Name::AntiDetection));
        let on = profiles
            .iter()
            .filter(|p| live.on_for(Name::AntiDetection, p))
            .count();
        assert_eq!(on, thirty);
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        assert_eq!(
            parse_setting(Name::Notifications, &json!({"enabled": false})),
            Ok(0)
        );
        assert_eq!(
            parse_setting(Name::AntiDetection, &json!({"percent": 25})),
            Ok(25)
        );
        assert_eq!(
            parse_setting(Name::ZombieDetection, &json!({"percent": 100})),
            Ok(100)
        );
        let path = |v: Value, n: Name| parse_setting(n, &v).unwrap_err()[0].path.clone();
        assert_eq!(
            path(json!({"percent": 25}), Name::ZombieDetection),
            "percent"
        );
        assert_eq!(
            path(json!({"percent": 101}), Name::AntiDetection),
            "percent"
        );
        assert_eq!(
            path(json!({"enabled": "yes"}), Name::AntiDetection),
            "enabled"
        );
        assert_eq!(path(json!({"on": true}), Name::AntiDetection), "on");
        assert_eq!(path(json!({}), Name::AntiDetection), "");
        assert_eq!(
            path(json!({"enabled": true, "percent": 5}), Name::AntiDetection),
            "percent"
        );
    }
}
