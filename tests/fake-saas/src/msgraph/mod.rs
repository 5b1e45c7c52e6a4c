//! Microsoft Graph v1.0 fake (API-NOTES.md): the Azure AD v2 client-credentials token endpoint
//! (tokens with a settable lifetime, requests counted), Bearer checks on every `/v1.0/` route,
//! users (`/users`, `/users/delta`, `/users/{id|upn}`, `$filter=mail eq '..'`), Intune managed
//! devices per user, Entra devices, mail (`/users/{id}/messages`, the inbox delta query), calendar
//! (`calendarView` with required `startDateTime`/`endDateTime`, single events), Teams chat and
//! channel messages (`$top` max 50, soft deletes), the members of chats, teams and channels
//! (`aadUserConversationMember` with `userId`; the second channel is private), SharePoint search (`POST /search/query`,
//! `region` required) and drive items. Collections carry `@odata.context`, absolute
//! `@odata.nextLink` and, for delta queries, `@odata.deltaLink`; deletions in a delta round arrive
//! as `@removed`; the first page of an incremental round is empty. Directory memberships for
//! applications (`POST /users/{id}/getMemberObjects`, `GET /users/{id}/transitiveMemberOf`,
//! `directory.rs`); delegated sign-ins and
//! the on-behalf-of grant at the token endpoint (`delegated.rs`). Errors use Graph's
//! `{"error":{"code","message","innerError"}}`; the shared 429 knob answers with `Retry-After`.

mod auth;
mod calendar;
mod data;
mod delegated;
mod devices;
mod directory;
mod errors;
mod generate;
mod mail;
mod mutations;
mod paging;
mod sharepoint;
mod subscriptions;
mod teams;
#[cfg(test)]
mod tests;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::auth::{gate, token};
use self::calendar::{calendar_view, get_event};
use self::data::{Coll, Data, Scoped};
use self::devices::{get_device, list_devices, managed_devices};
use self::errors::graph_error;
use self::generate::generate;
use self::mail::{get_message, list_messages, messages_delta};
use self::sharepoint::{drive_item, drive_item_permissions, search};
pub use self::subscriptions::Subscription;
use self::teams::{
    channel_members, channel_message, channel_messages, chat_members, chat_message, chat_messages,
    team_members,
};
use self::users::{get_user, list_users, users_delta};
use crate::common::json_reply;
use crate::control::{self, Control, Mutate};
use crate::notify::{Delivery, Notifier};
use crate::server;
use crate::server::{Core, FakeState, RunningFake};

pub use self::delegated::DelegatedCounts;
pub use self::sharepoint::search_matches;

const DAY_MS: i64 = 86_400_000;
const DOMAIN: &str = "contoso.com";
const TENANT_ID: &str = "8f1d2c3b-4a59-4e68-9d7c-0b1a2f3e4d5c";

#[derive(Clone, Debug)]
pub struct MsGraphOptions {
    /// Tenant in the token endpoint's path.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub users: usize,
    pub devices: usize,
    /// The first N users have mailboxes with mail and calendars.
    pub mailboxes: usize,
    pub messages_per_mailbox: usize,
    pub events_per_mailbox: usize,
    pub chats: usize,
    pub messages_per_chat: usize,
    pub channels: usize,
    pub messages_per_channel: usize,
    pub drive_items: usize,
    pub seed: u64,
    /// Answer every N-th Graph request with 429 + Retry-After.
    pub rate_limit_every: Option<u64>,
    /// `expires_in` of issued tokens; the fake rejects a token after it.
    pub token_lifetime_secs: u64,
    /// `Retry-After` seconds on 429.
    pub retry_after_secs: u64,
}

impl Default for MsGraphOptions {
    fn default() -> Self {
        MsGraphOptions {
            tenant: "demo-tenant".into(),
            client_id: "demo-graph-client".into(),
            client_secret: "demo-graph-secret".into(),
            users: 140,
            devices: 75,
            mailboxes: 3,
            messages_per_mailbox: 23,
            events_per_mailbox: 24,
            chats: 2,
            messages_per_chat: 64,
            channels: 2,
            messages_per_channel: 21,
            drive_items: 40,
            seed: 29,
            rate_limit_every: None,
            token_lifetime_secs: 3599,
            retry_after_secs: 1,
        }
    }
}

