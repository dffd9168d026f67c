//! Validation of every section: each error names the key, its source and what was expected.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::database_url::DatabaseUrl;
use crate::notify::settings::{ChannelType, SmtpTls};

use super::*;

impl Loaded {
    pub(crate) fn bad(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key: key.to_string(),
            origin: self.origin(key),
            expected: expected.into(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if let Some(url) = &c.database.url {
            DatabaseUrl::parse(url)
                .map_err(|e| self.bad("database.url", format!("the URL {e}")))?;
        }
        if c.database.pool_size == 0 || c.database.pool_size > 1000 {
            return Err(self.bad("database.pool_size", "a number from 1 to 1000"));
        }
        if c.database.connect_timeout.is_zero() {
            return Err(self.bad("database.connect_timeout", "a duration above zero"));
        }
        c.server.bind.parse::<SocketAddr>().map_err(|_| {
            self.bad(
                "server.bind",
                "an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\"",
            )
        })?;
        let rl = &c.server.rate_limit;
        for (key, n) in [
            ("rate", rl.rate),
            ("burst", rl.burst),
            ("scripts_rate", rl.scripts_rate),
            ("scripts_burst", rl.scripts_burst),
            ("anonymous_rate", rl.anonymous_rate),
            ("anonymous_burst", rl.anonymous_burst),
        ] {
            if n == 0 || n > 1_000_000 {
                return Err(self.bad(
                    &format!("server.rate_limit.{key}"),
                    "a number of requests from 1 to 1000000",
                ));
            }
        }
        if c.server.body_limit < 1024 {
            return Err(self.bad("server.body_limit", "at least 1024 bytes"));
        }
        tracing_subscriber::EnvFilter::try_new(&c.log.level).map_err(|e| {
            self.bad(
                "log.level",
                format!("a tracing filter such as \"info\" ({e})"),
            )
        })?;
        let t = &c.traces;
        match url::Url::parse(&t.endpoint) {
            Ok(u) if ["http", "https"].contains(&u.scheme()) && u.host().is_some() => {}
            _ => {
                return Err(self.bad(
                    "traces.endpoint",
                    "an http:// or https:// URL, like \"http://127.0.0.1:4318/v1/traces\"",
                ))
            }
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return Err(self.bad("traces.sample_ratio", "a number from 0.0 to 1.0"));
        }
        if t.service_name.trim().is_empty() {
            return Err(self.bad("traces.service_name", "a name, like \"overseer\""));
        }
        for (key, d) in [
            ("export_interval", t.export_interval),
            ("timeout", t.timeout),
        ] {
            if d.is_zero() || d > std::time::Duration::from_secs(3600) {
                return Err(self.bad(
                    &format!("traces.{key}"),
                    "a duration above zero and at most 1h",
                ));
            }
        }
        let s = &c.supervisor;
        if s.restart_window.is_zero() {
            return Err(self.bad("supervisor.restart_window", "a duration above zero"));
        }
        if s.backoff_initial.is_zero() {
            return Err(self.bad("supervisor.backoff_initial", "a duration above zero"));
        }
        if s.backoff_max < s.backoff_initial {
            return Err(self.bad(
                "supervisor.backoff_max",
                "a duration at least supervisor.backoff_initial",
            ));
        }
        let sc = &c.scheduler;
        if sc.poll_interval < Duration::from_millis(10)
            || sc.poll_interval > Duration::from_secs(60)
        {
            return Err(self.bad("scheduler.poll_interval", "a duration from 10ms to 60s"));
        }
        if sc.batch_size == 0 || sc.batch_size > 10_000 {
            return Err(self.bad("scheduler.batch_size", "a number from 1 to 10000"));
        }
        if sc.max_concurrency == 0 || sc.max_concurrency > 100_000 {
            return Err(self.bad("scheduler.max_concurrency", "a number from 1 to 100000"));
        }
        if sc.heartbeat_interval < Duration::from_millis(100) {
            return Err(self.bad("scheduler.heartbeat_interval", "at least 100ms"));
        }
        if sc.defaults.retry_delays.is_empty() {
            return Err(self.bad("scheduler.defaults.retry_delays", "at least one duration"));
        }
        if sc.defaults.priority > 9 {
            return Err(self.bad("scheduler.defaults.priority", "a number from 0 to 9"));
        }
        if c.runs.retention.is_zero() || c.runs.failed_retention.is_zero() {
            return Err(self.bad("runs.retention", "durations above zero"));
        }
        if c.runs.prune_interval < Duration::from_secs(1) {
            return Err(self.bad("runs.prune_interval", "at least 1s"));
        }
        let z = &c.zombie;
        if z.sweep_interval < Duration::from_secs(1) {
            return Err(self.bad("zombie.sweep_interval", "at least 1s"));
        }
        if z.lease < Duration::from_millis(300) {
            return Err(self.bad("zombie.lease", "at least 300ms"));
        }
        if z.node_timeout <= c.node.heartbeat_interval {
            return Err(self.bad(
                "zombie.node_timeout",
                "a duration longer than node.heartbeat_interval (or live nodes look dead)",
            ));
        }
        if z.heartbeat_timeout <= c.scheduler.heartbeat_interval {
            return Err(self.bad(
                "zombie.heartbeat_timeout",
                "a duration longer than scheduler.heartbeat_interval (or live runs look dead)",
            ));
        }
        if c.node.heartbeat_interval < Duration::from_millis(100) {
            return Err(self.bad("node.heartbeat_interval", "at least 100ms"));
        }
        self.validate_notify()?;
        self.validate_command()?;
        if c.ui.session_idle < Duration::from_secs(60)
            || c.ui.session_idle > Duration::from_secs(30 * 86_400)
        {
            return Err(self.bad("ui.session_idle", "a duration from 1m to 30days"));
        }
        let b = &c.browser;
        if b.max_browsers == 0 || b.max_browsers > 64 {
            return Err(self.bad("browser.max_browsers", "a number from 1 to 64"));
        }
        if b.max_pages == 0 || b.max_pages > 64 {
            return Err(self.bad("browser.max_pages", "a number from 1 to 64"));
        }
        if b.max_script_depth == 0 || b.max_script_depth > 16 {
            return Err(self.bad("browser.max_script_depth", "a number from 1 to 16"));
        }
        if b.max_script_steps == 0 || b.max_script_steps > 10_000 {
            return Err(self.bad("browser.max_script_steps", "a number from 1 to 10000"));
        }
        for domain in b.navigation_intervals.keys() {
            let ok = !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
            if !ok {
                return Err(self.bad(
                    &format!("browser.navigation_intervals.{domain}"),
                    "a lower-case domain name like \"example.com\"",
                ));
            }
        }
        if b.robots_user_agent.is_empty()
            || !b
                .robots_user_agent
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self.bad(
                "browser.robots_user_agent",
                "a product token of letters, digits, - and _",
            ));
        }
        if b.launch_timeout < Duration::from_secs(1) {
            return Err(self.bad("browser.launch_timeout", "at least 1s"));
        }
        if b.step_timeout < Duration::from_millis(100) {
            return Err(self.bad("browser.step_timeout", "at least 100ms"));
        }
        if b.circuit_failures == 0 {
            return Err(self.bad("browser.circuit_failures", "at least 1"));
        }
        if b.circuit_open.is_zero() || b.circuit_open_max < b.circuit_open {
            return Err(self.bad(
                "browser.circuit_open_max",
                "durations above zero, circuit_open_max at least circuit_open",
            ));
        }
        if b.idle_timeout < Duration::from_secs(1) {
            return Err(self.bad("browser.idle_timeout", "at least 1s"));
        }
        if b.live_idle < Duration::from_secs(1) {
            return Err(self.bad("browser.live_idle", "at least 1s"));
        }
        for name in b.secrets.keys() {
            if !crate::stdx::names::secret(name) {
                return Err(self.bad(
                    &format!("browser.secrets.{name}"),
                    "a name of capitals, digits and _ (like SITE_PASSWORD)",
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, token) in c.auth.tokens.iter().enumerate() {
            let key = format!("auth.tokens.{i}");
            if token.name.trim().is_empty() {
                return Err(self.bad(&format!("{key}.name"), "a non-empty name"));
            }
            if !names.insert(token.name.as_str()) {
                return Err(self.bad(&format!("{key}.name"), "a name no other token uses"));
            }
            if token.sha256.len() != 64 || !token.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(self.bad(
                    &format!("{key}.sha256"),
                    "64 hex digits (the SHA-256 printed by `overseer token new`)",
                ));
            }
        }
        Ok(())
    }
}

impl Loaded {
    fn validate_command(&self) -> Result<(), ConfigError> {
        use crate::kinds::command::settings::plain_absolute;
        let c = &self.config.command;
        for (i, g) in c.allowed.iter().enumerate() {
            if !plain_absolute(Path::new(g)) || g.contains('\0') {
                return Err(self.bad(
                    &format!("command.allowed.{i}"),
                    "an absolute path or glob like \"/opt/automations/*\" (no . or .. parts)",
                ));
            }
        }
        for (i, name) in c.pass_env.iter().enumerate() {
            let ok =
                !name.is_empty() && !name.contains(['=', '\0']) && !name.starts_with("OVERSEER_");
            if !ok {
                return Err(self.bad(
                    &format!("command.pass_env.{i}"),
                    "an environment variable name (not OVERSEER_*)",
                ));
            }
        }
        if c.path.is_empty() || c.path.split(':').any(|d| !d.starts_with('/')) {
            return Err(self.bad(
                "command.path",
                "absolute directories separated by `:`, like \"/usr/local/bin:/usr/bin:/bin\"",
            ));
        }
        if !c.work_dir.is_empty() && !plain_absolute(Path::new(&c.work_dir)) {
            return Err(self.bad("command.work_dir", "an absolute directory, or empty"));
        }
        Ok(())
    }

