//! Mail: a mailbox's messages (`/users/{id}/messages`, single messages) and the inbox delta query.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::MsGraph;
use super::data::Data;
use super::errors::graph_error;
use super::users::user_index;
use crate::common::QueryParams;

/// Index of the mailbox of the user with this id or UPN.
pub(super) fn mailbox_index(d: &Data, key: &str) -> Option<usize> {
    let user = user_index(d, key)?;
    let id = d.users.items[user].id();
    d.mailbox_ids.iter().position(|m| m == id)
}

pub(super) fn no_mailbox(key: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        format!(
            "The mailbox of '{key}' is either inactive, soft-deleted, or is hosted on-premise."
        ),
    )
}

pub(super) fn item_not_found() -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

pub(super) async fn list_messages(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let items: Vec<Value> = {
        let d = g.data();
        let Some(m) = mailbox_index(&d, &key) else {
            return no_mailbox(&key);
        };
        let mut v: Vec<Value> = d.mail[m].coll.live().map(|i| i.json.clone()).collect();
        v.reverse(); // newest first
        v
    };
    g.listing(uri.path(), &q, items, (10, 1000), "users('..')/messages")
}

pub(super) async fn get_message(
    State(g): State<Arc<MsGraph>>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    match d.mail[m].coll.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => item_not_found(),
    }
}

pub(super) async fn messages_delta(
    State(g): State<Arc<MsGraph>>,
    Path((key, folder)): Path<(String, String)>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    let inbox_id = format!("inbox-{}", d.mailbox_ids[m]);
    if !folder.eq_ignore_ascii_case("inbox") && folder != inbox_id {
        return item_not_found();
    }
    let messages = (d.seq, &d.mail[m].coll);
    g.delta(
        uri.path(),
        &q,
        messages,
        10,
        // Outlook's message delta sends updated messages whole.
        ("Collection(message)", "deleted", false),
    )
}