/// Everything the fake serves, as the API shows it. Deleted records are absent; soft-deleted
/// Teams messages and system messages are left out of `chats`/`channels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MsGraphTruth {
    pub users: Vec<Value>,
    pub devices: Vec<Value>,
    pub managed_devices: Vec<Value>,
    /// User principal names of the mailboxes, in order.
    pub mailboxes: Vec<String>,
    /// Inbox messages by mailbox UPN.
    pub messages: BTreeMap<String, Vec<Value>>,
    /// Every event by mailbox UPN (callers filter by window).
    pub events: BTreeMap<String, Vec<Value>>,
    /// Live user messages by chat id.
    pub chats: BTreeMap<String, Vec<Value>>,
    /// Live user messages by `teamId/channelId`.
    pub channels: BTreeMap<String, Vec<Value>>,
    /// Drive items as `/drives/{d}/items/{i}` shows them plus their searchable `content` and
    /// their `permissions` (as `/drives/{d}/items/{i}/permissions` lists them).
    pub drive_items: Vec<Value>,
    /// Member user ids by chat id, by team id and by `teamId/channelId` for private channels
    /// (a standard channel's members are its team's).
    pub members: BTreeMap<String, Vec<String>>,
    pub token_requests: u64,
}

/// Counts of records to add, update and delete in one collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Change {
    pub add: usize,
    pub update: usize,
    pub delete: usize,
}

/// Body of `POST /_fake/mutate`. Messages and events spread over the mailboxes, Teams messages
/// over the chats/channels (Teams deletes are soft: `deletedDateTime` set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsGraphMutation {
    pub users: Change,
    pub devices: Change,
    pub messages: Change,
    pub events: Change,
    pub chat_messages: Change,
    pub channel_messages: Change,
}

/// Ids touched, as `{scope}/{id}` for scoped records (mailbox UPN, chat id, `team/channel`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsGraphMutationReport {
    pub users: ChangeReport,
    pub devices: ChangeReport,
    pub messages: ChangeReport,
    pub events: ChangeReport,
    pub chat_messages: ChangeReport,
    pub channel_messages: ChangeReport,
}

/// Shared state of a running Graph fake.
pub struct MsGraph {
    core: Core,
    opts: MsGraphOptions,
    base_url: String,
    data: Mutex<Data>,
    tokens: Mutex<HashMap<String, Instant>>,
    token_requests: AtomicU64,
    token_lifetime_secs: AtomicU64,
    retry_after_secs: AtomicU64,
    subscriptions: Mutex<Vec<Subscription>>,
    notifier: Notifier,
    /// Delegated (user) sign-ins and their tokens (`delegated.rs`).
    delegated: Mutex<delegated::Delegated>,
    /// Groups by user id, as `getMemberObjects` lists them (`directory.rs`).
    member_objects: Mutex<HashMap<String, Vec<String>>>,
}

