//! Fault knobs every fake shares: a seeded plan decides, request by request, whether to answer
//! with a 429 (with or without `Retry-After`), a 5xx, added latency, a connection cut mid-body,
//! or a truncated or malformed JSON body. Applied as a middleware to every upstream route; `/_fake/` routes are exempt. Set
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
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::RateLimited,
        FaultKind::RateLimitedBare,
        FaultKind::Unavailable,
        FaultKind::BadGateway,
        FaultKind::GatewayTimeout,
        FaultKind::Latency,
        FaultKind::ResetMidBody,
        FaultKind::Truncated,
        FaultKind::Malformed,
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

/// The middleware: draws a fault per upstream request and applies it.
pub async fn inject<S: FakeState>(
    State(state): State<Arc<S>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fake/") {
        return next.run(req).await;
    }
    let Some((kind, plan)) = state.core().faults().draw(&path) else {
        return next.run(req).await;
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
