//! Ticket comments: the paged listing and the POST that adds one (a write, recorded in the
//! truth), with Atera's rules for the comment body and who it names as author.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::shapes::{comment_json, problem};
use super::tickets::{index, no_ticket};
use super::{Atera, AteraTruthComment, AteraWrite};
use crate::common::{QueryParams, html_escape, parse_date_time, rfc3339_secs};

pub(super) async fn list_comments(
    State(a): State<Arc<Atera>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let items = {
        let d = a.data();
        match index(&id).and_then(|i| d.tickets.get(i)) {
            Some((t, _)) => t.comments.iter().map(comment_json).collect(),
            None => return no_ticket(&id),
        }
    };
    let q = QueryParams::parse(raw.as_deref());
    a.envelope(&format!("/api/v3/tickets/{id}/comments"), &q, items)
}

/// The technician the API comments of the tests are written as (a technician of the account).
pub const API_TECHNICIAN_EMAIL: &str = "api.technician@msp.example";
/// That technician's `TechnicianId`.
pub const API_TECHNICIAN_ID: u64 = 1;

/// Who a comment body says wrote it: a technician (by `TechnicianId` or `TechnicianEmail`) or an
/// end user (`EnduserId`).
pub(super) struct Author {
    pub(super) email: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) technician: bool,
    pub(super) internal: bool,
}

/// Atera's rules for a comment body, as its API documents them: `CommentText` (a non-empty
/// string), exactly one of `TechnicianCommentDetails` (naming a known technician by
/// `TechnicianId` or `TechnicianEmail`, optional boolean `IsInternal`) and
/// `EnduserCommentDetails` (a positive `EnduserId`), optional `CommentTimestampUTC`.
pub(super) fn comment_body(v: &Value, technicians: &[&str]) -> Result<(String, Author), String> {
    let v = v.as_object().ok_or("the body must be a JSON object")?;
    let text = match v.get("CommentText") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        Some(Value::String(_)) | None => return Err("The CommentText field is required.".into()),
        Some(_) => return Err("CommentText must be a string.".into()),
    };
    if let Some(ts) = v.get("CommentTimestampUTC")
        && ts.as_str().is_none_or(|t| parse_date_time(t).is_none())
    {
        return Err("CommentTimestampUTC is not a valid date-time.".into());
    }
    let tech = v.get("TechnicianCommentDetails").filter(|d| !d.is_null());
    let user = v.get("EnduserCommentDetails").filter(|d| !d.is_null());
    match (tech, user) {
        (Some(d), None) => {
            let d = d
                .as_object()
                .ok_or("TechnicianCommentDetails must be an object.")?;
            let internal = match d.get("IsInternal") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("IsInternal must be a boolean.".into()),
            };
            let by_id = d.get("TechnicianId").and_then(Value::as_u64);
            let by_email = d
                .get("TechnicianEmail")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|e| !e.is_empty());
            let email = match (by_id, by_email) {
                (Some(API_TECHNICIAN_ID), _) => API_TECHNICIAN_EMAIL.to_owned(),
                (Some(id), _) => return Err(format!("Technician {id} was not found.")),
                (None, Some(e)) if technicians.iter().any(|t| t.eq_ignore_ascii_case(e)) => {
                    e.to_lowercase()
                }
                (None, Some(e)) => return Err(format!("Technician {e} was not found.")),
                (None, None) => {
                    return Err(
                        "TechnicianCommentDetails needs a TechnicianId or a TechnicianEmail."
                            .into(),
                    );
                }
            };
            let local = email.split('@').next().unwrap_or("");
            let (first, last) = local.split_once('.').unwrap_or((local, ""));
            Ok((
                text,
                Author {
                    first_name: capitalised(first),
                    last_name: capitalised(last),
                    email,
                    technician: true,
                    internal,
                },
            ))
        }
        (None, Some(d)) => match d.get("EnduserId").and_then(Value::as_u64) {
            Some(id) if id > 0 => Ok((
                text,
                Author {
                    email: format!("enduser-{id}@customer.example"),
                    first_name: "End".into(),
                    last_name: "User".into(),
                    technician: false,
                    internal: false,
                },
            )),
            _ => Err("EnduserCommentDetails needs a positive EnduserId.".into()),
        },
        (Some(_), Some(_)) => {
            Err("Give either TechnicianCommentDetails or EnduserCommentDetails, not both.".into())
        }
        (None, None) => {
            Err("TechnicianCommentDetails or EnduserCommentDetails is required.".into())
        }
    }
}

pub(super) fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `POST /api/v3/tickets/{id}/comments`; bodies Atera would refuse get its 400 ProblemDetails.
pub(super) async fn add_comment(
    State(a): State<Arc<Atera>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let mut d = a.data();
    let Some(i) = index(&id).filter(|i| *i < d.tickets.len()) else {
        return no_ticket(&id);
    };
    let (text, author) = {
        let mut technicians: Vec<&str> = d
            .tickets
            .iter()
            .map(|(t, _)| t.technician_email.as_str())
            .collect();
        technicians.push(API_TECHNICIAN_EMAIL);
        match comment_body(&v, &technicians) {
            Ok(parsed) => parsed,
            Err(why) => return problem(StatusCode::BAD_REQUEST, why),
        }
    };
    let at = d.tick();
    let c = AteraTruthComment {
        date: rfc3339_secs(at / 1000),
        comment: text.clone(),
        comment_html: format!("<p>{}</p>", html_escape(&text)),
        is_internal: author.internal,
        email: author.email,
        first_name: author.first_name,
        last_name: author.last_name,
        by_technician: author.technician,
    };
    d.tickets[i].0.comments.push(c);
    d.touch(i, at);
    let ticket_id = d.tickets[i].0.id;
    d.writes.push(AteraWrite {
        ticket_id,
        comment: text,
        is_internal: author.internal,
    });
    d.next_action += 1;
    (StatusCode::OK, Json(json!({"ActionID": d.next_action}))).into_response()
}
