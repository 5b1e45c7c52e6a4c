//! The control routes under `/_fake/`, one layer that every fake mounts instead of registering
//! them itself. They are unauthenticated, skip the fake's gate (auth, 429 knob) and the fault
//! middleware, and are never counted as upstream requests:
//!
//! - `GET /_fake/truth`: the ground truth ([`Control::ground_truth`]);
//! - `GET /_fake/requests`: the request counts ([`Control::requests_body`]); `DELETE` resets them
//!   (and the fake's own counters, [`Control::reset_own_counters`]) and answers 204;
//! - `POST /_fake/config`: the fake's knobs ([`Control::configure`]); `GET` shows them
//!   ([`Control::config_body`]) where [`Control::SERVES_CONFIG_GET`];
//! - `POST /_fake/shutdown`: stop serving, 202;
//! - `POST /_fake/mutate`: fakes with mutable data ([`Mutate`], mounted by [`routes_with_mutate`]);
//! - `GET`/`POST /_fake/faults`: the fault plan, mounted for every fake by `server::start`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::json_reply;
use crate::faults::FaultPlan;
use crate::server::{Core, FakeState};

/// Every control route's path starts with this.
pub const PREFIX: &str = "/_fake/";

/// Whether `path` is a control route (gates and the fault middleware let these through untouched).
pub fn is_control(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// What a fake plugs into the shared control routes.
pub trait Control: FakeState + Sized {
    type Truth: Serialize;
    /// `GET /_fake/truth`.
    fn ground_truth(&self) -> Self::Truth;
    /// `GET /_fake/requests`: the core's [`crate::RequestCounts`] unless a fake adds counters.
    fn requests_body(&self) -> Response {
        Json(self.core().counts()).into_response()
    }
    /// `DELETE /_fake/requests` resets the core's counts, then the fake's own counters here.
    fn reset_own_counters(&self) {}
    /// Whether `GET /_fake/config` is served (otherwise only `POST`).
    const SERVES_CONFIG_GET: bool = true;
    /// `GET /_fake/config`: `{"rate_limit_every": N|null}` unless the fake has more knobs.
    fn config_body(&self) -> Value {
        rate_limit_json(self.core())
    }
    /// `POST /_fake/config` with the raw body.
    fn configure(&self, body: &[u8]) -> Response;
}

/// `POST /_fake/mutate` for a fake with mutable data.
pub trait Mutate: Control {
    type Mutation: DeserializeOwned;
    type Report: Serialize;
    /// The body shape named in the 400 answer to a body that does not parse (`expected {EXPECTED}: why`).
    const EXPECTED: &'static str;
    fn apply_mutation(&self, m: Self::Mutation) -> Self::Report;
}

/// The shared control routes for a fake whose state is `S` (all but `/_fake/mutate` and
/// `/_fake/faults`). Merge them into the fake's router before its gate layer and state.
pub fn routes<S: Control>() -> Router<Arc<S>> {
    let config = post(configure::<S>);
    let config = if S::SERVES_CONFIG_GET {
        config.get(config_get::<S>)
    } else {
        config
    };
    Router::new()
        .route("/_fake/truth", get(truth::<S>))
        .route(
            "/_fake/requests",
            get(requests::<S>).delete(reset_requests::<S>),
        )
        .route("/_fake/config", config)
        .route("/_fake/shutdown", post(shutdown::<S>))
}

/// [`routes`] plus `POST /_fake/mutate`.
pub fn routes_with_mutate<S: Mutate>() -> Router<Arc<S>> {
    routes::<S>().route("/_fake/mutate", post(mutate::<S>))
}

/// `GET`/`POST /_fake/faults`, served by every fake (see [`crate::faults`]).
pub fn fault_routes<S: FakeState>() -> Router<Arc<S>> {
    Router::new().route("/_fake/faults", get(faults_get::<S>).post(faults_set::<S>))
}

async fn truth<S: Control>(State(s): State<Arc<S>>) -> Json<S::Truth> {
    Json(s.ground_truth())
}

async fn requests<S: Control>(State(s): State<Arc<S>>) -> Response {
    s.requests_body()
}

async fn reset_requests<S: Control>(State(s): State<Arc<S>>) -> StatusCode {
    s.core().reset_counts();
    s.reset_own_counters();
    StatusCode::NO_CONTENT
}

async fn config_get<S: Control>(State(s): State<Arc<S>>) -> Json<Value> {
    Json(s.config_body())
}

async fn configure<S: Control>(State(s): State<Arc<S>>, body: Bytes) -> Response {
    s.configure(&body)
}

async fn shutdown<S: Control>(State(s): State<Arc<S>>) -> StatusCode {
    s.core().request_shutdown();
    StatusCode::ACCEPTED
}

async fn mutate<S: Mutate>(State(s): State<Arc<S>>, body: Bytes) -> Response {
    match serde_json::from_slice::<S::Mutation>(&body) {
        Ok(m) => Json(s.apply_mutation(m)).into_response(),
        Err(e) => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("expected {}: {e}", S::EXPECTED)}),
        ),
    }
}

