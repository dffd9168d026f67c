//! The notifier's model: what an event says to a person ([`Notice`]), which channels hear it
//! ([`Routing`], from `[notify]` in the configuration), and the outbox rows it becomes
//! ([`OutboxRow`]). Outbox rows are written by `db` in the transaction of the state change
//! that caused them; `actors::notifier` delivers them through [`channel`].
//!
//! Imports point down: this module knows config and telemetry, not the database.

pub mod channel;
pub mod settings;
pub mod template;

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::Value;

use self::settings::{ChannelConfig, ChannelType, NotifyConfig};
use crate::telemetry::events::{Event, Severity};

/// Events routed when `[[notify.routes]]` is empty (to every channel).
pub const DEFAULT_EVENTS: &[&str] = &[
    "job.missed",
    "job.failed",
    "run.zombie",
    "supervisor.meltdown",
    "actor.restarted",
    "quota.exhausted",
    "circuit.opened",
    "run.notice",
];

/// The channel every configuration has (unless it defines its own channel named `log`).
pub const LOG_CHANNEL: &str = "log";

/// An event as a person reads it, with the key that makes it unique.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: String,
    pub severity: Severity,
    pub subject: String,
    pub body: String,
    pub data: Value,
    /// `<event>:<identity>`: the same event written twice (a retried transaction, a second
    /// node recording the same thing) yields the same key and one row per channel.
    pub key: String,
}

impl Notice {
    pub fn of(event: &Event, identity: impl Display) -> Self {
        Self {
            event: event.name().to_string(),
            severity: event.severity(),
            subject: event.subject(),
            body: event.body(),
            data: event.data(),
            key: format!("{}:{identity}", event.name()),
        }
    }
}

/// One row for the outbox: a notice for one channel.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub event: String,
    pub severity: &'static str,
    pub subject: String,
    pub body: String,
    pub data: Value,
    pub channel: String,
    pub dedupe_key: String,
}

#[derive(Debug, Clone)]
struct Route {
    events: Vec<String>,
    min_severity: Severity,
    channels: Vec<String>,
}

/// Channels and routing rules, resolved from the configuration once at start-up.
#[derive(Debug, Clone)]
pub struct Routing {
    channels: BTreeMap<String, ChannelConfig>,
    routes: Vec<Route>,
}

/// `*` matches everything, `job.*` every event under `job.`, anything else itself.
pub fn pattern_matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => event.starts_with(prefix),
        None => pattern == event,
    }
}

