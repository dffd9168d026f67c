//! Configuration: layered loading, validation, and the effective view printed by
//! `overseer config check`.
//!
//! Layers (later wins): the compiled-in `config/default.toml`, then the file named by
//! `--config` / `OVERSEER_CONFIG`, then the aliases `DATABASE_URL` and `ANTI_DETECTION_ENABLED`,
//! then `OVERSEER__SECTION__KEY` environment variables (the canonical spelling wins over an
//! alias). Every error names the key, the layer it came from (file path or environment
//! variable) and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::database_url::DatabaseUrl;
use crate::kinds::command::settings::CommandConfig;
use crate::notify::settings::NotifyConfig;
use crate::telemetry::settings::{LogConfig, TracesConfig};

/// The compiled-in defaults: the same file users read in `config/default.toml`.
pub const DEFAULTS_TOML: &str = include_str!("../../config/default.toml");

const ENV_PREFIX: &str = "OVERSEER__";

pub mod database_url;
mod load;
mod validate;

pub use load::{load, Loaded, Sources};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub traces: TracesConfig,
    pub flags: Flags,
    pub supervisor: SupervisorConfig,
    pub node: NodeConfig,
    pub scheduler: SchedulerConfig,
    pub runs: RunsConfig,
    pub zombie: ZombieConfig,
    pub notify: NotifyConfig,
    pub browser: BrowserConfig,
    pub command: CommandConfig,
    pub ui: UiConfig,
    pub auth: AuthConfig,
    pub debug: DebugConfig,
    /// Declarative jobs (`[[jobs]]`), upserted by name at start-up.
    #[serde(default)]
    pub jobs: Vec<serde_json::Value>,
    /// Declarative quotas (`[[quotas]]`), upserted by name at start-up.
    #[serde(default)]
    pub quotas: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Run the scheduler and executor on this node.
    pub enabled: bool,
    /// The longest the scheduler sleeps between two looks at the tables.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Jobs fired per transaction.
    pub batch_size: u32,
    /// Runs executing at once on this node.
    pub max_concurrency: u32,
    /// How often in-flight runs refresh `heartbeat_at`.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Largest stored run output, in bytes (larger outputs are truncated).
    pub max_output_bytes: usize,
    /// Extra declarative job files: every `*.toml` in this directory (each `[[jobs]]`).
    #[serde(default)]
    pub jobs_dir: Option<PathBuf>,
    pub defaults: crate::jobs::policy::PolicyDefaults,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZombieConfig {
    /// How often the leader sweeps for zombie runs (also at once when a node goes silent).
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// A node whose `last_seen` is older than this is gone; its running runs are zombies.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
    /// A running run whose `heartbeat_at` is older than this is a zombie (a frozen worker).
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Slack after a job's `timeout` before the sweep calls the run a zombie.
    #[serde(with = "humantime_serde")]
    pub timeout_grace: Duration,
    /// Leadership lease; renewed every third of it. A dead leader is replaced within 2× it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

/// `[browser]`: Chromium sessions for `browser` jobs.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// Chromium's path; empty: `chromium` found on PATH.
    pub executable: String,
    /// Browsers (profiles) running at once on this node.
    pub max_browsers: u32,
    /// Pages one browser has open for runs at once (more runs wait for a slot).
    pub max_pages: u32,
    /// A browser unused this long is closed (and relaunched on demand).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long Chromium may take to start.
    #[serde(with = "humantime_serde")]
    pub launch_timeout: Duration,
    /// A live view nobody has touched (no input) this long ends by itself.
    #[serde(with = "humantime_serde")]
    pub live_idle: Duration,
    /// Default limit per step (a step or job can set its own).
    #[serde(with = "humantime_serde")]
    pub step_timeout: Duration,
    /// Circuit breaker per domain: open after this many consecutive failed runs ...
    pub circuit_failures: u32,
    /// ... for this long, doubling with each consecutive opening ...
    #[serde(with = "humantime_serde")]
    pub circuit_open: Duration,
    /// ... up to this.
    #[serde(with = "humantime_serde")]
    pub circuit_open_max: Duration,
    /// Minimum time between two navigations to one domain (zero: none).
    #[serde(with = "humantime_serde")]
    pub min_navigation_interval: Duration,
    /// Per-domain overrides of `min_navigation_interval` (a domain covers its subdomains).
    #[serde(default)]
    pub navigation_intervals: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Check robots.txt before each navigation (refused: error kind `robots_disallowed`).
    pub robots_txt: bool,
    /// Our product token for robots.txt groups.
    pub robots_user_agent: String,
    /// Browser scripts: blocks (`for_each`, `if`, `once`) nest at most this deep ...
    pub max_script_depth: usize,
    /// ... and a script has at most this many steps in all.
    pub max_script_steps: usize,
    /// Secrets for `type` steps (`text = {secret = "NAME"}`); also read from the environment
    /// as OVERSEER_SECRET_<NAME>. Never printed.
    #[serde(default, skip_serializing)]
    pub secrets: BTreeMap<String, String>,
}

