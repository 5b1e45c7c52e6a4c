//! Interceptors on the gate's straight line: a cassette (replay answers instead of the network;
//! record hands every exchange to a recorder) and the grant's response cache. Each either lets
//! the request continue or completes it with an answer, audited like any other.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, header};
use http_body_util::BodyExt;

use super::outcome::{Decision, Outcome};
use super::transport::respond;
use super::{ConnectorGate, GrantState, SendResult};
use crate::capabilities::cache;
use crate::cassette::{self, GateCassette, Recorder};
use crate::store::audit::AuditEvent;
use std::sync::Arc;
use wasmtime_wasi_http::Error as HttpError;

/// Whether the request goes on, or has its answer.
pub(super) enum Intercept<T> {
    Continue(T),
    Complete(SendResult),
}

/// The connector's own request, taken before any credential goes in, for the recorder.
pub(super) struct Recording {
    recorder: Arc<Recorder>,
    method: String,
    url: String,
    headers: http::HeaderMap,
    body: Bytes,
}

impl ConnectorGate {
    /// Replay answers once the grant allowed the request, without credentials, budget,
    /// breaker, cache or retries: the answer depends on the request alone. Recording continues
    /// with a copy of the request as the connector made it.
    pub(super) fn cassette(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        grant: usize,
        ev: AuditEvent,
        started: Instant,
    ) -> Intercept<(Option<Recording>, AuditEvent)> {
        match &self.cassette {
            Some(GateCassette::Replay(r)) => {
                Intercept::Complete(self.replay(r, parts, body, grant, ev, started))
            }
            Some(GateCassette::Record(r)) => Intercept::Continue((
                Some(Recording {
                    recorder: r.clone(),
                    method: parts.method.to_string(),
                    url: parts.uri.to_string(),
                    headers: parts.headers.clone(),
                    body: body.clone(),
                }),
                ev,
            )),
            None => Intercept::Continue((None, ev)),
        }
    }

    /// Hands what the connector gets to the recorder, and passes it on unchanged.
    pub(super) async fn record(&self, rec: Recording, result: SendResult) -> SendResult {
        let creds: Vec<HeaderName> = self.credential_headers.iter().cloned().collect();
        let Recording {
            recorder,
            method,
            url,
            headers,
            body,
        } = rec;
        let sink = |outcome| recorder.record(&method, &url, headers, body, outcome, creds);
        match result {
            Ok((resp, _io)) => {
                let (rparts, rbody) = resp.into_parts();
                // The gate's answers are in memory already; collecting them cannot block.
                let bytes = rbody.collect().await?.to_bytes();
                sink(cassette::Outcome::Response {
                    status: rparts.status,
                    headers: rparts.headers.clone(),
                    body: bytes.clone(),
                });
                Ok(respond(rparts.status, rparts.headers, bytes))
            }
            Err(e) => {
                sink(cassette::Outcome::Error(cassette::error_name(&e).into()));
                Err(e)
            }
        }
    }

    /// The answer a cassette recorded for this request, or a 599 `no-recording` when it has none;
    /// audited like a live answer, with the cassette in the reason.
    fn replay(
        &self,
        replay: &cassette::Replay,
        parts: &http::request::Parts,
        body: &Bytes,
        grant: usize,
        ev: AuditEvent,
        started: Instant,
    ) -> SendResult {
        let url = parts.uri.to_string();
        let Some(served) = replay.next(parts.method.as_str(), &url, body) else {
            let with_body = if body.is_empty() {
                String::new()
            } else {
                format!(" with this {}-byte body", body.len())
            };
            let message = format!(
                "no recorded exchange for {} {url}{with_body} in cassette {}",
                parts.method,
                replay.path().display()
            );
            let reason = format!("grant[{grant}]; replay: {message}");
            let outcome = Outcome::new(Decision::NoRecording, reason)
                .status(Some(cassette::NO_RECORDING_STATUS));
            self.settle(ev, started, outcome);
            return Ok(no_recording(&message));
        };
        let reason = format!(
            "grant[{grant}]; replayed exchanges[{}] of {}{}",
            served.index,
            replay.path().display(),
            if served.repeat { " (again)" } else { "" }
        );
        match served.answer {
            cassette::Answer::Response {
                status,
                headers,
                body,
            } => {
                let outcome = Outcome::new(Decision::Allow, reason)
                    .status(Some(status.as_u16()))
                    .bytes(body.len());
                self.settle(ev, started, outcome);
                Ok(respond(*status, headers.clone(), body.clone()))
            }
            cassette::Answer::Error(kind) => {
                let code = cassette::error_code(kind)
                    .unwrap_or(HttpError::InternalError(Some(kind.clone())));
                let reason = format!("{reason}: recorded transport error `{kind}`");
                self.settle(ev, started, Outcome::new(Decision::Error, reason));
                Err(code)
            }
        }
    }

    /// The cache key of a GET through a grant with a cache, and the answer it holds, if any
    /// (audited as served from the cache).
    pub(super) fn cached_answer(
        &self,
        state: &GrantState,
        parts: &http::request::Parts,
        grant: usize,
        ev: &AuditEvent,
        started: Instant,
    ) -> Intercept<Option<cache::CacheKey>> {
        let Some(c) = &state.cache else {
            return Intercept::Continue(None);
        };
        if parts.method != http::Method::GET {
            return Intercept::Continue(None);
        }
        let key = cache::key(&parts.uri, &parts.headers);
        let hit = c.get(&key);
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        self.metrics
            .cache
            .get_or_create(&super::outcome_labels(&state.labels, outcome))
            .inc();
        let Some(hit) = hit else {
            return Intercept::Continue(Some(key));
        };
        let reason = format!("grant[{grant}]; served from the response cache");
        let outcome = Outcome::new(Decision::Allow, reason)
            .status(Some(hit.status.as_u16()))
            .bytes(hit.body.len());
        self.settle(ev.clone(), started, outcome);
        Intercept::Complete(Ok(respond(hit.status, hit.headers, hit.body)))
    }

    /// Keeps a final answer for the cache key, when the grant caches.
    pub(super) fn keep_in_cache(
        &self,
        state: &GrantState,
        key: Option<cache::CacheKey>,
        rparts: &http::response::Parts,
        bytes: &Bytes,
    ) {
        if let (Some(c), Some(k)) = (&state.cache, key) {
            c.put(
                k,
                cache::Cached {
                    status: rparts.status,
                    headers: rparts.headers.clone(),
                    body: bytes.clone(),
                },
            );
        }
    }
}

/// The 599 answer of a replay without a recording for the request.
fn no_recording(
    message: &str,
) -> (
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
) {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        HeaderName::from_static("x-airlock-gate"),
        http::HeaderValue::from_static("no-recording"),
    );
    let body = serde_json::json!({"error": {"code": "no-recording", "message": message}});
    respond(
        http::StatusCode::from_u16(cassette::NO_RECORDING_STATUS)
            .unwrap_or(http::StatusCode::BAD_GATEWAY),
        headers,
        Bytes::from(body.to_string()),
    )
}
