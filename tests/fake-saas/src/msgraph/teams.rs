//! Teams: chat and channel messages (newest first, `$top` at most 50, soft deletes) and single
//! messages.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};

use super::MsGraph;
use super::data::{Coll, Item};
use super::errors::{bad_request, not_found};
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
