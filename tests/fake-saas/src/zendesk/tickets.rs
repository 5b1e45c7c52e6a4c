//! Tickets (`/tickets/{id}.json`) and their comments (cursor-paginated).

use crate::common::QueryParams;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

use super::Zendesk;
use super::data::CHANNELS;
use super::params::{
    count_param, decode_comment_cursor, encode_comment_cursor, invalid, not_found,
    ticket_id_from_file,
};
use super::shapes::comment_json;

pub(super) async fn get_ticket(
    State(z): State<Arc<Zendesk>>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = z.data();
    if matches!(file.as_str(), "show_many" | "show_many.json") {
        // Up to 100 ids; unknown and deleted ones are left out.
        let q = QueryParams::parse(raw.as_deref());
        let ids = super::access::ids_param(&q);
        let Ok(ids) = ids else {
            return invalid("ids must be up to 100 comma-separated ticket ids");
        };
        let found = ids.iter().filter_map(|id| d.ticket(*id));
        let tickets: Vec<_> = found
            .filter(|t| !t.deleted())
            .map(|t| z.ticket_out(t))
            .collect();
        return Json(
            json!({"tickets": tickets, "next_page": null, "previous_page": null,
            "count": tickets.len()}),
        )
        .into_response();
    }
    match ticket_id_from_file(&file).and_then(|id| d.ticket(id)) {
        Some(t) if !t.deleted() => Json(json!({"ticket": z.ticket_out(t)})).into_response(),
        _ => not_found(),
    }
}

pub(super) async fn ticket_comments(
    State(z): State<Arc<Zendesk>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = z.data();
    let Some(t) = id.parse::<u64>().ok().and_then(|id| d.ticket(id)) else {
        return not_found();
    };
    if t.deleted() {
        return not_found();
    }
    let channel = CHANNELS[usize::from(t.channel)];
    let path = format!("/tickets/{}/comments.json", t.id);
    let comments = &t.comments;
    let cursor_mode = ["page[size]", "page[after]", "page[before]"]
        .iter()
        .any(|k| q.one(k).is_some());
    if !cursor_mode {
        // Offset pagination (the default without page[size]).
        let per_page = match count_param(&q, "per_page", 100, 100) {
            Ok(n) => n,
            Err(e) => return invalid(e),
        };
        let page = match count_param(&q, "page", 1, usize::MAX) {
            Ok(n) => n,
            Err(e) => return invalid(e),
        };
        let start = (page - 1).saturating_mul(per_page);
        let items: Vec<Value> = comments
            .iter()
            .skip(start)
            .take(per_page)
            .map(|c| comment_json(c, channel))
            .collect();
        let link = |p: usize| {
            z.api(&format!(
                "{path}?{}",
                q.encode_with(&["page"], &[("page", &p.to_string())])
            ))
        };
        let next = (start.saturating_add(per_page) < comments.len()).then(|| link(page + 1));
        let prev = (page > 1).then(|| link(page - 1));
        return Json(json!({"comments": items, "next_page": next, "previous_page": prev, "count": comments.len()}))
            .into_response();
    }
    let size = match count_param(&q, "page[size]", 100, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let decode = |key: &str| match q.one(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => decode_comment_cursor(v)
            .map(Some)
            .ok_or_else(|| format!("{key} is not a valid cursor")),
    };
    let (after, before) = match (decode("page[after]"), decode("page[before]")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return invalid(e),
    };
    let (start, end, has_more) = match (after, before) {
        (Some(a), _) => {
            let s = comments.partition_point(|c| c.id <= a);
            let e = s.saturating_add(size).min(comments.len());
            (s, e, e < comments.len())
        }
        (None, Some(b)) => {
            let e = comments.partition_point(|c| c.id < b);
            let s = e.saturating_sub(size);
            (s, e, s > 0)
        }
        (None, None) => {
            let e = size.min(comments.len());
            (0, e, e < comments.len())
        }
    };
    let page = &comments[start..end];
    let after_cursor = page.last().map(|c| encode_comment_cursor(c.id));
    let before_cursor = page.first().map(|c| encode_comment_cursor(c.id));
    let link = |key: &str, cursor: &str| {
        z.api(&format!(
            "{path}?{}",
            q.encode_with(
                &["page[after]", "page[before]", "page[size]"],
                &[("page[size]", &size.to_string()), (key, cursor)]
            )
        ))
    };
    let next = after_cursor.as_deref().map(|c| link("page[after]", c));
    let prev = before_cursor.as_deref().map(|c| link("page[before]", c));
    let items: Vec<Value> = page.iter().map(|c| comment_json(c, channel)).collect();
    Json(json!({
        "comments": items,
        "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {"next": next, "prev": prev},
    }))
    .into_response()
}
