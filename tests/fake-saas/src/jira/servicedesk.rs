//! Jira Service Management `servicedeskapi`: requests, their comments (read and add) and
//! knowledge-base articles, in the `start`/`limit` envelope.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Jira;
use super::jql::count;
use super::shapes::{jsm_error, no_request};
use crate::common::QueryParams;

/// The JSM paged envelope over `items`.
pub(super) fn jsm_page(q: &QueryParams, self_url: &str, items: Vec<Value>) -> Response {
    let (start, limit) = match (count(q, "start", 0, usize::MAX), count(q, "limit", 50, 100)) {
        (Ok(s), Ok(l)) => (s, l.max(1)),
        (Err(e), _) | (_, Err(e)) => return jsm_error(StatusCode::BAD_REQUEST, &e),
    };
    let total = items.len();
    let values: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let last = start + values.len() >= total;
    let mut links = json!({"base": self_url.split("/rest/").next(), "context": "",
                           "self": self_url});
    if !last {
        links["next"] = json!(format!("{self_url}?start={}&limit={limit}", start + limit));
    }
    Json(
        json!({"size": values.len(), "start": start, "limit": limit, "isLastPage": last,
                "values": values, "_links": links}),
    )
    .into_response()
}

pub(super) async fn list_requests(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let term = q.one("searchTerm").map(str::to_lowercase);
    let items = {
        let d = j.data();
        let hits = d
            .issues
            .iter()
            .filter(|i| term.as_ref().is_none_or(|t| i.words().contains(t)));
        hits.map(|i| j.request_json(i)).collect()
    };
    jsm_page(
        &q,
        &format!("{}/rest/servicedeskapi/request", j.base_url),
        items,
    )
}

pub(super) async fn list_comments(
    State(j): State<Arc<Jira>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let flag = |k: &str| q.one(k).is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let (public, internal) = (flag("public"), flag("internal"));
    let items = {
        let d = j.data();
        let Some(idx) = d.find(&key) else {
            return no_request();
        };
        let i = &d.issues[idx];
        let shown = i
            .comments
            .iter()
            .filter(|c| if c.public { public } else { internal });
        shown.map(|c| j.comment_json(i, c)).collect()
    };
    let url = format!("{}/rest/servicedeskapi/request/{key}/comment", j.base_url);
    jsm_page(&q, &url, items)
}

pub(super) async fn add_comment(
    State(j): State<Arc<Jira>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct In {
        body: Option<String>,
        #[serde(default = "yes")]
        public: bool,
    }
    fn yes() -> bool {
        true
    }
    let input = match serde_json::from_slice::<In>(&body) {
        Ok(i) => i,
        Err(e) => return jsm_error(StatusCode::BAD_REQUEST, &format!("Invalid JSON: {e}")),
    };
    let Some(text) = input.body.filter(|b| !b.trim().is_empty()) else {
        return jsm_error(
            StatusCode::BAD_REQUEST,
            "The comment body must not be empty.",
        );
    };
    let mut d = j.data();
    let Some(idx) = d.find(&key) else {
        return no_request();
    };
    let c = d.add_comment(idx, text, input.public, 0);
    (
        StatusCode::CREATED,
        Json(j.comment_json(&d.issues[idx], &c)),
    )
        .into_response()
}

pub(super) async fn kb_articles(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(query) = q.one("query").map(str::trim).filter(|s| !s.is_empty()) else {
        return jsm_error(StatusCode::BAD_REQUEST, "The query parameter is required.");
    };
    let words: Vec<String> = query
        .to_lowercase()
        .split_whitespace()
        .map(String::from)
        .collect();
    let items = {
        let d = j.data();
        let hits = d.articles.iter().filter(|a| {
            let text = format!("{} {}", a.title, a.excerpt).to_lowercase();
            words.iter().all(|w| w == "*" || text.contains(w.as_str()))
        });
        hits.map(|a| {
            json!({"title": a.title, "excerpt": a.excerpt,
                   "source": {"type": "confluence", "pageId": a.page_id.to_string(), "spaceKey": "KB"},
                   "content": {"iframeSrc": format!("{}/rest/servicedeskapi/knowledgebase/article/view/{}",
                                                   j.base_url, a.page_id)}})
        })
        .collect()
    };
    let url = format!("{}/rest/servicedeskapi/knowledgebase/article", j.base_url);
    jsm_page(&q, &url, items)
}
