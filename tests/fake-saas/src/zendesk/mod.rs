//! Zendesk Support and Help Center fake (API-NOTES.md): cursor-based incremental ticket export,
//! time-based ticket-event and article exports, tickets and their comments, Help Center articles,
//! unified search with its 1000-result ceiling, and the per-minute limit on incremental exports.
//!
//! Times are kept in microseconds so that changes made by [`RunningFake::mutate`] are strictly
//! ordered (that order is the export order), and shown with whole seconds as Zendesk does.

mod access;
mod articles;
mod data;
mod export;
mod gate;
mod generate;
mod params;
mod search;
mod shapes;
#[cfg(test)]
mod tests;
mod tickets;
mod users;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::articles::{export_articles, get_article, list_articles};
use self::data::Data;
use self::export::{export_ticket_events, export_tickets};
use self::gate::{Limits, gate};
use self::generate::generate;
use self::params::zd_error;
use self::search::search;
use self::tickets::{get_ticket, ticket_comments};
use self::users::me;
use crate::common::{basic_auth_ok, bearer_auth_ok, json_reply, now_us};
use crate::control::{self, Control, Mutate};
use crate::notify::{Delivery, Notifier};
use crate::server;
use crate::server::{Core, FakeState, RunningFake};

/// Phrase planted in exactly three ticket descriptions (never deleted) and two article bodies.
pub const PLANTED_PHRASE: &str = "zendesk planted canary phrase";

/// Account-wide requests per minute advertised in `X-Rate-Limit` (not enforced).
const ACCOUNT_LIMIT: u32 = 700;
/// Largest page of the incremental ticket export (also its default).
const EXPORT_PAGE: usize = 1000;
/// Ticket events per page of the time-based event export.
const EVENTS_PAGE: usize = 1000;
/// Articles per page of the time-based Help Center export.
const ARTICLES_EXPORT_PAGE: usize = 100;
/// Search never returns results past this offset.
const SEARCH_CEILING: usize = 1000;
const US: i64 = 1_000_000;

/// Paths that share the incremental-export limit.
const INCREMENTAL_PATHS: &[&str] = &[
    "/api/v2/incremental/tickets/cursor.json",
    "/api/v2/incremental/ticket_events.json",
    "/api/v2/help_center/incremental/articles.json",
];

#[derive(Clone, Debug)]
pub struct ZendeskOptions {
    /// Agent email; Basic auth user is `{email}/token`.
    pub email: String,
    pub api_token: String,
    /// Seeded tickets (all live; none seeded deleted).
    pub tickets: usize,
    pub articles: usize,
    pub seed: u64,
    /// Requests per sliding minute shared by the incremental endpoints (`None`: unlimited;
    /// `Some(10)` is the real limit).
    pub incremental_limit_per_minute: Option<u32>,
    /// Ticket exports leave out tickets (and comment events) changed this recently; 0 excludes nothing.
    pub recent_exclusion_secs: u64,
    /// An OAuth access token, the only thing accepted as `Authorization: Bearer` (the API token
    /// works only as Basic `{email}/token:{api_token}`).
    pub oauth_access_token: String,
}

impl Default for ZendeskOptions {
    fn default() -> Self {
        ZendeskOptions {
            email: "agent@example.com".into(),
            api_token: "demo-zendesk-token".into(),
            tickets: 500,
            articles: 40,
            seed: 11,
            incremental_limit_per_minute: None,
            recent_exclusion_secs: 60,
            oauth_access_token: "demo-zendesk-oauth-token".into(),
        }
    }
}

/// Ground truth of one comment, as the comments endpoint and ticket events show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthComment {
    pub id: u64,
    /// Plain text (the API's `body` and `plain_body`).
    pub body: String,
    pub public: bool,
    pub author_id: u64,
    pub created_at: String,
}

/// Ground truth of one ticket, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthTicket {
    pub id: u64,
    pub subject: String,
    /// Same text as the first comment's body.
    pub description: String,
    pub status: String,
    pub priority: Option<String>,
    #[serde(rename = "type")]
    pub ticket_type: Option<String>,
    pub requester_id: u64,
    pub assignee_id: Option<u64>,
    pub organization_id: Option<u64>,
    /// Whether the organization shares its tickets among its users (`shared_tickets`).
    pub organization_shared: bool,
    pub group_id: Option<u64>,
    /// CCs (end users), as `email_cc_ids` and `collaborator_ids` show them.
    pub email_cc_ids: Vec<u64>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Oldest first.
    pub comments: Vec<TruthComment>,
}

