//! Fault knobs every fake shares: a seeded plan decides, request by request, whether to answer
//! with a 429 (with or without `Retry-After`), a 5xx, added latency, a connection cut mid-body,
//! a truncated or malformed JSON body, or a list page that repeats a record of the previous
//! page of the same endpoint. Applied as a middleware to every upstream route; `/_fake/` routes are exempt. Set
//! through `RunningFake::set_faults` or `POST /_fake/faults`; the same seed and request
//! sequence give the same faults, so a failing test replays exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::server::FakeState;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    RateLimited,
    /// 429 without `Retry-After`.
    RateLimitedBare,
    /// 503 with `Retry-After`.
    Unavailable,
    /// 502.
    BadGateway,
    /// 504.
    GatewayTimeout,
    /// The answer, after `latency_ms`.
    Latency,
    /// Headers and half the body, then the connection is cut.
    ResetMidBody,
    /// 200 with the first half of the JSON body (a consistent Content-Length).
    Truncated,
    /// 200 with a body that is not JSON.
    Malformed,
    /// The page's first list (a top-level array of objects) starts with a record repeated from
    /// the previous page served on the same path (or its own first record).
    Duplicate,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::RateLimited,
        FaultKind::RateLimitedBare,
        FaultKind::Unavailable,
        FaultKind::BadGateway,
        FaultKind::GatewayTimeout,
        FaultKind::Latency,
        FaultKind::ResetMidBody,
        FaultKind::Truncated,
        FaultKind::Malformed,
        FaultKind::Duplicate,
    ];
}

/// What to inject. The default injects nothing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    pub seed: u64,
    /// Probability (0..=1) that a matching request starts a fault burst.
    pub rate: f64,
    /// Faults to draw from, uniformly; empty means all of them.
    pub kinds: Vec<FaultKind>,
    /// Only requests whose path starts with one of these (empty: every upstream path).
    pub paths: Vec<String>,
    /// `Retry-After` seconds on the faults that carry one.
    pub retry_after_secs: u64,
    /// Delay of `latency` faults.
    pub latency_ms: u64,
    /// A fault repeats for this many consecutive matching requests (1: single faults).
    pub burst: u32,
    /// Stop injecting after this many faults (0: no limit).
    pub max_faults: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            seed: 0,
            rate: 0.0,
            kinds: Vec::new(),
            paths: Vec::new(),
            retry_after_secs: 1,
            latency_ms: 200,
            burst: 1,
            max_faults: 0,
        }
    }
}

impl FaultPlan {
    /// `rate` of requests faulted with any kind, seeded.
    pub fn chaos(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan {
            seed,
            rate,
            ..FaultPlan::default()
        }
    }
}

#[derive(Default)]
struct Inner {
    plan: FaultPlan,
    /// Matching requests seen since the plan was set.
    n: u64,
    /// The fault in progress and how many more requests it takes.
    burst: Option<(FaultKind, u32)>,
    injected: BTreeMap<FaultKind, u64>,
}

/// The live fault state of one fake.
#[derive(Default)]
pub struct Faults {
    inner: Mutex<Inner>,
    /// The last record of the last list page served, by path (for `duplicate`).
    last_record: Mutex<BTreeMap<String, serde_json::Value>>,
}

/// Faults injected so far, by kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultReport {
    pub total: u64,
    pub by_kind: BTreeMap<FaultKind, u64>,
}

/// splitmix64: a tiny, well-mixed hash so the plan is reproducible without a RNG crate.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, plan: FaultPlan) {
        let mut i = self.lock();
        *i = Inner {
            plan,
            ..Inner::default()
        };
    }

    pub fn plan(&self) -> FaultPlan {
        self.lock().plan.clone()
    }

    pub fn report(&self) -> FaultReport {
        let i = self.lock();
        FaultReport {
            total: i.injected.values().sum(),
            by_kind: i.injected.clone(),
        }
    }

    /// The fault for this request, if any, with the plan's parameters.
    fn draw(&self, path: &str) -> Option<(FaultKind, FaultPlan)> {
        let mut i = self.lock();
        let injected: u64 = i.injected.values().sum();
        if i.plan.rate <= 0.0 || (i.plan.max_faults > 0 && injected >= i.plan.max_faults) {
            return None;
        }
        if !i.plan.paths.is_empty() && !i.plan.paths.iter().any(|p| path.starts_with(p.as_str())) {
            return None;
        }
        i.n += 1;
        let kind = match i.burst {
            Some((kind, left)) if left > 0 => {
                i.burst = (left > 1).then_some((kind, left - 1));
                kind
            }
            _ => {
                let h = mix(i.plan.seed ^ mix(i.n));
                let p = (h >> 11) as f64 / (1u64 << 53) as f64;
                if p >= i.plan.rate {
                    return None;
                }
                let kinds: &[FaultKind] = if i.plan.kinds.is_empty() {
                    &FaultKind::ALL
                } else {
                    &i.plan.kinds
                };
                let kind = kinds[(mix(h) % kinds.len() as u64) as usize];
                let more = i.plan.burst.saturating_sub(1);
                i.burst = (more > 0).then_some((kind, more));
                kind
            }
        };
        *i.injected.entry(kind).or_default() += 1;
        Some((kind, i.plan.clone()))
    }
}

fn error(status: StatusCode, retry_after: Option<u64>) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            r#"{{"error":"injected fault","status":{}}}"#,
            status.as_u16()
        ),
    )
        .into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// The first top-level array of objects in a JSON object body (the list of a list page).
