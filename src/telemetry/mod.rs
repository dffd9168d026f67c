//! Logs and metrics set-up. Metric names live in [`names`], events in [`events`].

pub mod events;
pub mod names;
pub mod settings;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use self::settings::{LogConfig, LogFormat};

/// Initialises the global tracing subscriber (once; later calls are ignored).
pub fn init_logging(cfg: &LogConfig) {
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and describes every metric.
/// The handle is rendered at `/metrics`; overseer runs no exporter listener of its own.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_string()),
                    names::SECONDS_BUCKETS,
                )
                .and_then(|b| b.install_recorder())
                .unwrap_or_else(|e| {
                    // Another recorder is installed (only possible in tests embedding us):
                    // keep a private one so /metrics still renders.
                    tracing::warn!(error = %e, "global metrics recorder already installed");
                    PrometheusBuilder::new().build_recorder().handle()
                });
            names::describe_all();
            metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
