//! Incremental exports: the cursor-based ticket export and the time-based ticket-event export.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::data::{AGENT_IDS, CHANGE, CHANNELS};
use super::params::{
    count_param, decode_export_cursor, encode_export_cursor, invalid, start_time_param, time_page,
};
use super::shapes::{ExportPage, comment_json, secs, time};
use super::{EVENTS_PAGE, EXPORT_PAGE, US, Zendesk};
use crate::common::QueryParams;

pub(super) async fn export_tickets(
    State(z): State<Arc<Zendesk>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let per_page = match count_param(&q, "per_page", EXPORT_PAGE, EXPORT_PAGE) {
        Ok(n) => n,
        Err(e) => return invalid(e),
    };
    let pos = match (q.one("cursor"), start_time_param(&q)) {
        (_, Err(e)) => return invalid(e),
        (Some(c), _) => match decode_export_cursor(c) {
            Some(p) => p,
            None => return invalid("cursor is invalid"),
        },
        (None, Ok(Some(t))) => (t * US, 0),
        (None, Ok(None)) => {
            return invalid("start_time or cursor is required");
        }
    };
    let exclude_deleted = q.one("exclude_deleted") == Some("true");
    let cutoff = z.cutoff_us();
    let d = z.data();
    let mut keys = d
        .by_updated
        .range((Excluded(pos), Unbounded))
        .take_while(|(us, _)| *us <= cutoff)
        .filter(|(_, id)| !exclude_deleted || d.ticket(*id).is_some_and(|t| !t.deleted()));
    let page: Vec<(i64, u64)> = keys.by_ref().take(per_page).copied().collect();
    let end_of_stream = keys.next().is_none();
    let after = page.last().copied().unwrap_or(pos);
    let link = |cursor: &str| {
        z.api(&format!(
            "/incremental/tickets/cursor.json?{}",
            q.encode_with(&["cursor", "start_time"], &[("cursor", cursor)])
        ))
    };
    let (after_cursor, before_cursor) = (encode_export_cursor(after), encode_export_cursor(pos));
    let tickets = page
        .iter()
        .filter_map(|(_, id)| d.ticket(*id))
        .map(|t| z.ticket_out(t))
        .collect();
    let sideload = q.list("include").iter().any(|i| i == "organizations");
    let organizations = sideload.then(|| {
        let mut ids: Vec<u64> = page
            .iter()
            .filter_map(|(_, id)| d.ticket(*id)?.organization_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let org = |id| super::access::organization_json(&z, id, d.shared_orgs.contains(&id));
        ids.into_iter().map(org).collect()
    });
    let body = ExportPage {
        organizations,
        tickets,
        after_url: link(&after_cursor),
        before_url: link(&before_cursor),
        after_cursor,
        before_cursor,
        end_of_stream,
    };
    Json(body).into_response()
}

pub(super) async fn export_ticket_events(
    State(z): State<Arc<Zendesk>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let start = match start_time_param(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return invalid("start_time is required"),
        Err(e) => return invalid(e),
    };
    let with_comments = q.list("include").iter().any(|i| i == "comment_events");
    let cutoff = z.cutoff_us();
    let d = z.data();
    let items = d
        .events
        .range((start * US, 0)..)
        .take_while(|((us, _), _)| *us <= cutoff)
        .map(|((us, id), (ti, ci))| (*us, (*ti, *ci, *id, *us)));
    let (page, end_time, end_of_stream) = time_page(items, start, EVENTS_PAGE);
    let events: Vec<Value> = page
        .iter()
        .filter_map(|&(ti, ci, id, us)| {
            let t = d.tickets.get(ti as usize)?;
            let channel = CHANNELS[usize::from(t.channel)];
            if ci == CHANGE {
                // A field change (CCs, organization, ...), as an agent's update shows it.
                let (field, previous, value) = d.changes.get(&id)?;
                let child = json!({"id": id, "via": channel, "via_reference_id": null,
                    "event_type": "Change", "field_name": field, "previous_value": previous,
                    "value": value});
                return Some(json!({
                    "id": id - 1, "ticket_id": t.id, "timestamp": secs(us),
                    "created_at": time(us), "updated_at": time(us), "updater_id": AGENT_IDS[0],
                    "via": channel, "system": {}, "metadata": {}, "event_type": "Update",
                    "merged_ticket_ids": [], "child_events": [child],
                }));
            }
            let c = t.comments.get(ci as usize)?;
            let mut child = Vec::new();
            if with_comments {
                let mut cj = comment_json(c, channel);
                cj["event_type"] = json!("Comment");
                cj["via_reference_id"] = Value::Null;
                child.push(cj);
            }
            Some(json!({
                "id": c.id - 1,
                "ticket_id": t.id,
                "timestamp": secs(c.created_us),
                "created_at": time(c.created_us),
                "updated_at": time(c.created_us),
                "updater_id": c.author_id,
                "via": channel,
                "system": {},
                "metadata": {},
                "event_type": "Update",
                "merged_ticket_ids": [],
                "child_events": child,
            }))
        })
        .collect();
    let next_page = (!end_of_stream).then(|| {
        z.api(&format!(
            "/incremental/ticket_events.json?{}",
            q.encode_with(&["start_time"], &[("start_time", &end_time.to_string())])
        ))
    });
    let count = events.len();
    Json(json!({
        "ticket_events": events,
        "next_page": next_page,
        "count": count,
        "end_of_stream": end_of_stream,
        "end_time": end_time,
    }))
    .into_response()
}