impl FakeState for MsGraph {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl MsGraph {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subscriptions(&self) -> MutexGuard<'_, Vec<Subscription>> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a mutation, then notifies the subscriptions that want its changes.
    fn mutate(&self, m: MsGraphMutation) -> MsGraphMutationReport {
        let report = self.data().mutate(m);
        subscriptions::notify(self, &report);
        report
    }
    fn delegated(&self) -> MutexGuard<'_, delegated::Delegated> {
        self.delegated.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn member_objects(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.member_objects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn truth(&self) -> MsGraphTruth {
        let d = self.data();
        let live = |c: &Coll| c.live().map(|i| i.json.clone()).collect::<Vec<_>>();
        let teams = |s: &[Scoped]| {
            s.iter()
                .map(|s| {
                    let msgs = s
                        .coll
                        .live()
                        .filter(|i| {
                            i.json["messageType"] == "message"
                                && i.json["deletedDateTime"].is_null()
                        })
                        .map(|i| i.json.clone())
                        .collect();
                    (s.key.clone(), msgs)
                })
                .collect()
        };
        MsGraphTruth {
            users: live(&d.users),
            devices: live(&d.devices),
            managed_devices: d.managed.clone(),
            mailboxes: d.mail.iter().map(|s| s.key.clone()).collect(),
            messages: d
                .mail
                .iter()
                .map(|s| (s.key.clone(), live(&s.coll)))
                .collect(),
            events: d
                .events
                .iter()
                .map(|s| (s.key.clone(), live(&s.coll)))
                .collect(),
            chats: teams(&d.chats),
            channels: teams(&d.channels),
            drive_items: d.drive.clone(),
            members: d.members.clone(),
            token_requests: self.token_requests.load(Ordering::Relaxed),
        }
    }
}
/// `POST /_fake/config`: any of `rate_limit_every` (N or null), `token_lifetime_secs`,
/// `retry_after_secs`.
fn configure(g: &MsGraph, body: &[u8]) -> Response {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(body) else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected a JSON object"}),
        );
    };
    for (k, val) in &v {
        match (k.as_str(), val) {
            ("rate_limit_every", Value::Null) => g.core.set_rate_limit_every(None),
            ("rate_limit_every", n) if n.as_u64().is_some() => {
                g.core.set_rate_limit_every(n.as_u64())
            }
            ("token_lifetime_secs", n) if n.as_u64().is_some() => g
                .token_lifetime_secs
                .store(n.as_u64().unwrap_or(3599), Ordering::Relaxed),
            ("retry_after_secs", n) if n.as_u64().is_some() => g
                .retry_after_secs
                .store(n.as_u64().unwrap_or(1), Ordering::Relaxed),
            _ => {
                return json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("unknown or invalid setting `{k}`")}),
                );
            }
        }
    }
    Json(config_json(g)).into_response()
}

fn config_json(g: &MsGraph) -> Value {
    json!({"rate_limit_every": g.core.rate_limit_every(),
        "token_lifetime_secs": g.token_lifetime_secs.load(Ordering::Relaxed),
        "retry_after_secs": g.retry_after_secs.load(Ordering::Relaxed)})
}

impl Control for MsGraph {
    type Truth = MsGraphTruth;
    fn ground_truth(&self) -> MsGraphTruth {
        self.truth()
    }
    /// The request counts plus `token_requests`.
    fn requests_body(&self) -> Response {
        let mut v = serde_json::to_value(self.core.counts()).unwrap_or_default();
        v["token_requests"] = json!(self.token_requests.load(Ordering::Relaxed));
        Json(v).into_response()
    }
    /// The token requests are reset with the request counts.
    fn reset_own_counters(&self) {
        self.token_requests.store(0, Ordering::Relaxed);
    }
    fn config_body(&self) -> Value {
        config_json(self)
    }
    fn configure(&self, body: &[u8]) -> Response {
        configure(self, body)
    }
}

impl Mutate for MsGraph {
    type Mutation = MsGraphMutation;
    type Report = MsGraphMutationReport;
    const EXPECTED: &'static str = "{\"users\":{\"add\":N,\"update\":N,\"delete\":N}, \"devices\":.., \"messages\":.., \"events\":.., \"chat_messages\":.., \"channel_messages\":..}";
    fn apply_mutation(&self, m: MsGraphMutation) -> MsGraphMutationReport {
        self.mutate(m)
    }
}

