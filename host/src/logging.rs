//! Structured logs through `tracing`, human-readable by default or JSON, always written through
//! the scrubber so that no secret value reaches a log line. Spans (`invocation`, `sync_page`,
//! `outbound`, `request`) carry ids and names only: never a URL query or a header value.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::scrub::Scrubber;

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
/// `airlock=debug`); `RUST_LOG` overrides it when set.
pub fn init(level: &str, json: bool, scrubber: Scrubber) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = ScrubbingStderr { scrubber };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        // Each line names its target (`airlock::access` for the access log) and every span it
        // runs in (`spans`: request, sync page, invocation, outbound request, outermost first)
        // with their fields, so one invocation id can be followed through every line.
        builder
            .json()
            .with_target(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
