//! Jira Cloud + Jira Service Management fake (API-NOTES.md): the enhanced JQL search
//! `/rest/api/3/search/jql` with `nextPageToken` (the old `/rest/api/3/search` answers 410 Gone),
//! `/rest/api/3/issue/{key}`, `/rest/api/3/myself`, and the JSM `servicedeskapi` request, comment
//! (read and add) and knowledge-base article endpoints with their `start`/`limit` envelope.
//!
//! JQL understood: `project = X`, `key = X`, `updated >=|>|<=|< "yyyy/MM/dd HH:mm"`, `text ~ "q"`
//! joined by `AND`, and `ORDER BY updated|created|key [ASC|DESC]`. A query without any restriction
//! is rejected as unbounded. Dates in JQL are UTC (the fake's user profile time zone).

mod access;
mod data;
mod jql;
mod platform;
mod servicedesk;
mod shapes;
#[cfg(test)]
mod tests;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};

use self::data::{Data, generate};
use self::platform::{get_issue, myself, old_search, search_jql};
use self::servicedesk::{add_comment, kb_articles, list_comments, list_requests};
use self::shapes::jira_errors;
use crate::common::{atlassian_rate_limited, basic_auth_ok};
use crate::control::{Control, Mutate, RateLimitBody};
use crate::notify::{Delivery, Notifier};
use crate::server::{Core, FakeState, RunningFake};
use crate::{control, server};

/// Phrase planted in exactly three request descriptions and two knowledge-base articles.
pub const PLANTED_PHRASE: &str = "jira planted canary phrase";
const FIRST_ISSUE_ID: u64 = 10_001;
const FIRST_COMMENT_ID: u64 = 50_001;
const FIRST_PAGE_ID: u64 = 900_001;
const STATUSES: [(&str, &str); 4] = [
    ("Waiting for support", "new"),
    ("In Progress", "indeterminate"),
    ("Waiting for customer", "indeterminate"),
    ("Resolved", "done"),
];
#[rustfmt::skip]
const VOCAB: &[&str] = &[
    "laptop", "printer", "vpn", "password", "reset", "access", "email", "license", "monitor",
    "network", "invoice", "onboarding", "badge", "calendar", "wifi", "drive", "backup", "update",
    "slow", "broken", "request", "install", "account", "locked", "office", "phone", "headset",
];
/// Customers among `USERS` (the others are the service desk's agents).
const CUSTOMERS: [usize; 3] = [1, 2, 4];
/// Customer organizations: (id, name).
const ORGANIZATIONS: [(u64, &str); 2] = [(1, "Acme Retail"), (2, "Globex Logistics")];
/// Custom fields of the requests: request participants and organizations (site-specific ids).
pub const PARTICIPANTS_FIELD: &str = "customfield_10026";
pub const ORGANIZATIONS_FIELD: &str = "customfield_10002";
const USERS: [(&str, &str); 5] = [
    ("557058:aaaa0001", "Ada Agent"),
    ("557058:bbbb0002", "Ben Customer"),
    ("557058:cccc0003", "Cleo Customer"),
    ("557058:dddd0004", "Dan Agent"),
    ("557058:eeee0005", "Eve Customer"),
];

#[derive(Clone, Debug)]
pub struct JiraOptions {
    /// Account email expected in HTTP Basic auth.
    pub email: String,
    pub api_token: String,
    /// Project (and service desk) key of every request.
    pub project: String,
    pub requests: usize,
    pub articles: usize,
    pub seed: u64,
    /// Answer every N-th upstream request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
}

