//! Zendesk's error body, query parameters (`per_page`, `start_time`) and the opaque cursors of the
//! ticket export and of comment listings.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::json;

use super::US;
use super::shapes::secs;
use crate::common::{QueryParams, json_reply};

pub(super) fn zd_error(
    status: StatusCode,
    error: &str,
    description: impl Into<String>,
) -> Response {
    json_reply(
        status,
        json!({"error": error, "description": description.into()}),
    )
}

pub(super) fn invalid(description: impl Into<String>) -> Response {
    zd_error(StatusCode::BAD_REQUEST, "InvalidValue", description)
}

pub(super) fn not_found() -> Response {
    zd_error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found")
}

/// A positive count parameter: `default` when absent, clamped to `max`.
pub(super) fn count_param(
    q: &QueryParams,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, String> {
    match q.one(key) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(format!("{key} must be a positive integer")),
        },
    }
}

pub(super) fn start_time_param(q: &QueryParams) -> Result<Option<i64>, String> {
    match q.one("start_time") {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(t) if (0..=i64::MAX / US).contains(&t) => Ok(Some(t)),
            _ => Err(format!(
                "start_time must be a Unix epoch time in seconds, got {raw:?}"
            )),
        },
    }
}

/// Lenient base64 decode: tolerates missing padding and `+` turned into a space by form decoding.
pub(super) fn b64_decode(raw: &str) -> Option<String> {
    let cleaned = raw.trim().replace(' ', "+");
    let bytes = STANDARD_NO_PAD.decode(cleaned.trim_end_matches('=')).ok()?;
    String::from_utf8(bytes).ok()
}

/// Export cursor in Zendesk's style: base64 of `"{secs}.{micros}||{id}|"`; the position is exclusive.
pub(super) fn encode_export_cursor((us, id): (i64, u64)) -> String {
    STANDARD.encode(format!("{}.{:06}||{id}|", secs(us), us.rem_euclid(US)))
}

pub(super) fn decode_export_cursor(raw: &str) -> Option<(i64, u64)> {
    let text = b64_decode(raw)?;
    let (ts, rest) = text.split_once("||")?;
    let id = rest.strip_suffix('|')?.parse::<u64>().ok()?;
    let (s, micros) = ts.split_once('.')?;
    let s = s.parse::<i64>().ok()?;
    let micros = micros.parse::<i64>().ok().filter(|m| (0..US).contains(m))?;
    Some((s.checked_mul(US)?.checked_add(micros)?, id))
}

pub(super) fn encode_comment_cursor(id: u64) -> String {
    STANDARD.encode(format!("comment:{id}"))
}

pub(super) fn decode_comment_cursor(raw: &str) -> Option<u64> {
    b64_decode(raw)?.strip_prefix("comment:")?.parse().ok()
}

/// Time-based page: `items` (sorted by time, already starting at the requested start) up to
/// `limit`, extended so the last second is complete. Returns the page, `end_time` (the last item's
/// second, to be used as the next `start_time`) and `end_of_stream`. When a full page holds a
/// single second, `end_time` moves past it (the whole second was returned) so paging always advances.
pub(super) fn time_page<T>(
    items: impl Iterator<Item = (i64, T)>,
    start: i64,
    limit: usize,
) -> (Vec<T>, i64, bool) {
    let mut items = items.peekable();
    let (mut out, mut first, mut last) = (Vec::new(), None, None);
    while let Some((us, _)) = items.peek() {
        let sec = secs(*us);
        if out.len() >= limit && last != Some(sec) {
            break;
        }
        let Some((_, item)) = items.next() else { break };
        out.push(item);
        first.get_or_insert(sec);
        last = Some(sec);
    }
    let end_of_stream = items.peek().is_none();
    let end_time = match (first, last) {
        (Some(f), Some(l)) if !end_of_stream && f == l => l + 1,
        (_, Some(l)) => l,
        _ => start,
    };
    (out, end_time, end_of_stream)
}

pub(super) fn ticket_id_from_file(file: &str) -> Option<u64> {
    file.strip_suffix(".json")?.parse().ok()
}