impl fmt::Debug for BrowserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserConfig")
            .field("executable", &self.executable)
            .field("max_browsers", &self.max_browsers)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `[ui]`: the web dashboard at `/ui/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// A dashboard session unused this long expires (log in again).
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunsConfig {
    /// Terminal runs older than this are pruned (succeeded, missed, cancelled).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Failed, timed-out and zombie runs (dead letters) are kept this long.
    #[serde(with = "humantime_serde")]
    pub failed_retention: Duration,
    /// How often the pruning runs (on one node at a time).
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Raw as configured; [`Config::database_url`] is the parsed, normalised form.
    #[serde(default, skip_serializing)]
    pub url: Option<String>,
    pub pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    pub migrate_on_start: bool,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().map(|u| match DatabaseUrl::parse(u) {
            Ok(url) => url.redacted(),
            Err(_) => "<invalid>".to_string(),
        });
        f.debug_struct("DatabaseConfig")
            .field("url", &url)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub body_limit: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    pub workers: usize,
    pub rate_limit: RateLimitConfig,
    /// Reverse proxies whose `X-Forwarded-For` is believed: behind one, a client's address
    /// (for the anonymous rate limit) is the last address in the header that is not a
    /// trusted proxy. Empty: the peer's address, whatever headers say.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `[server.rate_limit]`: requests per second and burst of each budget.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per token (or dashboard session's token).
    pub rate: u32,
    pub burst: u32,
    /// Quota consume/refund and run tokens.
    pub scripts_rate: u32,
    pub scripts_burst: u32,
    /// Per source address, for requests without valid credentials.
    pub anonymous_rate: u32,
    pub anonymous_burst: u32,
}

/// Feature flags: one place, each overridable by environment, read-only over the API.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    pub anti_detection: bool,
    pub zombie_detection: bool,
    pub notifications: bool,
    pub quota_enforcement: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub exit_on_meltdown: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, and changes jobs and quotas.
    Operator,
    /// Everything, including actors and flags.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: expected viewer, operator or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token. Shown shortened by `config check`.
    #[serde(serialize_with = "shorten_hash")]
    pub sha256: String,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn shorten_hash<S: serde::Serializer>(hash: &str, s: S) -> Result<S::Ok, S::Error> {
    let head: String = hash.chars().take(8).collect();
    s.serialize_str(&format!("{head}…"))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    pub fault_injection: bool,
}

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Defaults,
    File(PathBuf),
    Env(String),
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("built-in defaults"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Unknown => f.write_str("unknown source"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("configuration key `{key}` (from {origin}): {expected}")]
    Key {
        key: String,
        origin: Origin,
        expected: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Config {
    /// The configured database URL, normalised. `None`: use the managed cluster.
    pub fn database_url(&self) -> Option<DatabaseUrl> {
        self.database
            .url
            .as_deref()
            .and_then(|u| DatabaseUrl::parse(u).ok())
    }

    pub fn bind_addr(&self) -> SocketAddr {
        self.server
            .bind
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// The effective configuration as TOML, secrets redacted (for `overseer config check`).
    pub fn effective_toml(&self) -> String {
        let mut value = match toml::Value::try_from(self) {
            Ok(v) => v,
            Err(e) => return format!("# cannot render configuration: {e}\n"),
        };
        if let (Some(db), Some(url)) = (
            value.get_mut("database").and_then(|d| d.as_table_mut()),
            self.database_url(),
        ) {
            db.insert("url".into(), toml::Value::String(url.redacted()));
        }
        toml::to_string_pretty(&value).unwrap_or_default()
    }

    pub fn state_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.state_dir.join(rel)
    }

    /// The flags as a name → value map (for logs and the API).
    pub fn flag_map(&self) -> BTreeMap<&'static str, bool> {
        let f = &self.flags;
        BTreeMap::from([
            ("anti_detection", f.anti_detection),
            ("zombie_detection", f.zombie_detection),
            ("notifications", f.notifications),
            ("quota_enforcement", f.quota_enforcement),
        ])
    }
}

#[cfg(test)]
mod tests;
