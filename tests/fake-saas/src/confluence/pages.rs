//! REST v2 pages: the listing (`/wiki/api/v2/pages`, filtered by status, space and title, sorted
//! and keyset-paged) and single pages (`/wiki/api/v2/pages/{id}`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Confluence;
use super::data::{Page, status};
use super::errors::{bad_param, v2_error};
use super::paging::{Key, decode_cursor, encode_cursor, paged, parse_limit, sort_key};
use crate::common::QueryParams;

pub(super) const STATUSES: &[&str] = &["current", "archived", "deleted", "trashed", "draft"];

pub(super) async fn list_pages(
    State(c): State<Arc<Confluence>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let limit = match parse_limit(&q, 25, 250) {
        Ok(l) => l,
        Err(e) => return bad_param(e),
    };
    let mut statuses = q.list("status");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        return bad_param(format!("Invalid value '{bad}' for 'status'"));
    }
    if statuses.is_empty() {
        statuses.push("current".into());
    }
    let Ok(space_ids) = q
        .list("space-id")
        .iter()
        .map(|s| s.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
    else {
        return bad_param("'space-id' must be a list of numeric ids");
    };
    let body = q.one("body-format");
    if body.is_some_and(|b| b != "storage" && b != "atlas_doc_format") {
        return bad_param("'body-format' must be one of storage, atlas_doc_format");
    }
    let sort = q.one("sort").unwrap_or("id");
    let (desc, field) = sort.strip_prefix('-').map_or((false, sort), |f| (true, f));
    if !["id", "created-date", "modified-date", "title"].contains(&field) {
        return bad_param(format!("Invalid value '{sort}' for 'sort'"));
    }
    let after = match q.one("cursor").map(|cur| decode_cursor(cur, sort)) {
        Some(None) => return bad_param("Invalid cursor"),
        Some(k) => k,
        None => None,
    };
    let title = q.one("title");
    let d = c.data();
    let mut items: Vec<(Key, &Page)> = d
        .pages
        .iter()
        .filter(|p| statuses.iter().any(|s| s == status(p)))
        .filter(|p| space_ids.is_empty() || space_ids.contains(&d.spaces[p.space].id))
        .filter(|p| title.is_none_or(|t| p.title == t))
        .map(|p| (sort_key(field, p), p))
        .filter(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|a| if desc { k < a } else { k > a })
        })
        .collect();
    items.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    let next = (items.len() > limit).then(|| {
        let cursor = encode_cursor(sort, items[limit - 1].0.clone());
        format!(
            "/wiki/api/v2/pages?{}",
            q.encode_with(
                &["cursor", "limit"],
                &[("limit", &limit.to_string()), ("cursor", &cursor)]
            )
        )
    });
    let results = items
        .iter()
        .take(limit)
        .map(|(_, p)| c.page_json(&d, p, body))
        .collect();
    paged(&c, results, next)
}

pub(super) async fn get_page(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Ok(id) = id.parse::<u64>() else {
        return bad_param("'id' must be a numeric page id");
    };
    let body = q.one("body-format");
    if body.is_some_and(|b| b != "storage" && b != "atlas_doc_format") {
        return bad_param("'body-format' must be one of storage, atlas_doc_format");
    }
    let statuses = q.list("status");
    let d = c.data();
    match d.pages.iter().find(|p| p.id == id) {
        Some(p) if !p.trashed || statuses.iter().any(|s| s == "trashed") => {
            Json(c.page_json(&d, p, body)).into_response()
        }
        _ => v2_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found"),
    }
}
