//! What the host lends besides `wasi:http`: logging, settings, sync progress and (rarely)
//! secrets.
//!
//! Log with the macros `airlock_sdk::log::info!("synced {n}")` (also at the crate root:
//! `airlock_sdk::info!`). The host tags each line with the connector and invocation and scrubs
//! secret values from it.

use crate::bindings::airlock::connector::host as imports;
use crate::{Error, LogLevel, Result};

/// Write `message` to the host's log at `level`. The macros are shorthands for this.
pub fn log(level: LogLevel, message: &str) {
    imports::log(level, message);
}

/// A non-secret setting from the operator's config, trimmed; `None` when unset or blank.
pub fn setting(key: &str) -> Option<String> {
    imports::setting(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Like [`setting`], but a missing setting is an `invalid-input` error naming the key.
pub fn require_setting(key: &str) -> Result<String> {
    setting(key)
        .ok_or_else(|| Error::invalid_input(format!("setting `{key}` is required but not set")))
}

/// The value of a secret. The host only answers for secrets one of this connector's grants marks
/// `reveal = true` (otherwise `forbidden`); most connectors never need this, because the host
/// injects credentials into outbound requests itself.
pub fn secret(name: &str) -> Result<String> {
    imports::secret(name)
}

/// Report how far the current `sync` call has got (contract 0.2.0): `done` records (or upstream
/// items) covered so far in this run, and the upstream's `total` when it tells you. Use it in a
/// page that takes a while (one upstream request per record, a slow export); the host shows the
/// latest report in the stream's sync status and logs at most one report every few seconds, so
/// calling it per record is fine. Reports for another stream than the one being synced are
/// ignored.
///
/// ```ignore
/// for (i, ticket) in tickets.iter().enumerate() {
///     airlock_sdk::progress("comments", start + i as u64 + 1, None);
///     // ... fetch the ticket's comments
/// }
/// ```
pub fn progress(stream: &str, done: u64, total: Option<u64>) {
    imports::progress(stream, done, total, "");
}

/// [`progress`] with a short human-readable note (scrubbed of secrets and cut to 256 bytes by the
/// host), e.g. which record the connector is on.
pub fn progress_with_message(stream: &str, done: u64, total: Option<u64>, message: &str) {
    imports::progress(stream, done, total, message);
}

/// Log at `trace` level with `format!` syntax.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::host::log($crate::LogLevel::Trace, &::std::format!($($arg)*)) };
}
/// Log at `debug` level with `format!` syntax.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::host::log($crate::LogLevel::Debug, &::std::format!($($arg)*)) };
}
/// Log at `info` level with `format!` syntax.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::host::log($crate::LogLevel::Info, &::std::format!($($arg)*)) };
}
/// Log at `warn` level with `format!` syntax.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::host::log($crate::LogLevel::Warn, &::std::format!($($arg)*)) };
}
/// Log at `error` level with `format!` syntax.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::host::log($crate::LogLevel::Error, &::std::format!($($arg)*)) };
}
