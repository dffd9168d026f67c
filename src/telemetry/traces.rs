//! OpenTelemetry export of the spans (`[traces]`): a `tracing` layer whose finished spans a
//! batch processor (a thread of its own) sends to the collector over OTLP/HTTP, protobuf.
//!
//! The spans: each API request (its route template, method, status, request id, caller's
//! token name), each run (`run`: the job, run id, kind, attempt, outcome) with the quota gate
//! and the kind's work under it, and inside a browser run one span per script step. A run's
//! span is the root of its trace. No secret is ever a field: token names, not tokens; no
//! header, URL query, typed text or payload.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing_subscriber::registry::LookupSpan;

use super::settings::TracesConfig;

#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// Keeps the exporter alive; dropping it sends what is left (at most `timeout`).
pub struct Traces {
    provider: SdkTracerProvider,
    timeout: Duration,
}

impl Drop for Traces {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown_with_timeout(self.timeout);
    }
}

/// The layer that exports spans, and its guard.
pub fn layer<S>(
    cfg: &TracesConfig,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        Traces,
    ),
    TracesError,
>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(cfg.timeout)
        .build()
        .map_err(|e| TracesError::Exporter(e.to_string()))?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(cfg.export_interval)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("overseer");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false);
    Ok((
        layer,
        Traces {
            provider,
            timeout: cfg.timeout,
        },
    ))
}

/// The endpoint as it may be logged: scheme, host, port and path (no user or password).
pub fn shown_endpoint(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}
