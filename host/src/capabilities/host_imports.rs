//! The `host` interface a connector imports — `log`, `setting`, `secret` and (since contract
//! 0.2.0) `progress` — independent of the contract version: the log level mapping and message
//! sanitising, the setting lookup, the audited secret reveal and the progress report. Each
//! version's file under `runtime/contract/` only turns its generated types into these and back.

use std::collections::BTreeMap;

use super::grant::Grant;
use super::progress::{PROGRESS_MESSAGE_MAX, ProgressBoard, ReportedProgress};
use super::secrets::SecretValues;
use crate::scrub::Scrubber;
use crate::store::audit::{AuditEvent, AuditLog};

/// The target of every log line these imports write: where they were written before they moved
/// here, so a filter such as `airlock::runtime=debug` keeps selecting a connector's log.
const LOG_TARGET: &str = "airlock::runtime::state";

/// Longest `host.log` message kept (bytes); longer ones are cut at a char boundary.
const LOG_MESSAGE_MAX: usize = 4096;

/// The level of a `host.log` call (the contract's `log-level`, the same in every version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// What the `host` imports of one invocation see: the connector's shared parts and who and what
/// this invocation is.
pub struct HostImports<'a> {
    pub connector: &'a str,
    pub invocation: &'a str,
    /// Who asked for this invocation (audit rows name it).
    pub principal: Option<&'a str>,
    /// The stream this invocation syncs, if it is a `sync` call: the only stream it may report
    /// progress for.
    pub sync_stream: Option<&'a str>,
    pub settings: &'a BTreeMap<String, String>,
    pub scrubber: &'a Scrubber,
    pub audit: &'a AuditLog,
    pub grants: &'a [Grant],
    pub secrets: &'a SecretValues,
    pub progress: &'a ProgressBoard,
}

impl HostImports<'_> {
    /// `host.log`: one scrubbed, capped line at `level`. Guests could flood the log, so each line
    /// is capped; controls are escaped so one call is one line: no forged log line, no terminal
    /// escape sequence.
    pub fn log(&self, level: LogLevel, message: &str) {
        let mut message = self.scrubber.scrub(message);
        cap(&mut message, LOG_MESSAGE_MAX);
        let message = crate::untrusted_text::log_line(&message);
        let id = self.connector;
        let inv = self.invocation;
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: LOG_TARGET, connector = %id, invocation = %inv, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: LOG_TARGET, connector = %id, invocation = %inv, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: LOG_TARGET, connector = %id, invocation = %inv, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: LOG_TARGET, connector = %id, invocation = %inv, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: LOG_TARGET, connector = %id, invocation = %inv, "{message}")
            }
        }
    }

    /// `host.setting`: the connector's configured value for `key`.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.settings.get(key).cloned()
    }

    /// `host.secret`: the value, or why it is refused (the contract's `forbidden` message). Only
    /// a vault secret that one of the connector's grants references with `reveal = true` is
    /// revealed; either way the answer is audited.
    pub fn secret(&self, name: &str) -> Result<String, String> {
        let answer = super::secrets::revealable(self.connector, self.grants, self.secrets, name);
        let mut ev = AuditEvent {
            connector: self.connector.to_string(),
            invocation: self.invocation.to_string(),
            event: "secret".into(),
            principal: self.principal.map(str::to_string),
            ..Default::default()
        };
        match answer {
            Ok(value) => {
                ev.decision = "allow".into();
                ev.reason = format!("secret `{name}` revealed (grant has reveal = true)");
                self.audit.record(ev);
                Ok(value)
            }
            Err(reason) => {
                ev.decision = "deny".into();
                ev.reason = reason.clone();
                self.audit.record(ev);
                tracing::warn!(target: LOG_TARGET, connector = %self.connector, "secret() denied: {reason}");
                Err(reason)
            }
        }
    }

    /// `host.progress` (0.2.0): records the report on the connector's board and logs it when
    /// the stream's log interval allows.
    pub fn progress(&self, stream: String, done: u64, total: Option<u64>, message: String) {
        let id = self.connector;
        let inv = self.invocation;
        if self.sync_stream != Some(stream.as_str()) {
            // Outside a sync call, or another stream's name: the board stays bounded by the
            // connector's own streams and a status never shows a report nobody is running.
            // Trace level: a connector repeating a wrong report must not flood a debug log.
            tracing::trace!(target: LOG_TARGET, connector = %id, invocation = %inv, "progress for `{}` ignored: not the stream this call syncs", crate::untrusted_text::log_line(&self.scrubber.scrub(&stream)));
            return;
        }
        // Cut before scrubbing so a huge message costs nothing per report, with slack so a
        // secret straddling the first cut lies past the final one anyway.
        let mut message = message;
        cap(&mut message, PROGRESS_MESSAGE_MAX * 4);
        let mut message = self.scrubber.scrub(&message);
        cap(&mut message, PROGRESS_MESSAGE_MAX);
        let report = ReportedProgress {
            done,
            total,
            message,
            at: crate::store::now_rfc3339(),
        };
        if let Some(quiet) = self.progress.report(&stream, report.clone()) {
            let total = total.map_or_else(|| "?".to_string(), |t| t.to_string());
            let quiet = if quiet > 0 {
                format!(" ({quiet} reports since the last line not logged)")
            } else {
                String::new()
            };
            let stream = crate::untrusted_text::log_line(&stream);
            let message = crate::untrusted_text::log_line(&report.message);
            tracing::info!(target: LOG_TARGET, connector = %id, invocation = %inv, stream = %stream, "sync progress {done}/{total}: {message}{quiet}");
        }
    }
}

/// Cuts `message` to `max` bytes at a char boundary, marking the cut.
fn cap(message: &mut String, max: usize) {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
}
