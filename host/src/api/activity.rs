//! `GET /v1/activity`: the tenant's last hour minute by minute, from the daemon's own figures
//! ([`crate::metrics::last_hour`]): per grant the outbound requests, errors and latency, per
//! stream the records sync committed. What the dashboard draws its charts from.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::Airlock;
use crate::metrics::last_hour::{
    LATENCY_BOUNDS_MS, MINUTES, RequestMinute, SyncMinute, minute_now,
};

use super::auth::{self, Principal};

/// The start of minute `m` (minutes since the Unix epoch), RFC 3339.
fn minute_time(m: u64) -> String {
    let secs = i64::try_from(m.saturating_mul(60)).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// One grant's hour as parallel arrays (oldest minute first) and its totals.
fn grant_json(connector: &str, grant: &str, minutes: &[RequestMinute]) -> Value {
    let mut total = RequestMinute::default();
    for m in minutes {
        total.merge(m);
    }
    json!({
        "connector": connector,
        "grant": grant,
        "requests": minutes.iter().map(|m| m.requests).collect::<Vec<_>>(),
        "errors": minutes.iter().map(|m| m.errors).collect::<Vec<_>>(),
        "latency_ms_mean": minutes.iter().map(|m| m.mean_ms().map(round1)).collect::<Vec<_>>(),
        "latency_ms_p95": minutes.iter().map(RequestMinute::p95_ms).collect::<Vec<_>>(),
        "total": {
            "requests": total.requests,
            "errors": total.errors,
            "latency_ms_mean": total.mean_ms().map(round1),
            "latency_ms_p95": total.p95_ms(),
            "latency_ms_max": (total.timed > 0).then_some(total.latency_ms_max),
            "latency_buckets": total.latency_buckets,
        }
    })
}

fn stream_json(connector: &str, stream: &str, minutes: &[SyncMinute]) -> Value {
    json!({
        "connector": connector,
        "stream": stream,
        "records": minutes.iter().map(|m| m.records).collect::<Vec<_>>(),
        "pages": minutes.iter().map(|m| m.pages).collect::<Vec<_>>(),
        "total": {
            "records": minutes.iter().map(|m| m.records).sum::<u64>(),
            "pages": minutes.iter().map(|m| m.pages).sum::<u64>(),
        }
    })
}

pub async fn activity(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
) -> Response {
    let now = minute_now();
    let hour = &a.metrics.last_hour;
    let mut requests = hour.requests(now);
    requests.retain(|s| auth::may_use(&a, &p, &s.connector));
    // Every grant of the tenant's loaded connectors, also those without a request this hour
    // (a flat line says "idle"); then requests no grant matched (`none`).
    let mut grants = Vec::new();
    for s in a.statuses() {
        if !auth::may_use(&a, &p, &s.id) {
            continue;
        }
        for g in &s.grants {
            let i = requests
                .iter()
                .position(|r| r.connector == s.id && r.name == g.name);
            let minutes = match i {
                Some(i) => requests.swap_remove(i).minutes,
                None => vec![RequestMinute::default(); MINUTES],
            };
            grants.push(grant_json(&s.id, &g.name, &minutes));
        }
    }
    requests.sort_by(|x, y| (&x.connector, &x.name).cmp(&(&y.connector, &y.name)));
    grants.extend(
        requests
            .iter()
            .map(|r| grant_json(&r.connector, &r.name, &r.minutes)),
    );
    let streams: Vec<Value> = hour
        .syncs(now)
        .into_iter()
        .filter(|s| auth::may_use(&a, &p, &s.connector))
        .map(|s| stream_json(&s.connector, &s.name, &s.minutes))
        .collect();
    let first = (now + 1).saturating_sub(MINUTES as u64);
    Json(json!({
        "minutes": MINUTES,
        "from": minute_time(first),
        "latency_bounds_ms": LATENCY_BOUNDS_MS,
        "grants": grants,
        "streams": streams,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grants_hour_holds_one_entry_per_minute_and_totals_that_add_up() {
        let h = crate::metrics::last_hour::LastHour::default();
        let t = 29_000_000;
        h.request_at(
            t - 2,
            "c",
            "g",
            false,
            Some(std::time::Duration::from_millis(30)),
        );
        h.request_at(
            t,
            "c",
            "g",
            true,
            Some(std::time::Duration::from_millis(90)),
        );
        let s = &h.requests(t)[0];
        let v = grant_json("c", "g", &s.minutes);
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(MINUTES));
        assert_eq!(v["requests"][MINUTES - 1], 1);
        assert_eq!(v["requests"][MINUTES - 3], 1);
        assert_eq!(v["errors"][MINUTES - 1], 1);
        assert_eq!(v["latency_ms_mean"][MINUTES - 2], Value::Null);
        assert_eq!(v["total"]["requests"], 2);
        assert_eq!(v["total"]["errors"], 1);
        assert_eq!(v["total"]["latency_ms_mean"], 60.0);
        assert_eq!(v["total"]["latency_ms_max"], 90);
        assert_eq!(v["total"]["latency_buckets"], json!([1, 1, 0, 0, 0]));
        assert_eq!(minute_time(t), "2025-02-19T21:20:00Z");
    }
}