/// Ground truth of one Help Center article.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthArticle {
    pub id: u64,
    pub title: String,
    /// The API's `body`.
    pub body_html: String,
    /// `body_html` with tags stripped, entities decoded and whitespace collapsed.
    pub body_text: String,
    pub html_url: String,
    pub url: String,
    pub section_id: u64,
    pub author_id: u64,
    pub locale: String,
    pub draft: bool,
    /// The user segment that may view it (`None`: everyone).
    pub user_segment_id: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZendeskTruth {
    /// Tickets that are not deleted, by ascending id.
    pub tickets: Vec<TruthTicket>,
    /// Ids of deleted tickets, ascending.
    pub deleted_ticket_ids: Vec<u64>,
    /// By ascending id.
    pub articles: Vec<TruthArticle>,
}

/// Ticket changes; body of `POST /_fake/mutate` (which also takes `"update_articles": N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZendeskMutation {
    /// Tickets (not closed) whose subject, status, priority and tags change.
    pub update: usize,
    /// Tickets set to status "deleted" (never a planted one).
    pub delete: usize,
    /// New tickets with one comment (their description).
    pub create: usize,
    /// Tickets (not closed) that get one more comment.
    pub comment: usize,
}

/// Ids touched by a mutation. Every touched ticket's `updated_at` is now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ZendeskMutationReport {
    pub updated: Vec<u64>,
    pub deleted: Vec<u64>,
    pub created: Vec<u64>,
    /// Ticket ids that got a comment.
    pub commented: Vec<u64>,
    /// Comment ids added, parallel to `commented`.
    pub comment_ids: Vec<u64>,
    pub articles_updated: Vec<u64>,
}

/// Shared state of a running Zendesk fake.
pub struct Zendesk {
    core: Core,
    email: String,
    api_token: String,
    oauth_access_token: String,
    base_url: String,
    recent_exclusion_secs: AtomicU64,
    limits: Mutex<Limits>,
    data: Mutex<Data>,
    webhooks: Mutex<Vec<webhooks::Webhook>>,
    notifier: Notifier,
}

impl FakeState for Zendesk {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl Zendesk {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn webhooks(&self) -> MutexGuard<'_, Vec<webhooks::Webhook>> {
        self.webhooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a mutation, then pushes its events to the webhooks subscribed to them.
    fn mutate(&self, m: ZendeskMutation, update_articles: usize) -> ZendeskMutationReport {
        let report = self.data().mutate(m, update_articles);
        webhooks::notify(self, &report);
        report
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Basic `{email}/token:{api_token}`, or Bearer with an OAuth access token: Zendesk refuses
    /// an API token sent as a Bearer token.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        basic_auth_ok(headers, &format!("{}/token", self.email), &self.api_token)
            || bearer_auth_ok(headers, &self.oauth_access_token)
    }

    /// Tickets and comments changed after this (microseconds) are left out of the exports.
    fn cutoff_us(&self) -> i64 {
        match self.recent_exclusion_secs.load(Ordering::Relaxed) {
            0 => i64::MAX,
            s => now_us().saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(US)),
        }
    }

    fn set_incremental_limit(&self, per_minute: Option<u32>) {
        let mut l = self.limits();
        l.incremental_limit = per_minute.filter(|n| *n > 0);
        l.incremental.clear();
    }

    fn api(&self, path_and_query: &str) -> String {
        format!("{}/api/v2{path_and_query}", self.base_url)
    }
}

/// `POST /_fake/mutate` body: a [`ZendeskMutation`] plus `update_articles`.
#[derive(Deserialize)]
pub struct MutateBody {
    #[serde(flatten)]
    tickets: ZendeskMutation,
    #[serde(default)]
    update_articles: usize,
}

impl Mutate for Zendesk {
    type Mutation = MutateBody;
    type Report = ZendeskMutationReport;
    const EXPECTED: &'static str =
        "{\"update\":N,\"delete\":N,\"create\":N,\"comment\":N,\"update_articles\":N}";
    fn apply_mutation(&self, m: MutateBody) -> ZendeskMutationReport {
        self.mutate(m.tickets, m.update_articles)
    }
}

fn config_json(z: &Zendesk) -> Value {
    json!({
        "incremental_limit_per_minute": z.limits().incremental_limit,
        "recent_exclusion_secs": z.recent_exclusion_secs.load(Ordering::Relaxed),
        "rate_limit_every": z.core.rate_limit_every(),
    })
}

