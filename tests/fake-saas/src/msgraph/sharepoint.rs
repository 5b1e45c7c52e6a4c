//! SharePoint and OneDrive: drive items (`/drives/{d}/items/{i}`), their permissions
//! (`/drives/{d}/items/{i}/permissions`) and `POST /search/query` for `driveItem` (with its
//! required `region`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::MsGraph;
use super::errors::{bad_request, graph_error};
use super::generate::drive_item_public;

pub(super) async fn drive_item(
    State(g): State<Arc<MsGraph>>,
    Path((drive, id)): Path<(String, String)>,
) -> Response {
    with_item(&g, &drive, &id, |i| {
        Json(drive_item_public(i)).into_response()
    })
}

/// `GET /drives/{d}/items/{i}/permissions`: the item's permissions (one page).
pub(super) async fn drive_item_permissions(
    State(g): State<Arc<MsGraph>>,
    Path((drive, id)): Path<(String, String)>,
) -> Response {
    with_item(&g, &drive, &id, |i| {
        Json(json!({"@odata.context": format!(
            "https://graph.microsoft.com/v1.0/$metadata#drives('{drive}')/items('{id}')/permissions"),
            "value": i["permissions"]}))
        .into_response()
    })
}

/// `answer` for the drive's item `id`, or Graph's 404.
fn with_item(
    g: &MsGraph,
    drive: &str,
    id: &str,
    answer: impl FnOnce(&Value) -> Response,
) -> Response {
    let d = g.data();
    let item = d
        .drive
        .iter()
        .find(|i| i["id"] == id && i["parentReference"]["driveId"] == drive);
    match item {
        Some(i) => answer(i),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The resource could not be found.",
        ),
    }
}

/// Words of a query string, lower-cased, without quotes and KQL operators.
pub(super) fn query_words(q: &str) -> Vec<String> {
    q.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty() && !matches!(w.as_str(), "and" | "or"))
        .collect()
}

/// Drive items whose name or content hold every word of `query`, in listing order.
pub fn search_matches<'a>(items: &'a [Value], query: &str) -> Vec<&'a Value> {
    let words = query_words(query);
    items
        .iter()
        .filter(|i| {
            let hay = format!(
                "{} {}",
                i["name"].as_str().unwrap_or(""),
                i["content"].as_str().unwrap_or("")
            )
            .to_lowercase();
            !words.is_empty() && words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

/// `POST /v1.0/search/query` for `driveItem`.
/// With a user's token (delegated), only the items that user may open, and no `region`
/// needed; with an app token, every match.
pub(super) async fn search(
    State(g): State<Arc<MsGraph>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let user = super::auth::bearer(&headers).and_then(|t| {
        g.delegated()
            .user_of(t)
            .and_then(Result::ok)
            .map(str::to_string)
    });
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let Some(req) = v.pointer("/requests/0") else {
        return bad_request("Requests must contain one search request.");
    };
    let types: Vec<&str> = req["entityTypes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if types != ["driveItem"] {
        return bad_request(format!(
            "EntityTypes {types:?} are not supported by this fake; use [\"driveItem\"]."
        ));
    }
    if user.is_none() && req["region"].as_str().is_none_or(|r| r.trim().is_empty()) {
        return bad_request("Region is required when request with application permission.");
    }
    let Some(query) = req.pointer("/query/queryString").and_then(Value::as_str) else {
        return bad_request("Query string is required.");
    };
    let from = req["from"].as_u64().unwrap_or(0) as usize;
    let size = req["size"].as_u64().unwrap_or(25) as usize;
    if size == 0 || size > 500 {
        return bad_request("Size must be between 1 and 500.");
    }
    let d = g.data();
    let mut matches = search_matches(&d.drive, query);
    if let Some(upn) = &user {
        let del = g.delegated();
        matches.retain(|i| i["id"].as_str().is_some_and(|id| del.may_read(upn, id)));
    }
    let words = query_words(query);
    let hits: Vec<Value> = matches
        .iter()
        .enumerate()
        .skip(from)
        .take(size)
        .map(|(rank, item)| {
            let mut summary = item["content"].as_str().unwrap_or("").to_owned();
            for w in &words {
                if let Some(pos) = summary.to_lowercase().find(w.as_str()) {
                    let end = pos + w.len();
                    summary = format!(
                        "{}<c0>{}</c0>{}",
                        &summary[..pos],
                        &summary[pos..end],
                        &summary[end..]
                    );
                }
            }
            let mut resource = drive_item_public(item);
            resource["@odata.type"] = json!("#microsoft.graph.driveItem");
            json!({"hitId": item["id"], "rank": rank + 1, "summary": format!("{summary}<ddd/>"),
                "resource": resource})
        })
        .collect();
    let more = from + hits.len() < matches.len();
    Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.searchResponse)",
        "value": [{"searchTerms": words, "hitsContainers": [{"hits": hits,
            "total": matches.len(), "moreResultsAvailable": more}]}]}))
    .into_response()
}