async fn faults_get<S: FakeState>(State(s): State<Arc<S>>) -> Json<Value> {
    let f = s.core().faults();
    Json(json!({"plan": f.plan(), "injected": f.report()}))
}

async fn faults_set<S: FakeState>(
    State(s): State<Arc<S>>,
    Json(plan): Json<FaultPlan>,
) -> Json<Value> {
    s.core().faults().set(plan.clone());
    Json(json!({"plan": plan}))
}

/// `{"rate_limit_every": N|null}`, the config of a fake whose only knob is the 429 knob.
pub fn rate_limit_json(core: &Core) -> Value {
    json!({"rate_limit_every": core.rate_limit_every()})
}

/// How a fake whose only knob is `rate_limit_every` reads its `POST /_fake/config` body.
#[derive(Clone, Copy, Debug)]
pub enum RateLimitBody {
    /// `{"rate_limit_every": N|null}`; a missing key turns the knob off, other keys are ignored.
    Lenient,
    /// As `Lenient`, but any other key is refused.
    Strict,
    /// The key must be there (N or null); other keys are ignored.
    Required,
}

/// `POST /_fake/config` for a fake whose only knob is `rate_limit_every`: sets it and answers
/// [`rate_limit_json`], or 400 `{"error": ..}` naming the expected body.
pub fn configure_rate_limit(core: &Core, body: &[u8], rule: RateLimitBody) -> Response {
    const EXPECTED: &str = "expected {\"rate_limit_every\":N|null}";
    let parse_error = |e: serde_json::Error| {
        json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("{EXPECTED}: {e}")}),
        )
    };
    let every = match rule {
        RateLimitBody::Lenient => {
            #[derive(Deserialize)]
            struct Config {
                rate_limit_every: Option<u64>,
            }
            match serde_json::from_slice::<Config>(body) {
                Ok(c) => c.rate_limit_every,
                Err(e) => return parse_error(e),
            }
        }
        RateLimitBody::Strict => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Config {
                rate_limit_every: Option<u64>,
            }
            match serde_json::from_slice::<Config>(body) {
                Ok(c) => c.rate_limit_every,
                Err(e) => return parse_error(e),
            }
        }
        RateLimitBody::Required => {
            let v: Option<Value> = serde_json::from_slice(body).ok();
            match v.as_ref().and_then(|v| v.get("rate_limit_every")) {
                Some(Value::Null) => None,
                Some(n) if n.as_u64().is_some() => n.as_u64(),
                _ => return json_reply(StatusCode::BAD_REQUEST, json!({"error": EXPECTED})),
            }
        }
    };
    core.set_rate_limit_every(every);
    Json(rate_limit_json(core)).into_response()
}
