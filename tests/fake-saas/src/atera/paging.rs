//! The paged envelope every listing shares: `page` and `itemsInPage` (checked, capped), the total
//! counts and absolute `prevLink`/`nextLink` (empty at either end).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Atera;
use super::shapes::problem;
use crate::common::QueryParams;

/// Atera's largest page (`itemsInPage`, unsure) and its default.
const MAX_PAGE: usize = 50;
const DEFAULT_PAGE: usize = 20;

impl Atera {
    /// The paged envelope over `items` for a request to `path` with query `q`.
    pub(super) fn envelope(&self, path: &str, q: &QueryParams, items: Vec<Value>) -> Response {
        let page = match q.one("page").map(|p| p.trim().parse::<usize>()) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            _ => return problem(StatusCode::BAD_REQUEST, "page must be a positive integer"),
        };
        let size = match q.one("itemsInPage").map(|p| p.trim().parse::<usize>()) {
            None => DEFAULT_PAGE,
            Some(Ok(n)) if n >= 1 => n.min(MAX_PAGE),
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "itemsInPage must be a positive integer",
                );
            }
        };
        let total = items.len();
        let pages = total.div_ceil(size);
        let link = |p: usize| {
            let (p, n) = (p.to_string(), size.to_string());
            let query = q.encode_with(
                &["page", "itemsInPage"],
                &[("page", &p), ("itemsInPage", &n)],
            );
            format!("{}{path}?{query}", self.base_url)
        };
        let start = (page - 1).saturating_mul(size).min(total);
        let items: Vec<Value> = items.into_iter().skip(start).take(size).collect();
        let next = if page < pages {
            link(page + 1)
        } else {
            String::new()
        };
        let prev = if page > 1 {
            link(page - 1)
        } else {
            String::new()
        };
        Json(
            json!({"items": items, "page": page, "itemsInPage": size, "totalItemCount": total,
            "totalPages": pages, "prevLink": prev, "nextLink": next}),
        )
        .into_response()
    }
}
