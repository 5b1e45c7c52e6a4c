//! The progress board behind `host.progress` (contract 0.2.0): what a connector reports during a
//! long `sync` call, the latest report per stream, shown in the sync status, and the log rate
//! limit that keeps a chatty connector from flooding the log. The import itself is in
//! `host_imports.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A stream logs at most one progress line per interval; the status always has the latest.
pub const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Longest progress message kept (bytes); longer ones are cut at a char boundary.
pub const PROGRESS_MESSAGE_MAX: usize = 256;

/// The latest progress report of one stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportedProgress {
    /// Records (or upstream items) the run has covered, as the connector counts them.
    pub done: u64,
    /// The connector's estimate of the whole, when it has one.
    pub total: Option<u64>,
    /// Short note from the connector, scrubbed of secrets.
    pub message: String,
    /// When the host received it (RFC 3339).
    pub at: String,
}

struct Entry {
    latest: ReportedProgress,
    logged_at: Option<Instant>,
    /// Reports since the last logged one that were not logged.
    quiet: u64,
}

/// Per-connector board of the latest report per stream. Bounded: only the stream of the running
/// `sync` call may report (the invocation's state checks that), and a connector has a fixed set
/// of streams.
#[derive(Default)]
pub struct ProgressBoard {
    streams: Mutex<HashMap<String, Entry>>,
}

impl ProgressBoard {
    /// Records a report. Returns `Some(quiet)` when this report should be logged (the first of a
    /// stream, or the first after [`PROGRESS_LOG_INTERVAL`]), with how many reports were not
    /// logged since the previous logged one.
    pub fn report(&self, stream: &str, latest: ReportedProgress) -> Option<u64> {
        let Ok(mut m) = self.streams.lock() else {
            return None;
        };
        let now = Instant::now();
        let e = m.entry(stream.to_string()).or_insert_with(|| Entry {
            latest: latest.clone(),
            logged_at: None,
            quiet: 0,
        });
        e.latest = latest;
        let due = e
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= PROGRESS_LOG_INTERVAL);
        if due {
            e.logged_at = Some(now);
            Some(std::mem::take(&mut e.quiet))
        } else {
            e.quiet += 1;
            None
        }
    }

    /// The latest report of `stream`.
    pub fn latest(&self, stream: &str) -> Option<ReportedProgress> {
        self.streams
            .lock()
            .ok()
            .and_then(|m| m.get(stream).map(|e| e.latest.clone()))
    }

    /// Forgets `stream`'s report (a new run starts), so the status never shows a previous run's
    /// progress as the current one's.
    pub fn clear(&self, stream: &str) {
        if let Ok(mut m) = self.streams.lock() {
            m.remove(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64) -> ReportedProgress {
        ReportedProgress {
            done,
            total: Some(100),
            message: String::new(),
            at: String::new(),
        }
    }

    #[test]
    fn chatty_reports_log_once_per_interval_but_status_keeps_the_latest() {
        let b = ProgressBoard::default();
        assert_eq!(b.report("items", p(1)), Some(0));
        for n in 2..=500 {
            assert_eq!(
                b.report("items", p(n)),
                None,
                "report {n} must not be logged"
            );
        }
        assert_eq!(b.latest("items").map(|r| r.done), Some(500));
        // Another stream has its own interval.
        assert_eq!(b.report("other", p(1)), Some(0));
        b.clear("items");
        assert_eq!(b.latest("items"), None);
        assert_eq!(b.report("items", p(1)), Some(0));
    }
}
