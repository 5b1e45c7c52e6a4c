//! Who may read what in the Confluence fake: users (accountId and email), groups, space
//! permission assignments and page read restrictions inherited from ancestors, served the way
//! Confluence Cloud serves them (API-NOTES.md, "Confluence permissions"). The seeded data lets
//! every seeded user read every space (group `confluence-users`), so pages are narrowed only by
//! their restrictions until a test changes the permissions through `POST /_fake/mutate`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::data::{Data, Page};
use super::errors::{bad_param, v1_error, v2_error};
use super::paging::{paged, parse_limit};
use super::{ACCOUNT_IDS, Confluence};
use crate::common::QueryParams;

/// Emails of the seeded users, in the order of [`ACCOUNT_IDS`].
pub const USER_EMAILS: &[&str] = &[
    "ada.adams@contoso.com",
    "bo.berg@contoso.com",
    "cy.chen@contoso.com",
    "di.diaz@contoso.com",
    "ed.eze@contoso.com",
    "fay.fox@contoso.com",
];

/// A group: its id (a UUID, as Confluence's are), name and members' accountIds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

/// One space permission assignment: a principal (`user`, `group` or `role`, by id) and an
/// operation (`key` on `target`, e.g. `read`/`space`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub principal_type: String,
    pub principal_id: String,
    pub key: String,
    pub target: String,
}

/// Read access that a test sets: users by accountId, groups by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadAccess {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// `restrict` in `POST /_fake/mutate`: replaces a page's read restriction (empty: none). Like
/// Confluence, this does not change the page's version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restrict {
    pub page: String,
    #[serde(flatten)]
    pub access: ReadAccess,
}

/// `space_read` in `POST /_fake/mutate`: replaces who may read a space (its `read`/`space`
/// assignments; the others stay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRead {
    pub space: String,
    #[serde(flatten)]
    pub access: ReadAccess,
}

pub fn seed_groups() -> Vec<Group> {
    let ids = |idx: &[usize]| idx.iter().map(|&i| ACCOUNT_IDS[i].to_owned()).collect();
    vec![
        Group {
            id: "9d3c7a10-5b7e-4c6a-9f00-000000000001".into(),
            name: "confluence-users".into(),
            members: ids(&[0, 1, 2, 3, 4, 5]),
        },
        Group {
            id: "9d3c7a10-5b7e-4c6a-9f00-000000000002".into(),
            name: "engineering".into(),
            members: ids(&[0, 1, 2]),
        },
        Group {
            id: "9d3c7a10-5b7e-4c6a-9f00-000000000003".into(),
            name: "finance".into(),
            members: ids(&[3, 4]),
        },
    ]
}

/// Every space: readable by `confluence-users`; a few assignments that grant something else
/// (or name a role), which must not count as read access.
pub fn seed_grants(groups: &[Group]) -> Vec<Grant> {
    let grant = |t: &str, id: &str, key: &str, target: &str| Grant {
        principal_type: t.into(),
        principal_id: id.into(),
        key: key.into(),
        target: target.into(),
    };
    vec![
        grant("group", &groups[0].id, "read", "space"),
        grant("group", &groups[1].id, "create", "page"),
        grant("user", ACCOUNT_IDS[0], "administer", "space"),
        grant(
            "role",
            "2a1b3c4d-role-0000-0000-viewer000001",
            "read",
            "space",
        ),
    ]
}

impl Data {
    fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn in_group(&self, account: &str, name: &str) -> bool {
        self.group_by_name(name)
            .is_some_and(|g| g.members.iter().any(|m| m == account))
    }

    /// The ancestors of `p`, top first.
    pub(super) fn ancestors(&self, p: &Page) -> Vec<&Page> {
        let mut out = Vec::new();
        let mut at = p.parent_id;
        while let Some(id) = at {
            let Some(parent) = self.pages.iter().find(|q| q.id == id) else {
                break;
            };
            if out.iter().any(|q: &&Page| q.id == parent.id) {
                break;
            }
            out.push(parent);
            at = parent.parent_id;
        }
        out.reverse();
        out
    }

