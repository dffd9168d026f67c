//! `[notify]` settings: the outbox's delivery, channels and routing rules (part of
//! `config::Config`, which aggregates every section; validated there).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[notify]`: the outbox's delivery, channels and routing rules.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often each node looks for pending notifications.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Notifications claimed per round.
    pub batch_size: u32,
    /// Deliveries in flight at once on a node.
    pub concurrency: u32,
    /// Attempts before a notification is marked `failed`.
    pub max_attempts: u32,
    /// Retry backoff: starts here, doubles per attempt, capped at `backoff_max`.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Sent and failed notifications older than this are pruned (by the leader).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl NotifyConfig {
    /// The shipped defaults (`config/default.toml`'s `[notify]`, which has no channel and
    /// no rule), for tests.
    pub fn shipped() -> Result<Self, String> {
        let table: toml::Table =
            toml::from_str(include_str!("../../config/default.toml")).map_err(|e| e.to_string())?;
        table
            .get("notify")
            .cloned()
            .ok_or("no [notify] in config/default.toml")?
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    Log,
    Webhook,
    Email,
}

impl ChannelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Log => "log",
            ChannelType::Webhook => "webhook",
            ChannelType::Email => "email",
        }
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (loopback relays only).
    None,
    /// Plain connect, then STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// `[[notify.channels]]`: one destination. Fields apply by `type`; validation names the ones
/// a type needs. Secrets (`secret`, `password`) are never printed.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// webhook, email: how long one delivery may take.
    #[serde(with = "humantime_serde", default = "default_channel_timeout")]
    pub timeout: Duration,
    /// webhook: where to POST. Shown without its path and query (chat webhook URLs carry
    /// their token there).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact_url"
    )]
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key; the signature goes in `X-Overseer-Signature: sha256=<hex>`.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// webhook: extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// email: SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// email: a PEM file of root certificates to trust besides the public ones (a relay
    /// with a private CA); the server's name is still verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

fn redact_url<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &u.as_deref()
            .map(crate::notify::channel::redact_url)
            .unwrap_or_default(),
    )
}

fn default_channel_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

impl ChannelConfig {
    pub fn log(name: &str) -> Self {
        Self {
            name: name.to_string(),
            kind: ChannelType::Log,
            timeout: default_channel_timeout(),
            url: None,
            secret: None,
            headers: BTreeMap::new(),
            host: None,
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: None,
            to: Vec::new(),
            ca_file: None,
        }
    }
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("type", &self.kind)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// `[[notify.routes]]`: events matching any pattern (`job.failed`, `job.*`, `*`) with at
/// least `min_severity` go to `channels`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub events: Vec<String>,
    #[serde(default = "default_min_severity")]
    pub min_severity: crate::telemetry::events::Severity,
    pub channels: Vec<String>,
}

fn default_min_severity() -> crate::telemetry::events::Severity {
    crate::telemetry::events::Severity::Info
}