fn configure(z: &Zendesk, body: &[u8]) -> Response {
    const EXPECTED: &str = "expected {\"incremental_limit_per_minute\":N|null,\"recent_exclusion_secs\":N,\"rate_limit_every\":N|null} (any subset)";
    let bad = |why: String| {
        json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("{EXPECTED}: {why}")}),
        )
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(e.to_string()),
    };
    let Some(obj) = v.as_object() else {
        return bad("not an object".into());
    };
    let opt_u64 = |key: &str| -> Result<Option<Option<u64>>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(n) => n
                .as_u64()
                .map(|n| Some(Some(n)))
                .ok_or_else(|| format!("{key} must be a non-negative integer or null")),
        }
    };
    if let Some(k) = obj.keys().find(|k| {
        ![
            "incremental_limit_per_minute",
            "recent_exclusion_secs",
            "rate_limit_every",
        ]
        .contains(&k.as_str())
    }) {
        return bad(format!("unknown key {k:?}"));
    }
    let (limit, exclusion, every) = match (
        opt_u64("incremental_limit_per_minute"),
        opt_u64("recent_exclusion_secs"),
        opt_u64("rate_limit_every"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    };
    if matches!(exclusion, Some(None)) {
        return bad("recent_exclusion_secs cannot be null".into());
    }
    if let Some(limit) = limit {
        let Ok(limit) = limit.map(u32::try_from).transpose() else {
            return bad("incremental_limit_per_minute is too large".into());
        };
        z.set_incremental_limit(limit);
    }
    if let Some(Some(secs)) = exclusion {
        z.recent_exclusion_secs.store(secs, Ordering::Relaxed);
    }
    if let Some(every) = every {
        z.core.set_rate_limit_every(every);
    }
    Json(config_json(z)).into_response()
}

impl Control for Zendesk {
    type Truth = ZendeskTruth;
    fn ground_truth(&self) -> ZendeskTruth {
        self.truth()
    }
    fn config_body(&self) -> Value {
        config_json(self)
    }
    fn configure(&self, body: &[u8]) -> Response {
        configure(self, body)
    }
}

fn router(state: Arc<Zendesk>) -> Router {
    Router::new()
        .route(
            "/api/v2/incremental/tickets/cursor.json",
            get(export_tickets),
        )
        .route(
            "/api/v2/incremental/ticket_events.json",
            get(export_ticket_events),
        )
        .route("/api/v2/tickets/{file}", get(get_ticket))
        .route("/api/v2/tickets/{id}/comments.json", get(ticket_comments))
        .route("/api/v2/users/me.json", get(me))
        .route("/api/v2/organizations/{file}", get(access::organizations))
        .route(
            "/api/v2/help_center/user_segments/{file}",
            get(access::user_segment),
        )
        .route("/api/v2/help_center/articles.json", get(list_articles))
        .route("/api/v2/help_center/articles/{file}", get(get_article))
        .route(
            "/api/v2/help_center/incremental/articles.json",
            get(export_articles),
        )
        .route("/api/v2/search.json", get(search))
        .route("/api/v2/webhooks", post(webhooks::create_webhook))
        .route(
            "/api/v2/webhooks/{id}/signing_secret",
            get(webhooks::signing_secret),
        )
        .merge(control::routes_with_mutate::<Zendesk>())
        .fallback(|| async { zd_error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Zendesk fake on `listen` (port 0 picks a free port).
pub async fn spawn_zendesk(
    listen: SocketAddr,
    opts: ZendeskOptions,
) -> std::io::Result<RunningFake<Zendesk>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let limits = Limits {
        incremental_limit: opts.incremental_limit_per_minute.filter(|n| *n > 0),
        ..Limits::default()
    };
    let state = Arc::new(Zendesk {
        core: Core::new(None),
        data: Mutex::new(generate(&opts)),
        recent_exclusion_secs: AtomicU64::new(opts.recent_exclusion_secs),
        limits: Mutex::new(limits),
        email: opts.email,
        api_token: opts.api_token,
        oauth_access_token: opts.oauth_access_token,
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

impl RunningFake<Zendesk> {
    /// Every webhook notification sent so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.notifier.deliveries()
    }
    /// Live tickets with their comments, deleted ticket ids and articles, as they are now.
    pub fn truth(&self) -> ZendeskTruth {
        self.state.truth()
    }
    /// Updates, deletes (never a planted ticket), creates and comments on tickets; returns the ids.
    pub fn mutate(&self, m: ZendeskMutation) -> ZendeskMutationReport {
        self.state.mutate(m, 0)
    }
    /// Edits `n` articles (title, body, `updated_at`); returns their ids.
    pub fn update_articles(&self, n: usize) -> Vec<u64> {
        self.state
            .mutate(ZendeskMutation::default(), n)
            .articles_updated
    }
    /// Requests per sliding minute on the incremental endpoints (`None`: unlimited). Clears the window.
    pub fn set_incremental_limit(&self, per_minute: Option<u32>) {
        self.state.set_incremental_limit(per_minute)
    }
    /// Ticket exports leave out changes younger than this; 0 excludes nothing.
    pub fn set_recent_exclusion_secs(&self, secs: u64) {
        self.state
            .recent_exclusion_secs
            .store(secs, Ordering::Relaxed)
    }
    pub fn update_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            update: n,
            ..ZendeskMutation::default()
        })
        .updated
    }
    pub fn delete_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            delete: n,
            ..ZendeskMutation::default()
        })
        .deleted
    }
    pub fn create_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            create: n,
            ..ZendeskMutation::default()
        })
        .created
    }
    pub fn comment_tickets(&self, n: usize) -> Vec<u64> {
        self.mutate(ZendeskMutation {
            comment: n,
            ..ZendeskMutation::default()
        })
        .commented
    }
}