    /// Whether a subject (`user` accountId or `group` name) may read `p`: it reads the space and
    /// passes the read restriction of the page and of every ancestor.
    pub(super) fn can_read(&self, kind: &str, who: &str, p: &Page) -> bool {
        let passes_user = |users: &[String], groups: &[String]| match kind {
            "user" => {
                users.iter().any(|u| u == who) || groups.iter().any(|g| self.in_group(who, g))
            }
            _ => groups.iter().any(|g| g == who),
        };
        let space_users: Vec<String> = self.space_readers(p.space, "user");
        let space_groups: Vec<String> = self.space_readers(p.space, "group");
        if !passes_user(&space_users, &space_groups) {
            return false;
        }
        self.ancestors(p)
            .into_iter()
            .chain([p])
            .filter(|q| !q.restricted.is_empty() || !q.restricted_groups.is_empty())
            .all(|q| passes_user(&q.restricted, &q.restricted_groups))
    }

    /// The users (accountIds) or groups (names) with `read`/`space` on space index `space`.
    fn space_readers(&self, space: usize, kind: &str) -> Vec<String> {
        self.spaces[space]
            .grants
            .iter()
            .filter(|g| g.key == "read" && g.target == "space" && g.principal_type == kind)
            .filter_map(|g| match kind {
                "group" => self
                    .groups
                    .iter()
                    .find(|x| x.id == g.principal_id)
                    .map(|x| x.name.clone()),
                _ => Some(g.principal_id.clone()),
            })
            .collect()
    }

    /// The seeded users who may read `p`.
    pub(super) fn readers_of(&self, p: &Page) -> Vec<String> {
        ACCOUNT_IDS
            .iter()
            .filter(|a| self.can_read("user", a, p))
            .map(|a| a.to_string())
            .collect()
    }

    pub(super) fn restrict(&mut self, r: &Restrict) -> bool {
        let Some(p) = self.pages.iter_mut().find(|p| p.id.to_string() == r.page) else {
            return false;
        };
        p.restricted = r.access.users.clone();
        p.restricted_groups = r.access.groups.clone();
        true
    }

    pub(super) fn set_space_read(&mut self, s: &SpaceRead) -> bool {
        let mut grants: Vec<Grant> = s
            .access
            .users
            .iter()
            .map(|u| ("user", u.clone()))
            .chain(
                s.access
                    .groups
                    .iter()
                    .filter_map(|n| self.group_by_name(n).map(|g| ("group", g.id.clone()))),
            )
            .map(|(t, id)| Grant {
                principal_type: t.into(),
                principal_id: id,
                key: "read".into(),
                target: "space".into(),
            })
            .collect();
        let Some(space) = self.spaces.iter_mut().find(|x| x.key == s.space) else {
            return false;
        };
        space
            .grants
            .retain(|g| !(g.key == "read" && g.target == "space" && g.principal_type != "role"));
        space.grants.append(&mut grants);
        true
    }
}

fn user_json(account: &str) -> Value {
    let i = ACCOUNT_IDS.iter().position(|a| *a == account);
    let email = i.and_then(|i| USER_EMAILS.get(i)).copied().unwrap_or("");
    let name = email.split('@').next().unwrap_or(account).replace('.', " ");
    json!({"type": "known", "accountId": account, "accountType": "atlassian", "email": email,
           "publicName": name, "displayName": name})
}

fn v1_page(q: &QueryParams, items: Vec<Value>, path: &str) -> Response {
    let start: usize = q.one("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let Ok(limit) = q.one("limit").map_or(Ok(200), str::parse::<usize>) else {
        return v1_error(StatusCode::BAD_REQUEST, "'limit' must be an integer");
    };
    let limit = limit.clamp(1, 200);
    let total = items.len();
    let results: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let size = results.len();
    let mut links = json!({"base": "/wiki", "context": "/wiki"});
    if start + size < total {
        links["next"] = json!(format!("{path}?start={}&limit={limit}", start + size));
    }
    Json(json!({"results": results, "start": start, "limit": limit, "size": size, "_links": links}))
        .into_response()
}

