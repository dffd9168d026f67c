//! Logs and metrics set-up. Metric names live in [`names`], events in [`events`].

pub mod events;
pub mod names;
pub mod settings;
pub mod traces;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use self::settings::{LogConfig, LogFormat};

/// Initialises the global tracing subscriber (once; later calls are ignored): the log at
/// `[log]`'s level and format, and with `[traces] enabled` the OTLP export of spans at
/// info level and above (whatever the log's level). Keep the returned guard for the
/// process's lifetime: dropping it sends the last spans.
pub fn init_logging(cfg: &LogConfig, traces: &settings::TracesConfig) -> Option<traces::Traces> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let log = match cfg.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let (otel, guard, failed) = if traces.enabled {
        match traces::layer(traces) {
            Ok((layer, guard)) => (
                // overseer's own spans (runs, steps) are debug: they cost nothing unless
                // traces are exported; everything else from info.
                Some(
                    layer.with_filter(
                        tracing_subscriber::filter::Targets::new()
                            .with_target("overseer", tracing::Level::DEBUG)
                            .with_default(tracing::Level::INFO),
                    ),
                ),
                Some(guard),
                None,
            ),
            Err(e) => (None, None, Some(e)),
        }
    } else {
        (None, None, None)
    };
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(otel)
        .try_init();
    match (&guard, failed) {
        (Some(_), _) => tracing::info!(
            endpoint = %traces::shown_endpoint(&traces.endpoint),
            sample_ratio = traces.sample_ratio,
            "exporting traces over OTLP/HTTP"
        ),
        (None, Some(e)) => tracing::error!(error = %e, "traces are not exported"),
        _ => {}
    }
    guard
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