fn list_of(v: &mut serde_json::Value) -> Option<&mut Vec<serde_json::Value>> {
    v.as_object_mut()?
        .values_mut()
        .filter_map(|x| x.as_array_mut())
        .find(|a| a.first().is_some_and(serde_json::Value::is_object))
}

impl Faults {
    /// Remembers the last record of a list page served on `path`.
    fn remember(&self, path: &str, body: &[u8]) {
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let Some(last) = list_of(&mut v).and_then(|l| l.last().cloned()) {
            self.last_record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path.to_owned(), last);
        }
    }

    /// The body with a repeated record at the front of its list (unchanged if it has none).
    fn duplicate(&self, path: &str, body: &[u8]) -> Option<Vec<u8>> {
        let mut v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        let previous = self
            .last_record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
        let list = list_of(&mut v)?;
        let dup = previous.or_else(|| list.first().cloned())?;
        list.insert(0, dup);
        serde_json::to_vec(&v).ok()
    }
}

/// The middleware: draws a fault per upstream request and applies it.
pub async fn inject<S: FakeState>(
    State(state): State<Arc<S>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let faults = state.core().faults();
    let Some((kind, plan)) = faults.draw(&path) else {
        let resp = next.run(req).await;
        let plan = faults.plan();
        if plan.rate > 0.0 && (plan.kinds.is_empty() || plan.kinds.contains(&FaultKind::Duplicate))
        {
            // Keep the page's last record for a later `duplicate` on this path.
            let (parts, body) = resp.into_parts();
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            if parts.status.is_success() {
                faults.remember(&path, &bytes);
            }
            return Response::from_parts(parts, Body::from(bytes));
        }
        return resp;
    };
    // Answers made here never reach the fake's handler, so count them here.
    let short = |r: Response| {
        state.core().count(&path);
        r
    };
    match kind {
        FaultKind::RateLimited => short(error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(plan.retry_after_secs),
        )),
        FaultKind::RateLimitedBare => short(error(StatusCode::TOO_MANY_REQUESTS, None)),
        FaultKind::Unavailable => short(error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(plan.retry_after_secs),
        )),
        FaultKind::BadGateway => short(error(StatusCode::BAD_GATEWAY, None)),
        FaultKind::GatewayTimeout => short(error(StatusCode::GATEWAY_TIMEOUT, None)),
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(plan.latency_ms)).await;
            next.run(req).await
        }
        FaultKind::Duplicate => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            if !parts.status.is_success() {
                return Response::from_parts(parts, Body::from(bytes));
            }
            let out = faults
                .duplicate(&path, &bytes)
                .unwrap_or_else(|| bytes.to_vec());
            faults.remember(&path, &bytes);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(out))
        }
        FaultKind::ResetMidBody | FaultKind::Truncated | FaultKind::Malformed => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            parts.headers.remove(header::CONTENT_LENGTH);
            let half = bytes.slice(..bytes.len() / 2);
            match kind {
                FaultKind::ResetMidBody => {
                    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                        Ok(half),
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected reset",
                        )),
                    ];
                    let stream = futures_util::stream::iter(chunks);
                    Response::from_parts(parts, Body::from_stream(stream))
                }
                FaultKind::Truncated => Response::from_parts(parts, Body::from(half)),
                _ => {
                    parts.status = StatusCode::OK;
                    Response::from_parts(parts, Body::from("<html>upstream hiccup</html>{"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_repeats_the_previous_pages_last_record() {
        let f = Faults::default();
        let page1 = br#"{"meta":{"n":2},"results":[{"id":1},{"id":2}]}"#;
        let page2 = br#"{"meta":{"n":2},"results":[{"id":3},{"id":4}]}"#;
        // Without a previous page: the page's own first record twice.
        let own: serde_json::Value =
            serde_json::from_slice(&f.duplicate("/p", page1).expect("dup")).unwrap();
        assert_eq!(
            own["results"],
            serde_json::json!([{"id":1},{"id":1},{"id":2}])
        );
        f.remember("/p", page1);
        let next: serde_json::Value =
            serde_json::from_slice(&f.duplicate("/p", page2).expect("dup")).unwrap();
        assert_eq!(
            next["results"],
            serde_json::json!([{"id":2},{"id":3},{"id":4}])
        );
        assert_eq!(next["meta"]["n"], 2);
        assert!(f.duplicate("/p", b"not json").is_none());
    }

    fn draws(f: &Faults, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| f.draw("/x").map(|(k, _)| k)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let a = Faults::default();
        let b = Faults::default();
        a.set(FaultPlan::chaos(7, 0.2));
        b.set(FaultPlan::chaos(7, 0.2));
        let (x, y) = (draws(&a, 500), draws(&b, 500));
        assert_eq!(x, y);
        let faulted = x.iter().filter(|k| k.is_some()).count();
        assert!((60..=140).contains(&faulted), "{faulted} of 500 at 20%");
        let c = Faults::default();
        c.set(FaultPlan::chaos(8, 0.2));
        assert_ne!(draws(&c, 500), x);
    }

    #[test]
    fn bursts_repeat_the_fault_and_paths_filter() {
        let f = Faults::default();
        f.set(FaultPlan {
            rate: 1.0,
            kinds: vec![FaultKind::BadGateway],
            burst: 3,
            paths: vec!["/api/".into()],
            ..FaultPlan::default()
        });
        assert_eq!(f.draw("/other"), None);
        assert_eq!(
            draws(&Faults::default(), 1),
            vec![None],
            "no plan, no faults"
        );
        for _ in 0..3 {
            assert_eq!(
                f.draw("/api/x").map(|(k, _)| k),
                Some(FaultKind::BadGateway)
            );
        }
        assert_eq!(f.report().total, 3);
    }
}
