//! JSON shapes as Atera sends them: tickets and comments (PascalCase fields), and its RFC 7807
//! ProblemDetails errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AteraTruthComment, AteraTruthTicket};
use crate::common::set_header;

pub(super) fn ticket_json(t: &AteraTruthTicket) -> Value {
    json!({
        "TicketID": t.id, "TicketNumber": t.number, "TicketTitle": t.title,
        "TicketStatus": t.status, "TicketPriority": t.priority, "TicketType": t.ticket_type,
        "TicketCreatedDate": t.created, "TicketResolvedDate": t.resolved,
        "CustomerID": t.customer_id, "CustomerName": t.customer_name,
        "EndUserID": t.end_user_id, "EndUserEmail": t.end_user_email,
        "EndUserFirstName": t.end_user_first_name, "EndUserLastName": t.end_user_last_name,
        "TechnicianEmail": t.technician_email,
        "FirstComment": t.first_comment, "LastEndUserComment": t.last_end_user_comment,
        "LastTechnicianComment": t.last_technician_comment,
        "LastEndUserCommentTimestamp": t.last_end_user_comment_timestamp,
        "LastTechnicianCommentTimestamp": t.last_technician_comment_timestamp,
    })
}

pub(super) fn comment_json(c: &AteraTruthComment) -> Value {
    json!({"Date": c.date, "Comment": c.comment, "CommentHtml": c.comment_html,
        "IsInternal": c.is_internal, "Email": c.email, "FirstName": c.first_name,
        "LastName": c.last_name})
}

/// RFC 7807 ProblemDetails.
pub(super) fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({"type": "https://tools.ietf.org/html/rfc9110#section-15",
        "title": status.canonical_reason().unwrap_or("Error"), "status": status.as_u16(),
        "detail": detail.into(), "traceId": "00-fake-atera-00"});
    let mut resp = (status, Json(body)).into_response();
    set_header(&mut resp, "content-type", "application/problem+json");
    resp
}
