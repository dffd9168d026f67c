//! Jobs as pure data and logic: definitions and their validation, schedules, policies, fire
//! planning, run states and job kinds. Nothing here knows about actors, HTTP or diesel.

pub mod job_state;
pub mod plan;
pub mod policy;
pub mod run_error;
pub mod run_state;
pub mod schedule;

use chrono::{DateTime, Utc};
use serde_json::Value;

use self::policy::{Policy, PolicyDefaults};
use self::schedule::Schedule;
use crate::stdx::problems::{FieldError, Problems};

pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const MAX_TAGS: usize = 32;

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._:-".contains(c))
}

/// A validated job definition (from the API or from `[[jobs]]` in the configuration).
#[derive(Debug, Clone)]
pub struct JobDef {
    pub name: String,
    pub kind: String,
    pub payload: Value,
    pub schedule: Schedule,
    pub policy: Policy,
    pub tags: Vec<String>,
    pub metadata: Value,
    /// Quotas each run consumes when it is dispatched.
    pub quota: Vec<crate::quota::JobQuota>,
    pub paused: bool,
}

const FIELDS: &[&str] = &[
    "name", "kind", "payload", "schedule", "policy", "tags", "metadata", "quota", "paused",
];

fn check_tags(v: Option<&Value>, p: &mut Problems) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    let Some(items) = v.as_array() else {
        p.add("tags", "expected a list of strings");
        return Vec::new();
    };
    if items.len() > MAX_TAGS {
        p.add("tags", format!("at most {MAX_TAGS} tags"));
    }
    let mut out = Vec::new();
    for (i, t) in items.iter().enumerate() {
        match t.as_str() {
            Some(s) if valid_tag(s) => out.push(s.to_string()),
            _ => p.add(
                &format!("tags[{i}]"),
                "expected a tag like `linkedin` ([a-z0-9][a-z0-9._:-]{0,63})",
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn check_metadata(v: Option<&Value>, p: &mut Problems) -> Value {
    match v {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(m @ Value::Object(_)) => {
            let size = m.to_string().len();
            if size > MAX_METADATA_BYTES {
                p.add(
                    "metadata",
                    format!("{size} bytes; at most {MAX_METADATA_BYTES}"),
                );
            }
            m.clone()
        }
        Some(_) => {
            p.add("metadata", "expected an object");
            Value::Object(Default::default())
        }
    }
}

/// The job kinds as a definition's validation sees them: implemented by the kinds'
/// registry (`kinds::registry()`), so that this module depends on no kind.
pub trait Kinds {
    /// Validates `payload` of `kind`, problems under `path`; false when no such kind exists.
    fn check(&self, kind: &str, payload: &Value, path: &str, p: &mut Problems) -> bool;
    /// Every kind's name, for the error that lists them.
    fn names(&self) -> Vec<&'static str>;
    /// The names a valid `payload` of `kind` refers to (paths under `path`).
    fn references(&self, kind: &str, payload: &Value, path: &str) -> Vec<Reference>;
    /// Whether runs of `kind` execute the user's code (admin only).
    fn runs_code(&self, kind: &str) -> bool;
}

/// Something a job names that must exist outside it, or its runs could only fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// JSON path of the field that names it.
    pub path: String,
    pub to: Referent,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Referent {
    /// A quota (`[[quotas]]` or `PUT /api/v1/quotas/{name}`).
    Quota,
    /// A notification channel (`[[notify.channels]]`, or `log`).
    Channel,
    /// A program a `command` job runs (`[command] allowed`).
    Program,
}

/// What the references of a job are checked against (the API and start-up pass the same).
pub struct Resolver<'a> {
    pub quota_exists: &'a dyn Fn(&str) -> bool,
    pub channel_exists: &'a dyn Fn(&str) -> bool,
    /// Why the program may not run, if it may not.
    pub program_refused: &'a dyn Fn(&str) -> Option<String>,
}

/// The references that do not resolve, as field problems (the same words for the API's 422
/// and a declarative job's configuration error).
pub fn unresolved(refs: &[Reference], known: &Resolver<'_>) -> Vec<FieldError> {
    let mut p = Problems::default();
    for r in refs {
        match r.to {
            Referent::Quota if !(known.quota_exists)(&r.name) => p.add(
                &r.path,
                format!(
                    "no quota named `{}` ([[quotas]] or PUT /api/v1/quotas/{})",
                    r.name, r.name
                ),
            ),
            Referent::Channel if !(known.channel_exists)(&r.name) => p.add(
                &r.path,
                format!("no channel named `{}` in [[notify.channels]]", r.name),
            ),
            Referent::Program => {
                if let Some(why) = (known.program_refused)(&r.name) {
                    p.add(&r.path, why);
                }
            }
            _ => {}
        }
    }
    p.into_vec()
}

fn check_kind_payload(kinds: &dyn Kinds, kind: Option<&str>, payload: &Value, p: &mut Problems) {
    match kind {
        None => p.add("kind", "required"),
        Some(k) => {
            if !kinds.check(k, payload, "payload", p) {
                p.add(
                    "kind",
                    format!("unknown kind `{k}`; known: {}", kinds.names().join(", ")),
                );
            }
        }
    }
}

impl JobDef {
    /// Everything this job names: its quota claims and what its kind's payload names.
    pub fn references(&self, kinds: &dyn Kinds) -> Vec<Reference> {
        let mut refs: Vec<Reference> = self
            .quota
            .iter()
            .enumerate()
            .map(|(i, q)| Reference {
                path: format!("quota.{i}.name"),
                to: Referent::Quota,
                name: q.name.clone(),
            })
            .collect();
        refs.extend(kinds.references(&self.kind, &self.payload, "payload"));
        refs
    }

    pub fn quota_json(&self) -> Value {
        serde_json::to_value(&self.quota).unwrap_or_else(|_| Value::Array(Vec::new()))
    }

    /// Parses and validates a whole definition; every problem is reported with its path.
    pub fn parse(
        v: &Value,
        kinds: &dyn Kinds,
        defaults: &PolicyDefaults,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let Some(obj) = v.as_object() else {
            p.add("", "expected a JSON object");
            return Err(p.into_vec());
        };
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                p.add(key, "unknown field");
            }
        }
        let name = match obj.get("name").and_then(Value::as_str) {
            Some(n) if crate::stdx::names::job(n) => n.to_string(),
            Some(_) => {
                p.add("name", crate::stdx::names::JOB_RULE);
                String::new()
            }
            None => {
                p.add("name", "required");
                String::new()
            }
        };
        let kind = obj.get("kind").and_then(Value::as_str);
        if obj.get("kind").is_some() && kind.is_none() {
            p.add("kind", "expected a string");
        }
        let payload = obj
            .get("payload")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        check_kind_payload(kinds, kind, &payload, &mut p);
        let schedule = match obj.get("schedule") {
            Some(s) => Schedule::parse(s, "schedule", now, &mut p),
            None => {
                p.add("schedule", "required: one of `at`, `every` or `cron`");
                None
            }
        };
        let policy = Policy::from_defaults(defaults).merge(
            obj.get("policy").unwrap_or(&Value::Null),
            "policy",
            &mut p,
        );
        let tags = check_tags(obj.get("tags"), &mut p);
        let metadata = check_metadata(obj.get("metadata"), &mut p);
        let quota = obj
            .get("quota")
            .map(|q| crate::quota::parse_job_quota(q, "quota", &mut p))
            .unwrap_or_default();
        let paused = match obj.get("paused") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                p.add("paused", "expected true or false");
                false
            }
        };
        match schedule {
            Some(schedule) if p.is_empty() => Ok(JobDef {
                name,
                kind: kind.unwrap_or_default().to_string(),
                payload,
                schedule,
                policy,
                tags,
                metadata,
                quota,
                paused,
            }),
            _ => Err(p.into_vec()),
        }
    }

    /// Applies a PATCH document over this definition (`kind` and `name` are fixed).
    pub fn patch(
        mut self,
        v: &Value,
        kinds: &dyn Kinds,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut p = Problems::default();
        let Some(obj) = v.as_object() else {
            p.add("", "expected a JSON object");
            return Err(p.into_vec());
        };
        for key in obj.keys() {
            match key.as_str() {
                "payload" | "schedule" | "policy" | "tags" | "metadata" | "quota" => {}
                "name" | "kind" => p.add(key, "cannot be changed; create a new job instead"),
                other => p.add(other, "unknown field"),
            }
        }
        if let Some(payload) = obj.get("payload") {
            check_kind_payload(kinds, Some(&self.kind), payload, &mut p);
            self.payload = payload.clone();
        }
        if let Some(s) = obj.get("schedule") {
            if let Some(schedule) = Schedule::parse(s, "schedule", now, &mut p) {
                self.schedule = schedule;
            }
        }
        if let Some(policy) = obj.get("policy") {
            self.policy = self.policy.merge(policy, "policy", &mut p);
        }
        if obj.contains_key("tags") {
            self.tags = check_tags(obj.get("tags"), &mut p);
        }
        if obj.contains_key("metadata") {
            self.metadata = check_metadata(obj.get("metadata"), &mut p);
        }
        if let Some(q) = obj.get("quota") {
            self.quota = crate::quota::parse_job_quota(q, "quota", &mut p);
        }
        if p.is_empty() {
            Ok(self)
        } else {
            Err(p.into_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for ok in ["a", "daily-report", "linkedin.follow_up.2", "0abc"] {
            assert!(crate::stdx::names::job(ok), "{ok}");
        }
        for bad in ["", "Daily", "-x", "a b", "é", &"a".repeat(129)] {
            assert!(!crate::stdx::names::job(bad), "{bad}");
        }
    }
}
