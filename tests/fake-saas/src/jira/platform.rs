//! Jira platform REST API v3: the enhanced JQL search, the retired `/search` (410), single issues
//! and `/myself`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Jira;
use super::data::Issue;
use super::jql::{count, decode_token, encode_token, parse_jql};
use super::shapes::{jira_errors, user_json};
use crate::common::QueryParams;

pub(super) async fn search_jql(State(j): State<Arc<Jira>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let jql = match parse_jql(q.one("jql").unwrap_or("")) {
        Ok(jql) => jql,
        Err(e) => return jira_errors(StatusCode::BAD_REQUEST, &e),
    };
    if !jql.bounded() {
        return jira_errors(
            StatusCode::BAD_REQUEST,
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
        );
    }
    let max = match count(&q, "maxResults", 50, 100) {
        Ok(0) => 50,
        Ok(n) => n,
        Err(e) => return jira_errors(StatusCode::BAD_REQUEST, &e),
    };
    let after = match q.one("nextPageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match decode_token(t) {
            Some(k) => Some(k),
            None => return jira_errors(StatusCode::BAD_REQUEST, "Invalid nextPageToken."),
        },
    };
    let fields = q.list("fields");
    let d = j.data();
    let mut hits: Vec<&Issue> = d.issues.iter().filter(|i| jql.matches(i)).collect();
    hits.sort_by_key(|i| jql.sort_key(i));
    if jql.desc() {
        hits.reverse();
    }
    let start = after.map_or(0, |k| {
        hits.iter()
            .position(|i| {
                let s = jql.sort_key(i);
                if jql.desc() { s < k } else { s > k }
            })
            .unwrap_or(hits.len())
    });
    let page = &hits[start..(start + max).min(hits.len())];
    let is_last = start + page.len() >= hits.len();
    let issues: Vec<Value> = page.iter().map(|i| j.issue_json(i, &fields)).collect();
    let mut body = json!({"issues": issues, "isLast": is_last});
    if let (false, Some(last)) = (is_last, page.last()) {
        body["nextPageToken"] = json!(encode_token(jql.sort_key(last)));
    }
    Json(body).into_response()
}

pub(super) async fn old_search() -> Response {
    jira_errors(
        StatusCode::GONE,
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.",
    )
}

pub(super) async fn get_issue(
    State(j): State<Arc<Jira>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let mut fields = q.list("fields");
    if fields.is_empty() {
        fields.push("*all".into());
    }
    let d = j.data();
    match d.find(&key) {
        Some(i) => Json(j.issue_json(&d.issues[i], &fields)).into_response(),
        None => jira_errors(
            StatusCode::NOT_FOUND,
            "Issue does not exist or you do not have permission to see it.",
        ),
    }
}

pub(super) async fn myself(State(j): State<Arc<Jira>>) -> Response {
    let mut u = user_json(0);
    u["emailAddress"] = json!(j.email);
    Json(u).into_response()
}