/// `GET /wiki/api/v2/spaces/{id}/permissions`.
pub async fn space_permissions(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let limit = match parse_limit(&q, 25, 250) {
        Ok(l) => l,
        Err(e) => return bad_param(e),
    };
    let start: usize = match q.one("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix("at-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return bad_param("Invalid cursor"),
        },
    };
    let d = c.data();
    let Some(space) = d.spaces.iter().find(|s| s.id.to_string() == id) else {
        return v2_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Space not found");
    };
    let all: Vec<Value> = space
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            json!({"id": format!("{}{i:04}", space.id),
                   "principal": {"type": g.principal_type, "id": g.principal_id},
                   "operation": {"key": g.key, "targetType": g.target}})
        })
        .collect();
    let next = (all.len() > start + limit).then(|| {
        format!(
            "/wiki/api/v2/spaces/{id}/permissions?limit={limit}&cursor=at-{}",
            start + limit
        )
    });
    let results = all.into_iter().skip(start).take(limit).collect();
    paged(&c, results, next)
}

/// `GET /wiki/api/v2/pages/{id}/ancestors`: top first.
pub async fn page_ancestors(State(c): State<Arc<Confluence>>, Path(id): Path<String>) -> Response {
    let d = c.data();
    let Some(p) = d
        .pages
        .iter()
        .find(|p| p.id.to_string() == id && !p.trashed)
    else {
        return v2_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found");
    };
    let results = d
        .ancestors(p)
        .iter()
        .map(|a| json!({"id": a.id.to_string(), "type": "page"}))
        .collect();
    paged(&c, results, None)
}

/// `GET /wiki/rest/api/content/{id}/restriction/byOperation/read`.
pub async fn read_restriction(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
) -> Response {
    let d = c.data();
    let Some(p) = d
        .pages
        .iter()
        .find(|p| p.id.to_string() == id && !p.trashed)
    else {
        return v1_error(
            StatusCode::NOT_FOUND,
            format!("No content found with id : ContentId{{id={id}}}"),
        );
    };
    let users: Vec<Value> = p.restricted.iter().map(|a| user_json(a)).collect();
    let groups: Vec<Value> = p
        .restricted_groups
        .iter()
        .map(|n| {
            let gid = d.group_by_name(n).map(|g| g.id.clone());
            json!({"type": "group", "name": n, "id": gid})
        })
        .collect();
    let (nu, ng) = (users.len(), groups.len());
    Json(json!({
        "operation": "read",
        "restrictions": {
            "user": {"results": users, "start": 0, "limit": 200, "size": nu},
            "group": {"results": groups, "start": 0, "limit": 200, "size": ng},
        },
        "_expandable": {"content": format!("/rest/api/content/{id}")},
        "_links": {"base": c.wiki(), "context": "/wiki"},
    }))
    .into_response()
}

/// `GET /wiki/rest/api/group`.
pub async fn list_groups(State(c): State<Arc<Confluence>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = c.data();
    let items = d
        .groups
        .iter()
        .map(|g| json!({"type": "group", "name": g.name, "id": g.id}))
        .collect();
    v1_page(&q, items, "/rest/api/group")
}

/// `GET /wiki/rest/api/group/{groupId}/membersByGroupId`.
pub async fn group_members(
    State(c): State<Arc<Confluence>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let d = c.data();
    let Some(g) = d.groups.iter().find(|g| g.id == id) else {
        return v1_error(
            StatusCode::NOT_FOUND,
            format!("No group found with id : {id}"),
        );
    };
    let items = g.members.iter().map(|a| user_json(a)).collect();
    v1_page(&q, items, &format!("/rest/api/group/{id}/membersByGroupId"))
}
