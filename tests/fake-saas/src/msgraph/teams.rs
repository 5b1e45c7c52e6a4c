//! Teams: chat and channel messages (newest first, `$top` at most 50, soft deletes), single
//! messages, and the members of chats, teams and channels (`aadUserConversationMember`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::data::{Coll, Data, Item};
use super::errors::{bad_request, not_found};
use super::{MsGraph, TENANT_ID};
use crate::common::QueryParams;

/// Teams listing: newest first, `$top` 1..=50, `$orderby` only on the two documented fields.
pub(super) fn teams_listing(
    g: &MsGraph,
    path: &str,
    raw: Option<&str>,
    coll: Option<&Coll>,
    what: &str,
) -> Response {
    let q = QueryParams::parse(raw);
    let Some(coll) = coll else {
        return not_found(path);
    };
    if let Some(order) = q.one("$orderby")
        && !matches!(
            order.trim(),
            "lastModifiedDateTime desc" | "createdDateTime desc"
        )
    {
        return bad_request(format!(
            "$orderby '{order}' is not supported; use lastModifiedDateTime desc or createdDateTime desc."
        ));
    }
    let mut items: Vec<&Item> = coll.live().collect();
    if q.one("$orderby")
        .is_some_and(|o| o.starts_with("lastModified"))
    {
        items.sort_by(|a, b| {
            b.json["lastModifiedDateTime"]
                .as_str()
                .cmp(&a.json["lastModifiedDateTime"].as_str())
        });
    } else {
        items.reverse();
    }
    let items = items.into_iter().map(|i| i.json.clone()).collect();
    g.listing(path, &q, items, (20, 50), what)
}

pub(super) async fn chat_messages(
    State(g): State<Arc<MsGraph>>,
    Path(chat): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = g.data();
    let coll = d.chats.iter().find(|c| c.key == chat).map(|c| &c.coll);
    teams_listing(&g, uri.path(), raw.as_deref(), coll, "chats('..')/messages")
}

pub(super) async fn channel_messages(
    State(g): State<Arc<MsGraph>>,
    Path((team, channel)): Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = g.data();
    let key = format!("{team}/{channel}");
    let coll = d.channels.iter().find(|c| c.key == key).map(|c| &c.coll);
    teams_listing(
        &g,
        uri.path(),
        raw.as_deref(),
        coll,
        "teams('..')/channels('..')/messages",
    )
}

pub(super) async fn chat_message(
    State(g): State<Arc<MsGraph>>,
    Path((chat, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let item = d
        .chats
        .iter()
        .find(|c| c.key == chat)
        .and_then(|c| c.coll.find(&id));
    match item {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}

pub(super) async fn channel_message(
    State(g): State<Arc<MsGraph>>,
    Path((team, channel, id)): Path<(String, String, String)>,
) -> Response {
    let d = g.data();
    let key = format!("{team}/{channel}");
    let item = d
        .channels
        .iter()
        .find(|c| c.key == key)
        .and_then(|c| c.coll.find(&id));
    match item {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}

/// One `aadUserConversationMember` as Graph lists it: an opaque membership id, and the member's
/// Entra object id in `userId`.
fn member_json(d: &Data, scope: &str, user_id: &str) -> Value {
    let user = d.users.find(user_id).map(|u| u.json.clone());
    let user = user.unwrap_or_else(|| json!({}));
    let membership = URL_SAFE_NO_PAD.encode(format!("{scope}#{user_id}"));
    json!({"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": membership,
        "roles": [], "displayName": user["displayName"], "userId": user_id,
        "email": user["mail"], "tenantId": TENANT_ID,
        "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z"})
}

/// A member listing (`$top` 1..=999, default 100) of a known scope, else 404.
fn members_listing(g: &MsGraph, path: &str, raw: Option<&str>, scope: &str) -> Response {
    let d = g.data();
    let known = d.chats.iter().any(|c| c.key == scope)
        || d.channels
            .iter()
            .any(|c| c.key == scope || c.key.split('/').next() == Some(scope));
    let Some(ids) = d.members_of(scope).filter(|_| known) else {
        return not_found(path);
    };
    let items = ids.iter().map(|id| member_json(&d, scope, id)).collect();
    drop(d);
    g.listing(path, &QueryParams::parse(raw), items, (100, 999), "members")
}

/// `GET /chats/{id}/members`.
pub(super) async fn chat_members(
    State(g): State<Arc<MsGraph>>,
    Path(chat): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    members_listing(&g, uri.path(), raw.as_deref(), &chat)
}

/// `GET /teams/{id}/members`.
pub(super) async fn team_members(
    State(g): State<Arc<MsGraph>>,
    Path(team): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    members_listing(&g, uri.path(), raw.as_deref(), &team)
}

/// `GET /teams/{id}/channels/{id}/members`: the direct members of the channel, which for a
/// standard channel are the team's members.
pub(super) async fn channel_members(
    State(g): State<Arc<MsGraph>>,
    Path((team, channel)): Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let scope = format!("{team}/{channel}");
    members_listing(&g, uri.path(), raw.as_deref(), &scope)
}
