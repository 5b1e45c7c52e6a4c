//! Users: `/users` (with `$filter` on mail or UPN), `/users/delta` and `/users/{id|upn}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::MsGraph;
use super::data::Data;
use super::errors::{bad_request, not_found};
use crate::common::QueryParams;

/// Index of the user with this id or UPN (case-insensitive).
pub(super) fn user_index(d: &Data, key: &str) -> Option<usize> {
    d.users.items.iter().position(|i| {
        !i.deleted
            && (i.id() == key
                || i.json["userPrincipalName"]
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(key)))
    })
}

/// `GET /v1.0/users` with `$top`, `$filter` (`mail eq '..'` / `userPrincipalName eq '..'`,
/// joined by `or`) and `$select` (ignored: every field is returned).
pub(super) async fn list_users(
    State(g): State<Arc<MsGraph>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let mut conditions = Vec::new();
    if let Some(filter) = q.one("$filter") {
        for clause in filter.split(" or ") {
            let parsed = clause.trim().split_once(" eq ").and_then(|(field, value)| {
                let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
                let field = field.trim();
                matches!(field, "mail" | "userPrincipalName")
                    .then(|| (field.to_owned(), value.replace("''", "'")))
            });
            match parsed {
                Some(c) => conditions.push(c),
                None => {
                    return bad_request(format!(
                        "Unsupported or invalid query filter clause: {clause}"
                    ));
                }
            }
        }
    }
    let users: Vec<Value> = g
        .data()
        .users
        .live()
        .filter(|u| {
            conditions.is_empty()
                || conditions.iter().any(|(f, v)| {
                    u.json[f.as_str()]
                        .as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                })
        })
        .map(|u| u.json.clone())
        .collect();
    g.listing(uri.path(), &q, users, (100, 999), "users")
}

pub(super) async fn users_delta(
    State(g): State<Arc<MsGraph>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = g.data();
    g.delta(
        uri.path(),
        &q,
        (d.seq, &d.users),
        100,
        ("users", "changed", true),
    )
}

pub(super) async fn get_user(State(g): State<Arc<MsGraph>>, Path(key): Path<String>) -> Response {
    let d = g.data();
    match user_index(&d, &key) {
        Some(i) => Json(d.users.items[i].json.clone()).into_response(),
        None => not_found(&key),
    }
}
