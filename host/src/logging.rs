//! Structured logs through `tracing`, human-readable by default or JSON, always written through
//! the scrubber so that no secret value reaches a log line. Spans (`invocation`, `sync_page`,
//! `outbound`, `request`) carry ids and names only: never a URL query or a header value.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, filter, reload};

use crate::scrub::Scrubber;

/// A layer that sends spans elsewhere (the OTLP exporter of `telemetry`), installed once
/// `airlock serve` has read its config.
pub type ExportLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Where [`export_spans`] puts the exporting layer; set by [`init`].
static EXPORT_SLOT: OnceLock<reload::Handle<Option<ExportLayer>, Registry>> = OnceLock::new();

/// Whether spans are exported. Until they are, the export slot's filter turns every callsite
/// away, so a daemon without an endpoint does no work for export at all.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// What is exported: the host's own spans and the events inside them at `info` and above,
/// whatever the log filter lets through (a library's debug spans, or a quieter log, change
/// nothing there).
fn exported(meta: &Metadata<'_>) -> bool {
    EXPORTING.load(Ordering::Relaxed)
        && *meta.level() <= tracing::Level::INFO
        && (meta.target() == "airlock" || meta.target().starts_with("airlock::"))
}

/// Installs `layer` in the export slot: from now on it sees the host's spans (see
/// `exported`). False when [`init`] did not install the slot (another subscriber was
/// already set, as in tests) or a layer was installed before.
pub fn export_spans(layer: ExportLayer) -> bool {
    let Some(slot) = EXPORT_SLOT.get() else {
        return false;
    };
    if EXPORTING.swap(true, Ordering::SeqCst) {
        return false;
    }
    // The reload rebuilds every callsite's interest, which the flag above has just changed.
    slot.reload(Some(layer)).is_ok()
}

/// A stderr writer that scrubs each formatted event before it is written.
#[derive(Clone)]
pub struct ScrubbingStderr {
    scrubber: Scrubber,
}

impl Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&self.scrubber.scrub_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for ScrubbingStderr {
    type Writer = ScrubbingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global subscriber. `level` is an EnvFilter directive (e.g. `info`,
/// `airlock=debug`); `RUST_LOG` overrides it when set. It filters the log lines only; the
/// export slot (empty until [`export_spans`]) has its own filter.
pub fn init(level: &str, json: bool, scrubber: Scrubber) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = ScrubbingStderr { scrubber };
    let (slot, handle) = reload::Layer::new(None::<ExportLayer>);
    // Cached per callsite (re-asked when the slot is filled): a never, while nothing exports.
    let export_filter = filter::filter_fn(exported).with_max_level_hint(LevelFilter::INFO);
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = if json {
        // Each line names its target (`airlock::access` for the access log) and every span it
        // runs in (`spans`: request, sync page, invocation, outbound request, outermost first)
        // with their fields, so one invocation id can be followed through every line.
        lines
            .json()
            .with_target(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed()
    } else {
        lines.with_target(false).boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(slot.with_filter(export_filter))
        .with(lines.with_filter(filter))
        .try_init();
    if installed.is_ok() {
        let _ = EXPORT_SLOT.set(handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hosts_own_spans_at_info_and_above_are_exported_once_exporting() {
        // The registry enables every callsite, so each span has its metadata.
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let host = tracing::info_span!(target: "airlock::sync", "sync_page");
            let warn = tracing::warn_span!(target: "airlock", "w");
            let debug = tracing::debug_span!(target: "airlock::sync", "d");
            let library = tracing::info_span!(target: "h2::proto", "poll");
            let lookalike = tracing::info_span!(target: "airlockish", "x");
            let exp = |s: &tracing::Span| s.metadata().is_some_and(exported);
            EXPORTING.store(false, Ordering::SeqCst);
            assert!(!exp(&host), "nothing before export starts");
            EXPORTING.store(true, Ordering::SeqCst);
            assert!(exp(&host) && exp(&warn));
            assert!(!exp(&debug) && !exp(&library) && !exp(&lookalike));
            EXPORTING.store(false, Ordering::SeqCst);
        });
    }
}