    fn validate_notify(&self) -> Result<(), ConfigError> {
        let n = &self.config.notify;
        if n.poll_interval < Duration::from_millis(10) || n.poll_interval > Duration::from_secs(60)
        {
            return Err(self.bad("notify.poll_interval", "a duration from 10ms to 60s"));
        }
        if n.batch_size == 0 || n.batch_size > 10_000 {
            return Err(self.bad("notify.batch_size", "a number from 1 to 10000"));
        }
        if n.concurrency == 0 || n.concurrency > 1024 {
            return Err(self.bad("notify.concurrency", "a number from 1 to 1024"));
        }
        if n.max_attempts == 0 {
            return Err(self.bad("notify.max_attempts", "at least 1"));
        }
        if n.backoff_initial.is_zero() {
            return Err(self.bad("notify.backoff_initial", "a duration above zero"));
        }
        if n.backoff_max < n.backoff_initial {
            return Err(self.bad(
                "notify.backoff_max",
                "a duration at least notify.backoff_initial",
            ));
        }
        if n.retention.is_zero() {
            return Err(self.bad("notify.retention", "a duration above zero"));
        }
        let mut names = std::collections::BTreeSet::from([crate::notify::LOG_CHANNEL.to_string()]);
        let mut seen = std::collections::BTreeSet::new();
        for (i, ch) in n.channels.iter().enumerate() {
            let key = |f: &str| format!("notify.channels.{i}.{f}");
            let name_ok = !ch.name.is_empty()
                && ch.name.len() <= 64
                && ch
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok {
                return Err(self.bad(
                    &key("name"),
                    "a name of letters, digits, - _ . (at most 64)",
                ));
            }
            if !seen.insert(ch.name.clone()) {
                return Err(self.bad(&key("name"), "a name no other channel uses"));
            }
            names.insert(ch.name.clone());
            if ch.timeout.is_zero() || ch.timeout > Duration::from_secs(300) {
                return Err(self.bad(&key("timeout"), "a duration above zero, at most 5m"));
            }
            match ch.kind {
                ChannelType::Log => {}
                ChannelType::Webhook => {
                    match ch.url.as_deref().map(url::Url::parse) {
                        Some(Ok(u)) if u.scheme() == "http" || u.scheme() == "https" => {}
                        Some(_) => return Err(self.bad(&key("url"), "an http:// or https:// URL")),
                        None => return Err(self.bad(&key("url"), "the URL to POST to (required)")),
                    }
                    for (h, v) in &ch.headers {
                        let ok = reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_ok()
                            && reqwest::header::HeaderValue::from_str(v).is_ok();
                        if !ok {
                            return Err(self.bad(
                                &format!("notify.channels.{i}.headers.{h}"),
                                "a valid header name and value",
                            ));
                        }
                    }
                    if ch.secret.as_deref().is_some_and(str::is_empty) {
                        return Err(self.bad(&key("secret"), "a non-empty HMAC key, or no key"));
                    }
                }
                ChannelType::Email => {
                    if ch.host.as_deref().is_none_or(str::is_empty) {
                        return Err(
                            self.bad(&key("host"), "the SMTP server's host name (required)")
                        );
                    }
                    let mailbox = |s: &str| s.parse::<lettre::message::Mailbox>().is_ok();
                    match ch.from.as_deref() {
                        Some(f) if mailbox(f) => {}
                        _ => {
                            return Err(self.bad(
                                &key("from"),
                                "a sender address like \"overseer <overseer@example.org>\"",
                            ))
                        }
                    }
                    if ch.to.is_empty() {
                        return Err(self.bad(&key("to"), "at least one recipient address"));
                    }
                    for (j, to) in ch.to.iter().enumerate() {
                        if !mailbox(to) {
                            return Err(self
                                .bad(&format!("notify.channels.{i}.to.{j}"), "an email address"));
                        }
                    }
                    if ch.username.is_some() != ch.password.is_some() {
                        return Err(self.bad(
                            &key("password"),
                            "username and password together (or neither)",
                        ));
                    }
                    if let Some(f) = &ch.ca_file {
                        let pem = std::fs::read(f).unwrap_or_default();
                        if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
                            return Err(
                                self.bad(&key("ca_file"), "a readable PEM file with a certificate")
                            );
                        }
                        if ch.tls == SmtpTls::None {
                            return Err(self.bad(&key("ca_file"), "tls = \"starttls\" or \"tls\""));
                        }
                    }
                }
            }
        }
        for (i, r) in n.routes.iter().enumerate() {
            if r.events.is_empty() || r.events.iter().any(|e| e.trim().is_empty()) {
                return Err(self.bad(
                    &format!("notify.routes.{i}.events"),
                    "event names or patterns like \"job.failed\", \"job.*\", \"*\"",
                ));
            }
            if r.channels.is_empty() {
                return Err(self.bad(
                    &format!("notify.routes.{i}.channels"),
                    "at least one channel",
                ));
            }
            for (j, c) in r.channels.iter().enumerate() {
                if !names.contains(c) {
                    return Err(self.bad(
                        &format!("notify.routes.{i}.channels.{j}"),
                        format!("a channel defined in [[notify.channels]] (`{c}` is not)"),
                    ));
                }
            }
        }
        Ok(())
    }
}
