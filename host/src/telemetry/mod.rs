//! OpenTelemetry export of the daemon's spans over OTLP/HTTP (cargo feature `otlp`, on in the
//! default build). `airlock serve` starts it when `[telemetry] otlp_endpoint` or the
//! OpenTelemetry environment names a receiver; otherwise nothing is set up and nothing runs.
//!
//! Spans are queued in memory and sent in batches from a thread of their own: a slow or absent
//! receiver never holds up an invocation (a full queue drops spans). Every string a span
//! carries passes the secret scrubber before it leaves (`scrubbing`).

use crate::config::OutboundSettings;
use crate::config::TelemetryConfig;
use crate::scrub::Scrubber;

#[cfg(feature = "otlp")]
mod client;
#[cfg(feature = "otlp")]
mod scrubbing;

/// The running export; [`Exporting::shutdown`] sends what is queued.
pub struct Exporting {
    #[cfg(feature = "otlp")]
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
    /// Where spans go (for the log).
    pub traces_url: String,
}

/// Starts exporting when `config` names a receiver: None when it does not. Must run inside the
/// tokio runtime, which carries the exporter's requests.
pub fn start(
    config: &TelemetryConfig,
    outbound: &OutboundSettings,
    scrubber: Scrubber,
) -> anyhow::Result<Option<Exporting>> {
    let Some(url) = &config.traces_url else {
        return Ok(None);
    };
    imp::start(url, config, outbound, scrubber)
}

impl Exporting {
    /// Sends the spans still queued (waiting at most a few seconds for the receiver) and stops
    /// the export thread. Blocking: call it off the async workers.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        {
            if let Err(e) = self
                .provider
                .shutdown_with_timeout(std::time::Duration::from_secs(5))
            {
                tracing::warn!("span export did not finish: {e}");
            }
        }
    }
}

#[cfg(feature = "otlp")]
mod imp {
    use std::time::Duration;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};

    use super::*;

    /// How long one export may take, retries included.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    pub(super) fn start(
        url: &str,
        config: &TelemetryConfig,
        outbound: &OutboundSettings,
        scrubber: Scrubber,
    ) -> anyhow::Result<Option<Exporting>> {
        let client =
            client::RuntimeClient::new(tokio::runtime::Handle::current(), outbound, EXPORT_TIMEOUT);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let exporter = scrubbing::Scrubbing::new(exporter, scrubber, url.to_string());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("airlock"))
            .with_threads(false);
        if !crate::logging::export_spans(Box::new(layer)) {
            // Another subscriber (a test's) or an earlier start owns the spans.
            let _ = provider.shutdown();
            return Ok(None);
        }
        Ok(Some(Exporting {
            provider,
            traces_url: url.to_string(),
        }))
    }
}

#[cfg(not(feature = "otlp"))]
mod imp {
    use super::*;

    pub(super) fn start(
        url: &str,
        _: &TelemetryConfig,
        _: &OutboundSettings,
        _: Scrubber,
    ) -> anyhow::Result<Option<Exporting>> {
        tracing::warn!(
            "spans are not exported to {url}: this build has no OTLP export (cargo feature `otlp`)"
        );
        Ok(None)
    }
}
