//! Atera API v3 fake (API-NOTES.md): paged ticket listing with absolute `nextLink` (empty on the
//! last page), `/tickets/lastmodified?date=`, single tickets, ticket comments (paged, and a POST
//! that adds one: a write, recorded in the truth), `X-API-KEY` or `Bearer` auth, RFC 7807 errors
//! and the shared 429 knob.
//!
//! This module holds the public face (options, ground truth, mutations, the state, the router,
//! `spawn_atera` and the [`RunningFake`] helpers); each API area and each concern lives in its
//! own module below.

mod comments;
mod data;
mod gate;
mod generate;
mod paging;
mod shapes;
#[cfg(test)]
mod tests;
mod tickets;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};

use self::data::Data;
use self::gate::gate;
use self::generate::{CUSTOMERS, USER_DOMAIN, USERS, email, generate};
use self::shapes::problem;
use crate::common::bearer_auth_ok;
use crate::control::{self, Control, Mutate, RateLimitBody};
use crate::server::{self, Core, FakeState, RunningFake};

pub use self::comments::{API_TECHNICIAN_EMAIL, API_TECHNICIAN_ID};

/// Ticket ids are consecutive from this one.
const FIRST_TICKET_ID: u64 = 1001;

#[derive(Clone, Debug)]
pub struct AteraOptions {
    /// Accepted as `X-API-KEY: <key>` or `Authorization: Bearer <key>`.
    pub api_key: String,
    pub tickets: usize,
    pub seed: u64,
    /// Answer every N-th upstream request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
}

impl Default for AteraOptions {
    fn default() -> Self {
        AteraOptions {
            api_key: "demo-atera-key".into(),
            tickets: 120,
            seed: 17,
            rate_limit_every: None,
        }
    }
}

/// One ticket comment as `GET /tickets/{id}/comments` shows it (plus who wrote it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruthComment {
    pub date: String,
    pub comment: String,
    pub comment_html: String,
    pub is_internal: bool,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub by_technician: bool,
}

/// One ticket as the API shows it; `modified` is the fake's internal modification time (what
/// `/tickets/lastmodified` filters on; not a field of the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruthTicket {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub ticket_type: String,
    pub created: String,
    pub resolved: Option<String>,
    pub customer_id: u64,
    pub customer_name: String,
    pub end_user_id: u64,
    pub end_user_first_name: String,
    pub end_user_last_name: String,
    pub end_user_email: String,
    pub technician_email: String,
    pub first_comment: String,
    pub last_end_user_comment: String,
    pub last_technician_comment: String,
    pub last_end_user_comment_timestamp: Option<String>,
    pub last_technician_comment_timestamp: Option<String>,
    pub modified: String,
    /// Oldest first; the first is `first_comment`.
    pub comments: Vec<AteraTruthComment>,
}

/// A comment added through `POST /api/v3/tickets/{id}/comments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraWrite {
    pub ticket_id: u64,
    pub comment: String,
    pub is_internal: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraTruth {
    /// By ascending id.
    pub tickets: Vec<AteraTruthTicket>,
    /// Every accepted comment POST, in order.
    pub writes: Vec<AteraWrite>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AteraMutation {
    /// Tickets whose title and status change.
    pub update: usize,
    /// Tickets that get one more end-user comment.
    pub comment: usize,
    /// New tickets.
    pub create: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AteraMutationReport {
    pub updated: Vec<u64>,
    pub commented: Vec<u64>,
    pub created: Vec<u64>,
}

/// Shared state of a running Atera fake.
pub struct Atera {
    core: Core,
    api_key: String,
    base_url: String,
    data: Mutex<Data>,
}

impl FakeState for Atera {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Atera {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        key == Some(self.api_key.as_str()) || bearer_auth_ok(headers, &self.api_key)
    }

    fn truth(&self) -> AteraTruth {
        let d = self.data();
        AteraTruth {
            tickets: d.tickets.iter().map(|(t, _)| t.clone()).collect(),
            writes: d.writes.clone(),
        }
    }
}

impl Control for Atera {
    type Truth = AteraTruth;
    fn ground_truth(&self) -> AteraTruth {
        self.truth()
    }
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Required)
    }
}

impl Mutate for Atera {
    type Mutation = AteraMutation;
    type Report = AteraMutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"comment\":N,\"create\":N}";
    fn apply_mutation(&self, m: AteraMutation) -> AteraMutationReport {
        self.data().mutate(m)
    }
}

fn router(state: Arc<Atera>) -> Router {
    Router::new()
        .route("/api/v3/tickets", get(tickets::list_tickets))
        .route("/api/v3/tickets/lastmodified", get(tickets::last_modified))
        .route("/api/v3/tickets/{id}", get(tickets::get_ticket))
        .route(
            "/api/v3/tickets/{id}/comments",
            get(comments::list_comments).post(comments::add_comment),
        )
        .merge(control::routes_with_mutate::<Atera>())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Atera fake on `listen` (port 0 picks a free port).
pub async fn spawn_atera(
    listen: SocketAddr,
    opts: AteraOptions,
) -> std::io::Result<RunningFake<Atera>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Atera {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        api_key: opts.api_key,
        base_url: base_url.clone(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Atera> {
    /// Moves ticket `id` to end user `user` (an index into the end users) of customer `customer`
    /// (an index into the customers), as a technician does in Atera when a ticket was raised
    /// for the wrong contact: the ticket is modified now, so `/tickets/lastmodified` shows it.
    /// Returns the ticket as it is now, `None` for an unknown id.
    pub fn reassign(&self, id: u64, user: usize, customer: usize) -> Option<AteraTruthTicket> {
        let mut data = self.state.data();
        let i = data.tickets.iter().position(|(t, _)| t.id == id)?;
        let ((first, last), name) = (
            USERS[user % USERS.len()],
            CUSTOMERS[customer % CUSTOMERS.len()],
        );
        let at = data.tick();
        let t = &mut data.tickets[i].0;
        t.end_user_id = 500 + (user % USERS.len()) as u64;
        (t.end_user_first_name, t.end_user_last_name) = (first.into(), last.into());
        t.end_user_email = email(first, last, USER_DOMAIN);
        (t.customer_id, t.customer_name) = (100 + (customer % CUSTOMERS.len()) as u64, name.into());
        data.touch(i, at);
        Some(data.tickets[i].0.clone())
    }

    /// Tickets with their comments, and every comment POST, as they are now.
    pub fn truth(&self) -> AteraTruth {
        self.state.truth()
    }
    /// Updates, comments on and creates tickets; every touched ticket is modified now.
    pub fn mutate(&self, m: AteraMutation) -> AteraMutationReport {
        self.state.data().mutate(m)
    }
}