fn router(state: Arc<MsGraph>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/authorize", get(delegated::authorize))
        .route("/{tenant}/oauth2/v2.0/revoke", post(delegated::revoke))
        .route("/v1.0/me", get(delegated::me))
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/delta", get(users_delta))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/users/{id}/managedDevices", get(managed_devices))
        .route(
            "/v1.0/users/{id}/getMemberObjects",
            post(directory::member_objects),
        )
        .route(
            "/v1.0/users/{id}/transitiveMemberOf",
            get(directory::transitive_member_of),
        )
        .route("/v1.0/users/{id}/messages", get(list_messages))
        .route("/v1.0/users/{id}/messages/{mid}", get(get_message))
        .route(
            "/v1.0/users/{id}/mailFolders/{folder}/messages/delta",
            get(messages_delta),
        )
        .route("/v1.0/users/{id}/calendarView", get(calendar_view))
        .route("/v1.0/users/{id}/events/{eid}", get(get_event))
        .route("/v1.0/devices", get(list_devices))
        .route("/v1.0/devices/{id}", get(get_device))
        .route("/v1.0/chats/{chat}/messages", get(chat_messages))
        .route("/v1.0/chats/{chat}/messages/{mid}", get(chat_message))
        .route("/v1.0/chats/{chat}/members", get(chat_members))
        .route("/v1.0/teams/{team}/members", get(team_members))
        .route(
            "/v1.0/teams/{team}/channels/{channel}/members",
            get(channel_members),
        )
        .route(
            "/v1.0/teams/{team}/channels/{channel}/messages",
            get(channel_messages),
        )
        .route(
            "/v1.0/teams/{team}/channels/{channel}/messages/{mid}",
            get(channel_message),
        )
        .route("/v1.0/drives/{drive}/items/{item}", get(drive_item))
        .route(
            "/v1.0/drives/{drive}/items/{item}/permissions",
            get(drive_item_permissions),
        )
        .route("/v1.0/search/query", post(search))
        .route(
            "/v1.0/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/v1.0/subscriptions/{id}",
            patch(subscriptions::renew).delete(subscriptions::delete),
        )
        .merge(control::routes_with_mutate::<MsGraph>())
        .fallback(|uri: Uri| async move {
            graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!(
                    "Resource not found for the segment '{}'.",
                    uri.path().rsplit('/').next().unwrap_or("")
                ),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the Graph fake on `listen` (port 0 picks a free port).
pub async fn spawn_msgraph(
    listen: SocketAddr,
    opts: MsGraphOptions,
) -> std::io::Result<RunningFake<MsGraph>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let data = generate(&opts);
    let delegated = delegated::Delegated::new(&data);
    let state = Arc::new(MsGraph {
        core: Core::new(opts.rate_limit_every),
        data: Mutex::new(data),
        delegated: Mutex::new(delegated),
        token_lifetime_secs: AtomicU64::new(opts.token_lifetime_secs),
        retry_after_secs: AtomicU64::new(opts.retry_after_secs),
        opts,
        base_url: base_url.clone(),
        tokens: Mutex::default(),
        token_requests: AtomicU64::new(0),
        subscriptions: Mutex::default(),
        notifier: Notifier::start(),
        member_objects: Mutex::default(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<MsGraph> {
    /// Everything the fake serves now, and the token requests so far.
    pub fn truth(&self) -> MsGraphTruth {
        self.state.truth()
    }
    /// Adds, updates and deletes records; every change is visible to the next delta round.
    pub fn mutate(&self, m: MsGraphMutation) -> MsGraphMutationReport {
        self.state.mutate(m)
    }
    /// Replaces the members of a chat (chat id), a team (team id) or a private channel
    /// (`teamId/channelId`); Graph sends no message change for this.
    pub fn set_members(&self, scope: &str, user_ids: &[&str]) {
        let ids = user_ids.iter().map(|s| (*s).to_owned()).collect();
        self.state.data().members.insert(scope.to_owned(), ids);
    }
    /// Every subscription made so far (expired ones too).
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.state.subscriptions().clone()
    }
    /// Every change notification sent so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.notifier.deliveries()
    }
    /// Requests to the token endpoint so far (accepted or not).
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }
    /// Every access token issued so far (for canary checks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.tokens().keys().cloned().collect()
    }
    /// `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime_secs(&self, secs: u64) {
        self.state
            .token_lifetime_secs
            .store(secs, Ordering::Relaxed);
    }
    /// `Retry-After` seconds of 429 answers.
    pub fn set_retry_after_secs(&self, secs: u64) {
        self.state.retry_after_secs.store(secs, Ordering::Relaxed);
    }
    /// `{base_url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url, self.state.opts.tenant
        )
    }
}