impl Default for JiraOptions {
    fn default() -> Self {
        JiraOptions {
            email: "demo@example.com".into(),
            api_token: "demo-jira-token".into(),
            project: "SD".into(),
            requests: 200,
            articles: 30,
            seed: 13,
            rate_limit_every: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthComment {
    pub id: u64,
    pub body: String,
    pub public: bool,
    pub author_account_id: String,
    /// Jira style: `2026-01-02T03:04:05.000+0000`.
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthRequest {
    pub id: u64,
    pub key: String,
    pub summary: String,
    /// Plain text of the ADF description: paragraphs joined by a blank line.
    pub description: String,
    pub status: String,
    pub reporter_account_id: String,
    /// Request participants by accountId.
    pub participant_account_ids: Vec<String>,
    /// Ids of the customer organizations the request is shared with.
    pub organization_ids: Vec<u64>,
    pub created: String,
    pub updated: String,
    /// Oldest first.
    pub comments: Vec<JiraTruthComment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruthArticle {
    pub page_id: u64,
    pub space_key: String,
    pub title: String,
    pub excerpt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JiraTruth {
    /// By ascending issue id.
    pub requests: Vec<JiraTruthRequest>,
    /// By ascending page id.
    pub articles: Vec<JiraTruthArticle>,
}

/// Body of `POST /_fake/mutate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JiraMutation {
    /// Requests whose summary and status change.
    pub update: usize,
    pub create: usize,
    /// Requests that get one more comment.
    pub comment: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JiraMutationReport {
    pub updated: Vec<String>,
    pub created: Vec<String>,
    pub commented: Vec<String>,
}

/// Shared state of a running Jira fake.
pub struct Jira {
    core: Core,
    email: String,
    api_token: String,
    base_url: String,
    data: Mutex<Data>,
    webhooks: Mutex<Vec<webhooks::Webhook>>,
    notifier: Notifier,
}

impl FakeState for Jira {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Jira {
    fn webhooks(&self) -> std::sync::MutexGuard<'_, Vec<webhooks::Webhook>> {
        self.webhooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a mutation, then pushes its events to the webhooks registered for them.
    fn mutate(&self, m: JiraMutation) -> JiraMutationReport {
        let report = self.data().mutate(m);
        webhooks::notify(self, &report);
        report
    }
}

async fn gate(State(j): State<Arc<Jira>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if j.core.record(&path) {
        return atlassian_rate_limited(1, "jira-quota-global-based");
    }
    if !basic_auth_ok(req.headers(), &j.email, &j.api_token) {
        let mut resp = jira_errors(
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        );
        crate::common::set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"protected-area\"",
        );
        return resp;
    }
    next.run(req).await
}

impl Control for Jira {
    type Truth = JiraTruth;
    fn ground_truth(&self) -> JiraTruth {
        self.truth()
    }
    fn configure(&self, body: &[u8]) -> Response {
        control::configure_rate_limit(&self.core, body, RateLimitBody::Strict)
    }
}

impl Mutate for Jira {
    type Mutation = JiraMutation;
    type Report = JiraMutationReport;
    const EXPECTED: &'static str = "{\"update\":N,\"create\":N,\"comment\":N}";
    fn apply_mutation(&self, m: JiraMutation) -> JiraMutationReport {
        self.mutate(m)
    }
}

fn router(state: Arc<Jira>) -> Router {
    Router::new()
        .route("/rest/api/3/search/jql", get(search_jql).post(search_jql))
        .route("/rest/api/3/search", get(old_search).post(old_search))
        .route("/rest/api/3/issue/{key}", get(get_issue))
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/servicedeskapi/request", get(list_requests))
        .route(
            "/rest/servicedeskapi/request/{key}/comment",
            get(list_comments).post(add_comment),
        )
        .route(
            "/rest/servicedeskapi/knowledgebase/article",
            get(kb_articles),
        )
        .route("/rest/webhooks/1.0/webhook", post(webhooks::register))
        .merge(control::routes_with_mutate::<Jira>())
        .fallback(|| async { jira_errors(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Jira fake on `listen` (port 0 picks a free port).
pub async fn spawn_jira(
    listen: SocketAddr,
    opts: JiraOptions,
) -> std::io::Result<RunningFake<Jira>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(Jira {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(generate(&opts)),
        email: opts.email,
        api_token: opts.api_token,
        base_url: base_url.clone(),
        webhooks: Mutex::default(),
        notifier: Notifier::start(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<Jira> {
    /// Every request with its comments, and every article, as they are now.
    pub fn truth(&self) -> JiraTruth {
        self.state.truth()
    }
    pub fn mutate(&self, m: JiraMutation) -> JiraMutationReport {
        self.state.mutate(m)
    }
    /// Every webhook notification sent so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.notifier.deliveries()
    }
}
