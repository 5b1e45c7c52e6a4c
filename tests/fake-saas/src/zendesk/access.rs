//! Who may read what: organizations (`shared_tickets`), Help Center user segments, tickets by
//! id in bulk (`show_many`), and the changes upstream that alter a ticket's readers (CCs,
//! organization), each a ticket update with its own ticket event.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::data::{FIRST_GROUP_ID, GROUP_SEGMENT, STAFF_SEGMENT};
use super::params::{invalid, not_found};
use super::{TruthTicket, Zendesk};
use crate::common::QueryParams;
use crate::server::RunningFake;

/// `ids=1,2,3` (at most 100, as Zendesk's `show_many` endpoints take).
pub(super) fn ids_param(q: &QueryParams) -> Result<Vec<u64>, ()> {
    let raw = q.one("ids").unwrap_or("");
    let ids: Result<Vec<u64>, _> = raw
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect();
    ids.ok().filter(|ids| ids.len() <= 100).ok_or(())
}

pub(super) fn organization_json(z: &Zendesk, id: u64, shared: bool) -> serde_json::Value {
    json!({"id": id, "url": z.api(&format!("/organizations/{id}.json")),
        "name": format!("Organization {id}"), "shared_tickets": shared,
        "shared_comments": shared, "domain_names": [], "group_id": null, "tags": [],
        "created_at": "2023-01-02T08:00:00Z", "updated_at": "2023-01-02T08:00:00Z"})
}

/// `GET /organizations/{id}.json` and `GET /organizations/show_many.json?ids=`.
pub(super) async fn organizations(
    State(z): State<Arc<Zendesk>>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = z.data();
    let known = |id: &u64| d.tickets.iter().any(|t| t.organization_id == Some(*id));
    if matches!(file.as_str(), "show_many" | "show_many.json") {
        let Ok(ids) = ids_param(&QueryParams::parse(raw.as_deref())) else {
            return invalid("ids must be up to 100 comma-separated organization ids");
        };
        let orgs = ids.iter().filter(|id| known(id));
        let orgs: Vec<_> = orgs
            .map(|id| organization_json(&z, *id, d.shared_orgs.contains(id)))
            .collect();
        return Json(json!({"organizations": orgs, "next_page": null, "count": orgs.len()}))
            .into_response();
    }
    let id = file
        .strip_suffix(".json")
        .and_then(|s| s.parse::<u64>().ok());
    match id.filter(known) {
        Some(id) => {
            let org = organization_json(&z, id, d.shared_orgs.contains(&id));
            Json(json!({"organization": org})).into_response()
        }
        None => not_found(),
    }
}

/// `GET /help_center/user_segments/{id}.json`: the fake's two segments.
pub(super) async fn user_segment(Path(file): Path<String>) -> Response {
    let id = file
        .strip_suffix(".json")
        .and_then(|s| s.parse::<u64>().ok());
    let (name, user_type, groups) = match id {
        Some(STAFF_SEGMENT) => ("Agents and admins", "staff", vec![]),
        Some(GROUP_SEGMENT) => ("First group", "signed_in_users", vec![FIRST_GROUP_ID]),
        _ => return not_found(),
    };
    let segment = json!({"id": id, "name": name, "user_type": user_type, "group_ids": groups,
        "organization_ids": [], "tags": [], "or_tags": [], "built_in": user_type == "staff",
        "created_at": "2023-01-02T08:00:00Z", "updated_at": "2023-01-02T08:00:00Z"});
    Json(json!({"user_segment": segment})).into_response()
}

impl RunningFake<Zendesk> {
    /// Sets a ticket's CCs (`email_cc_ids`/`collaborator_ids`), as an agent does: the ticket is
    /// updated now and the change is a ticket event. `None` for an unknown or deleted ticket.
    pub fn set_ccs(&self, ticket: u64, ccs: &[u64]) -> Option<TruthTicket> {
        self.change(ticket, "collaborator_ids", |t| {
            let before = json!(t.ccs);
            t.ccs = ccs.to_vec();
            (before, json!(ccs))
        })
    }

    /// Moves a ticket to another organization (or none), as an agent does.
    pub fn set_organization(&self, ticket: u64, org: Option<u64>) -> Option<TruthTicket> {
        self.change(ticket, "organization_id", |t| {
            let before = json!(t.organization_id);
            t.organization_id = org;
            (before, json!(org))
        })
    }

    /// Whether the organization shares its tickets among its users. An organization setting:
    /// no ticket changes (see docs/connectors/zendesk.md).
    pub fn set_organization_shared(&self, org: u64, shared: bool) {
        let mut d = self.state.data();
        if shared {
            d.shared_orgs.insert(org);
        } else {
            d.shared_orgs.remove(&org);
        }
    }

    fn change(
        &self,
        ticket: u64,
        field: &'static str,
        edit: impl FnOnce(&mut super::data::Ticket) -> (serde_json::Value, serde_json::Value),
    ) -> Option<TruthTicket> {
        {
            let mut d = self.state.data();
            let i = usize::try_from(ticket.checked_sub(super::data::FIRST_TICKET_ID)?).ok()?;
            let t = d.tickets.get_mut(i).filter(|t| !t.deleted())?;
            let (before, after) = edit(t);
            d.change(i, field, before, after);
        }
        self.truth().tickets.into_iter().find(|t| t.id == ticket)
    }
}
