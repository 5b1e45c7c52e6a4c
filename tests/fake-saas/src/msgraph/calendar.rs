//! Calendar: `calendarView` (with its required `startDateTime`/`endDateTime`) and single events.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::MsGraph;
use super::data::Item;
use super::errors::graph_error;
use super::mail::{item_not_found, mailbox_index, no_mailbox};
use crate::common::QueryParams;
use crate::common::parse_date_time;

pub(super) async fn calendar_view(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let window = (
        q.one("startDateTime").and_then(parse_date_time),
        q.one("endDateTime").and_then(parse_date_time),
    );
    let (Some(start), Some(end)) = window else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        );
    };
    let items: Vec<Value> = {
        let d = g.data();
        let Some(m) = mailbox_index(&d, &key) else {
            return no_mailbox(&key);
        };
        let at = |v: &Value, k: &str| {
            v[k]["dateTime"]
                .as_str()
                .and_then(|s| parse_date_time(&format!("{s}Z")))
                .unwrap_or(0)
        };
        let mut hits: Vec<&Item> = d.events[m]
            .coll
            .live()
            .filter(|i| at(&i.json, "start") < end && at(&i.json, "end") > start)
            .collect();
        hits.sort_by_key(|i| (at(&i.json, "start"), i.ord));
        hits.into_iter().map(|i| i.json.clone()).collect()
    };
    g.listing(
        uri.path(),
        &q,
        items,
        (10, 1000),
        "users('..')/calendarView",
    )
}

pub(super) async fn get_event(
    State(g): State<Arc<MsGraph>>,
    Path((key, id)): Path<(String, String)>,
) -> Response {
    let d = g.data();
    let Some(m) = mailbox_index(&d, &key) else {
        return no_mailbox(&key);
    };
    match d.events[m].coll.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => item_not_found(),
    }
}
