//! Tickets: the listing (filtered by status and customer), the `lastmodified` listing since a
//! date-time (oldest change first) and single tickets.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::shapes::{problem, ticket_json};
use super::{Atera, FIRST_TICKET_ID};
use crate::common::{QueryParams, parse_date_time};

pub(super) async fn list_tickets(State(a): State<Arc<Atera>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let (status, customer) = (q.one("ticketStatus"), q.one("customerId"));
    let items = a
        .data()
        .tickets
        .iter()
        .map(|(t, _)| t)
        .filter(|t| status.is_none_or(|s| t.status.eq_ignore_ascii_case(s)))
        .filter(|t| customer.is_none_or(|c| c == t.customer_id.to_string()))
        .map(ticket_json)
        .collect();
    a.envelope("/api/v3/tickets", &q, items)
}

pub(super) async fn last_modified(
    State(a): State<Arc<Atera>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let Some(since) = q.one("date").and_then(parse_date_time) else {
        return problem(StatusCode::BAD_REQUEST, "date is required (a date-time)");
    };
    let items = {
        let d = a.data();
        let mut hits: Vec<_> = d.tickets.iter().filter(|(_, m)| *m >= since).collect();
        hits.sort_by_key(|(t, m)| (*m, t.id));
        hits.into_iter().map(|(t, _)| ticket_json(t)).collect()
    };
    a.envelope("/api/v3/tickets/lastmodified", &q, items)
}

pub(super) fn index(id: &str) -> Option<usize> {
    let id = id.parse::<u64>().ok()?.checked_sub(FIRST_TICKET_ID)?;
    usize::try_from(id).ok()
}

pub(super) fn no_ticket(id: &str) -> Response {
    problem(StatusCode::NOT_FOUND, format!("Ticket {id} was not found"))
}

pub(super) async fn get_ticket(State(a): State<Arc<Atera>>, Path(id): Path<String>) -> Response {
    let d = a.data();
    match index(&id).and_then(|i| d.tickets.get(i)) {
        Some((t, _)) => Json(ticket_json(t)).into_response(),
        None => no_ticket(&id),
    }
}
