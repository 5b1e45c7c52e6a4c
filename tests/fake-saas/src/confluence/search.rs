//! REST v1 CQL search (`/wiki/rest/api/search`): the query (parsed by [`super::cql`]), its order,
//! `start`/cursor paging with links relative to `_links.base`, and each result with its excerpt.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Confluence;
use super::cql;
use super::data::{Data, Page, status};
use super::errors::v1_error;
use super::paging::{Key, decode_cursor, encode_cursor};
use crate::common::{QueryParams, rfc3339_ms};

pub(super) async fn search(State(c): State<Arc<Confluence>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(cql_text) = q.one("cql").filter(|s| !s.trim().is_empty()) else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "The CQL query parameter is required",
        );
    };
    let query = match cql::parse(cql_text) {
        Ok(query) => query,
        Err(e) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                format!("Could not parse cql : {cql_text} ({e})"),
            );
        }
    };
    let Ok(limit) = q.one("limit").map_or(Ok(25), str::parse::<usize>) else {
        return v1_error(StatusCode::BAD_REQUEST, "'limit' must be an integer");
    };
    let limit = limit.clamp(1, 100);
    let start = match q.one("cursor") {
        Some(cur) => match decode_cursor(cur, "search") {
            Some(k) => k.n.max(0) as usize,
            None => return v1_error(StatusCode::BAD_REQUEST, "Invalid cursor"),
        },
        None => q.one("start").and_then(|s| s.parse().ok()).unwrap_or(0),
    };
    let d = c.data();
    let mut hits: Vec<&Page> = d
        .pages
        .iter()
        .filter(|p| !p.trashed)
        .filter(|p| {
            let s = &d.spaces[p.space];
            let doc = cql::Doc {
                title: &p.title,
                text: &p.text,
                space_key: &s.key,
                created_ms: p.created_ms,
                modified_ms: p.version_ms,
            };
            query.matches(&doc)
        })
        .collect();
    hits.sort_by(|a, b| {
        query.order(
            &(a.version_ms, a.created_ms, &a.title, a.id),
            &(b.version_ms, b.created_ms, &b.title, b.id),
        )
    });
    let total = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(limit)
        .map(|p| search_result(&c, &d, p, &query.first_word()))
        .collect();
    let mut links = json!({"base": c.wiki(), "context": "/wiki", "self": format!("{}/rest/api/search?{}", c.wiki(), q.encode_with(&[], &[]))});
    if start + results.len() < total {
        let end = (start + results.len()).to_string();
        let cursor = encode_cursor(
            "search",
            Key {
                n: (start + results.len()) as i64,
                t: String::new(),
                i: 0,
            },
        );
        let qs = q.encode_with(
            &["cursor", "limit", "start", "next"],
            &[
                ("next", "true"),
                ("cursor", &cursor),
                ("limit", &limit.to_string()),
                ("start", &end),
            ],
        );
        // v1 links are relative to `_links.base` (".../wiki"), unlike v2 links which start with /wiki.
        links["next"] = json!(format!("/rest/api/search?{qs}"));
    }
    let size = results.len();
    Json(json!({"results": results, "start": start, "limit": limit, "size": size, "totalSize": total, "cqlQuery": cql_text, "searchDuration": 3, "_links": links}))
        .into_response()
}

pub(super) fn search_result(c: &Confluence, d: &Data, p: &Page, word: &str) -> Value {
    let links = c.page_links(d, p);
    let s = &d.spaces[p.space];
    // Start the excerpt at a word boundary a few words before the first hit.
    let hit = p.text.to_lowercase().find(word).unwrap_or(0);
    let at = p
        .text
        .char_indices()
        .filter(|(i, c)| *i + 40 <= hit && *c == ' ')
        .map(|(i, _)| i + 1)
        .next_back()
        .unwrap_or(0);
    let excerpt: String = p
        .text
        .get(at..)
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect();
    json!({
        "content": {
            "id": p.id.to_string(), "type": "page", "status": status(p), "title": p.title,
            "_links": {"webui": links["webui"], "tinyui": links["tinyui"], "self": format!("{}/rest/api/content/{}", c.wiki(), p.id)},
            "_expandable": {"space": format!("/rest/api/space/{}", s.key), "version": "", "body": ""},
        },
        "title": p.title,
        "excerpt": excerpt,
        "url": links["webui"],
        "resultGlobalContainer": {"title": s.name, "displayUrl": format!("/spaces/{}", s.key)},
        "breadcrumbs": [],
        "entityType": "content",
        "iconCssClass": "aui-icon content-type-page",
        "lastModified": rfc3339_ms(p.version_ms),
        "friendlyLastModified": rfc3339_ms(p.version_ms),
        "score": 1.0,
        "space": {"id": s.id, "key": s.key, "name": s.name, "type": "global", "status": "current"},
    })
}