impl Routing {
    pub fn from_config(cfg: &NotifyConfig) -> Self {
        let mut channels: BTreeMap<String, ChannelConfig> = cfg
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.clone()))
            .collect();
        channels
            .entry(LOG_CHANNEL.to_string())
            .or_insert_with(|| ChannelConfig::log(LOG_CHANNEL));
        let routes = if cfg.routes.is_empty() {
            vec![Route {
                events: DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect(),
                min_severity: Severity::Info,
                channels: channels.keys().cloned().collect(),
            }]
        } else {
            cfg.routes
                .iter()
                .map(|r| Route {
                    events: r.events.clone(),
                    min_severity: r.min_severity,
                    channels: r.channels.clone(),
                })
                .collect()
        };
        Self { channels, routes }
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.get(name)
    }

    pub fn channels(&self) -> impl Iterator<Item = &ChannelConfig> {
        self.channels.values()
    }

    /// Whether any rule routes this event at all (a cheap filter before building notices).
    pub fn routes(&self, event: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.events.iter().any(|p| pattern_matches(p, event)))
    }

    /// The channels an event of this severity goes to, each once, in rule order.
    pub fn channels_for(&self, event: &str, severity: Severity) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.routes {
            if severity >= r.min_severity && r.events.iter().any(|p| pattern_matches(p, event)) {
                for c in &r.channels {
                    if !out.contains(&c.as_str()) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// The outbox rows for some events (each with its identity); unrouted ones yield none.
    /// Events are taken by value or borrowed (no copy for a batch the caller keeps).
    pub fn rows<E, I>(&self, events: impl IntoIterator<Item = (E, I)>) -> Vec<OutboxRow>
    where
        E: std::borrow::Borrow<Event>,
        I: std::fmt::Display,
    {
        let mut rows = Vec::new();
        for (event, identity) in events {
            let event = event.borrow();
            if !self.routes(event.name()) {
                continue;
            }
            let notice = Notice::of(event, identity);
            rows.extend(self.rows_for(&notice, None));
        }
        rows
    }

    /// Every channel (the implicit `log` included), for events that go everywhere unless a
    /// route says otherwise (`run.needs_person`).
    pub fn every_channel(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    /// The rows of one notice: to the routed channels, or to `only` (a `notify` job names
    /// its channels itself).
    pub fn rows_for(&self, notice: &Notice, only: Option<&[String]>) -> Vec<OutboxRow> {
        let channels: Vec<&str> = match only {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => self.channels_for(&notice.event, notice.severity),
        };
        channels
            .into_iter()
            .map(|channel| OutboxRow {
                event: notice.event.clone(),
                severity: notice.severity.as_str(),
                subject: notice.subject.clone(),
                body: notice.body.clone(),
                data: notice.data.clone(),
                channel: channel.to_string(),
                dedupe_key: format!("{}|{channel}", notice.key),
            })
            .collect()
    }

    /// How long a claimed notification stays with the node delivering it: the slowest
    /// channel's timeout plus slack. A node that dies mid-delivery releases it after this.
    pub fn claim_timeout(&self) -> std::time::Duration {
        self.channels
            .values()
            .filter(|c| c.kind != ChannelType::Log)
            .map(|c| c.timeout)
            .max()
            .unwrap_or_default()
            + std::time::Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::settings::RouteConfig;
    use super::*;

    fn cfg(routes: Vec<RouteConfig>) -> NotifyConfig {
        let mut c = NotifyConfig::shipped().unwrap();
        c.channels.push(ChannelConfig::log("ops"));
        c.routes = routes;
        c
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "job.failed"));
        assert!(pattern_matches("job.*", "job.failed"));
        assert!(!pattern_matches("job.*", "run.zombie"));
        assert!(pattern_matches("run.zombie", "run.zombie"));
        assert!(!pattern_matches("run.zombie", "run.zombies"));
    }

    #[test]
    fn default_route_sends_default_events_to_every_channel() {
        let r = Routing::from_config(&cfg(vec![]));
        assert_eq!(
            r.channels_for("job.failed", Severity::Error),
            vec!["log", "ops"]
        );
        assert!(r.channels_for("job.executed", Severity::Info).is_empty());
        assert!(!r.routes("job.executed"));
    }

    #[test]
    fn rules_filter_by_severity_and_dedupe_channels() {
        let r = Routing::from_config(&cfg(vec![
            RouteConfig {
                events: vec!["job.*".into()],
                min_severity: Severity::Error,
                channels: vec!["ops".into()],
            },
            RouteConfig {
                events: vec!["*".into()],
                min_severity: Severity::Warning,
                channels: vec!["ops".into(), "log".into()],
            },
        ]));
        assert_eq!(
            r.channels_for("job.failed", Severity::Error),
            vec!["ops", "log"]
        );
        assert_eq!(
            r.channels_for("job.error", Severity::Warning),
            vec!["ops", "log"]
        );
        assert!(r.channels_for("job.executed", Severity::Info).is_empty());
    }

    #[test]
    fn rows_carry_a_key_per_channel() {
        let r = Routing::from_config(&cfg(vec![]));
        let id = uuid::Uuid::nil();
        let rows = r.rows([(
            Event::JobFailed {
                job: "j".to_string(),
                reason: "x".to_string(),
            },
            id.to_string(),
        )]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].dedupe_key, format!("job.failed:{id}|log"));
        assert_eq!(rows[1].dedupe_key, format!("job.failed:{id}|ops"));
        assert_eq!(rows[0].severity, "error");
    }
}
