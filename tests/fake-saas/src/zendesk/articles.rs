//! Help Center articles: listing, single articles and the incremental article export.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::{count_param, invalid, not_found, start_time_param, time_page};
use super::{ARTICLES_EXPORT_PAGE, US, Zendesk};
use crate::common::QueryParams;

pub(super) async fn list_articles(
    State(z): State<Arc<Zendesk>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let per_page = match count_param(&q, "per_page", 30, 100) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let page = match count_param(&q, "page", 1, usize::MAX) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let d = z.data();
    let total = d.articles.len();
    let start = (page - 1).saturating_mul(per_page);
    let items: Vec<Value> = d
        .articles
        .iter()
        .skip(start)
        .take(per_page)
        .map(|a| z.article_json(a))
        .collect();
    let link = |p: usize| {
        z.api(&format!(
            "/help_center/articles.json?{}",
            q.encode_with(
                &["page", "per_page"],
                &[
                    ("page", &p.to_string()),
                    ("per_page", &per_page.to_string())
                ]
            )
        ))
    };
    let next = (start.saturating_add(per_page) < total).then(|| link(page + 1));
    let prev = (page > 1).then(|| link(page - 1));
    Json(json!({
        "articles": items,
        "count": total,
        "next_page": next,
        "previous_page": prev,
        "page": page,
        "per_page": per_page,
        "page_count": total.div_ceil(per_page),
        "sort_by": "position",
        "sort_order": "asc",
    }))
    .into_response()
}

pub(super) async fn get_article(
    State(z): State<Arc<Zendesk>>,
    Path(file): Path<String>,
) -> Response {
    let d = z.data();
    let id = file
        .strip_suffix(".json")
        .and_then(|s| s.parse::<u64>().ok());
    match id.and_then(|id| d.articles.iter().find(|a| a.id == id)) {
        Some(a) => Json(json!({"article": z.article_json(a)})).into_response(),
        None => not_found(),
    }
}

pub(super) async fn export_articles(
    State(z): State<Arc<Zendesk>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let start = match start_time_param(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return invalid("start_time is required"),
        Err(e) => return invalid(e),
    };
    let d = z.data();
    let mut order: Vec<(i64, u64, usize)> = d
        .articles
        .iter()
        .enumerate()
        .filter(|(_, a)| a.updated_us >= start * US)
        .map(|(i, a)| (a.updated_us, a.id, i))
        .collect();
    order.sort_unstable();
    let items = order.into_iter().map(|(us, _, i)| (us, i));
    let (page, end_time, end_of_stream) = time_page(items, start, ARTICLES_EXPORT_PAGE);
    let articles: Vec<Value> = page
        .iter()
        .map(|&i| z.article_json(&d.articles[i]))
        .collect();
    let next_page = (!end_of_stream).then(|| {
        z.api(&format!(
            "/help_center/incremental/articles.json?{}",
            q.encode_with(&["start_time"], &[("start_time", &end_time.to_string())])
        ))
    });
    let count = articles.len();
    Json(json!({
        "articles": articles,
        "next_page": next_page,
        "end_time": end_time,
        "count": count,
        "end_of_stream": end_of_stream,
    }))
    .into_response()
}
