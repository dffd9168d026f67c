//! `[log]` settings (part of `config::Config`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// `[traces]`: OpenTelemetry export of the spans (OTLP over HTTP, protobuf).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    pub enabled: bool,
    /// The collector's traces URL (OTLP/HTTP), e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    pub service_name: String,
    /// The share of traces kept, 0.0 to 1.0 (decided at each trace's root).
    pub sample_ratio: f64,
    /// How often finished spans are sent, in batches.
    #[serde(with = "humantime_serde")]
    pub export_interval: std::time::Duration,
    /// Timeout of one export request.
    #[serde(with = "humantime_serde")]
    pub timeout: std::time::Duration,
}
