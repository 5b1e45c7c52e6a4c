//! REST v2 spaces: the listing (`/wiki/api/v2/spaces`, by keys or ids, paged by space id).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use super::data::Space;
use super::errors::bad_param;
use super::paging::{Key, decode_cursor, encode_cursor, paged, parse_limit};
use super::{ACCOUNT_IDS, Confluence};
use crate::common::{QueryParams, rfc3339_ms};

pub(super) async fn list_spaces(
    State(c): State<Arc<Confluence>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let limit = match parse_limit(&q, 25, 250) {
        Ok(l) => l,
        Err(e) => return bad_param(e),
    };
    let after = match q.one("cursor").map(|cur| decode_cursor(cur, "space-id")) {
        Some(None) => return bad_param("Invalid cursor"),
        Some(k) => k.map(|k| k.i),
        None => None,
    };
    let (keys, ids) = (q.list("keys"), q.list("ids"));
    let d = c.data();
    let items: Vec<&Space> = d
        .spaces
        .iter()
        .filter(|s| keys.is_empty() || keys.contains(&s.key))
        .filter(|s| ids.is_empty() || ids.contains(&s.id.to_string()))
        .filter(|s| after.is_none_or(|a| s.id > a))
        .collect();
    let next = (items.len() > limit).then(|| {
        let cursor = encode_cursor(
            "space-id",
            Key {
                n: 0,
                t: String::new(),
                i: items[limit - 1].id,
            },
        );
        format!(
            "/wiki/api/v2/spaces?{}",
            q.encode_with(
                &["cursor", "limit"],
                &[("limit", &limit.to_string()), ("cursor", &cursor)]
            )
        )
    });
    let results = items
        .iter()
        .take(limit)
        .map(|s| {
            json!({
                "id": s.id.to_string(), "key": s.key, "name": s.name, "type": "global", "status": "current",
                "authorId": ACCOUNT_IDS[0], "createdAt": rfc3339_ms(s.created_ms),
                "homepageId": s.homepage_id.map(|id| id.to_string()), "description": null, "icon": null,
                "_links": {"webui": format!("/spaces/{}", s.key)},
            })
        })
        .collect();
    paged(&c, results, next)
}
