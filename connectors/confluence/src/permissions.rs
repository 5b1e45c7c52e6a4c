//! Who may read a page: Confluence's space permissions and page read restrictions, inherited
//! from ancestors, turned into the document ACL.
//!
//! A page is readable by someone who can read its space AND passes the read restriction of the
//! page and of every ancestor that has one (API-NOTES.md, "Confluence permissions"). Each of
//! those is a set of users (accountIds) and groups. The ACL is a list where any entry grants, so
//! the intersection is computed here:
//! - every user who passes every set is listed (`user:ACCOUNT-ID`), groups expanded into their
//!   members: the host knows a person's accountId (by email) but not their Confluence groups;
//! - a group named by every set is also listed (`group:NAME`), for principals that carry the
//!   group from the identity provider under the same name.
//!
//! The intersection is `airlock_sdk::acl::readers_of_all`; an ACL that no one passes is
//! `nobody:`, never empty: an empty ACL would be read as "unknown".
//!
//! Requests (each answer is cached for one invocation, i.e. one sync page): the groups list
//! (`GET /wiki/rest/api/group`, paged, once), a space's permissions (`GET
//! /wiki/api/v2/spaces/{id}/permissions`, once per space), a page's ancestors (`GET
//! /wiki/api/v2/pages/{id}/ancestors`, only for a page with a parent), every page's and
//! ancestor's read restriction (`GET /wiki/rest/api/content/{id}/restriction/byOperation/read`,
//! once per id) and the members of each group named (`GET
//! /wiki/rest/api/group/{groupId}/membersByGroupId`, once per group).

use std::collections::BTreeMap;

use airlock_sdk::acl::{self, Access};
use airlock_sdk::paging::{self, ListPage, Next, Pages};
use airlock_sdk::serde_json::Value;
use airlock_sdk::{Error, Request, Result, ids, json, url};

use crate::{Config, SPACES};

/// Page size of the v1 group listings (Confluence's maximum for them).
const V1_LIMIT: usize = 200;

/// The site's groups: id -> name and name -> id.
#[derive(Default)]
struct Groups {
    by_id: BTreeMap<String, String>,
    by_name: BTreeMap<String, String>,
}

/// Upstream answers of one invocation, so that pages sharing a space, an ancestor or a group
/// cost one request for all of them.
#[derive(Default)]
pub struct Permissions {
    /// `None` until listed.
    groups: Option<Groups>,
    spaces: BTreeMap<String, Access>,
    restrictions: BTreeMap<String, Access>,
    members: BTreeMap<String, Vec<String>>,
}

impl Permissions {
    /// The ACL of page `id` in space `space_id` (its parent, if any, means it has ancestors).
    pub fn acl(
        &mut self,
        cfg: &Config,
        id: &str,
        space_id: &str,
        has_parent: bool,
    ) -> Result<Vec<String>> {
        let mut sets = vec![self.space(cfg, space_id)?];
        let ancestors = match has_parent {
            true => ancestors(cfg, id)?,
            false => Vec::new(),
        };
        for page in ancestors.iter().map(String::as_str).chain([id]) {
            if !self.restrictions.contains_key(page) {
                let r = restriction(cfg, page)?;
                self.restrictions.insert(page.to_owned(), r);
            }
            sets.extend(
                self.restrictions
                    .get(page)
                    .filter(|r| !r.is_empty())
                    .cloned(),
            );
        }
        acl::readers_of_all(&sets, |g| self.group_members(cfg, g))
    }

    fn group_names(&mut self, cfg: &Config) -> Result<&Groups> {
        if self.groups.is_none() {
            let mut groups = Groups::default();
            for g in v1_list(cfg, "/wiki/rest/api/group")? {
                if let (Some(id), Some(name)) = (g["id"].as_str(), g["name"].as_str()) {
                    groups.by_id.insert(id.to_owned(), name.to_owned());
                    groups.by_name.insert(name.to_owned(), id.to_owned());
                }
            }
            self.groups = Some(groups);
        }
        Ok(self.groups.get_or_insert_default())
    }

    /// Who may read a space: its `read`/`space` permission assignments. A role, or a group
    /// the groups list does not know, grants nothing here (fail closed).
    fn space(&mut self, cfg: &Config, space_id: &str) -> Result<Access> {
        if let Some(a) = self.spaces.get(space_id) {
            return Ok(a.clone());
        }
        let path = format!("{SPACES}/{}/permissions", numeric(space_id)?);
        let assignments: Vec<Value> = v2_list(cfg.base_url.get(&path).query("limit", "250"))?;
        let reads =
            |a: &&Value| a["operation"]["key"] == "read" && a["operation"]["targetType"] == "space";
        let mut access = Access::default();
        for a in assignments.iter().filter(reads) {
            let id = json::text(a, "/principal/id");
            match a["principal"]["type"].as_str() {
                Some("user") if !id.is_empty() => {
                    access.users.insert(id);
                }
                Some("group") => {
                    let name = self.group_names(cfg)?.by_id.get(&id);
                    access.groups.extend(name.cloned());
                }
                _ => {}
            }
        }
        self.spaces.insert(space_id.to_owned(), access.clone());
        Ok(access)
    }

    fn group_members(&mut self, cfg: &Config, name: &str) -> Result<Vec<String>> {
        if let Some(m) = self.members.get(name) {
            return Ok(m.clone());
        }
        // A group Confluence no longer lists has no members anyone can be granted through.
        let members = match self.group_names(cfg)?.by_name.get(name).cloned() {
            None => Vec::new(),
            Some(id) => {
                let path = format!("/wiki/rest/api/group/{}/membersByGroupId", url::encode(&id));
                let users = v1_list(cfg, &path)?;
                users
                    .iter()
                    .filter_map(|u| u["accountId"].as_str().map(str::to_owned))
                    .collect()
            }
        };
        self.members.insert(name.to_owned(), members.clone());
        Ok(members)
    }
}

/// The read restriction of content `id` (empty: none).
fn restriction(cfg: &Config, id: &str) -> Result<Access> {
    let path = format!(
        "/wiki/rest/api/content/{}/restriction/byOperation/read",
        numeric(id)?
    );
    let read = cfg.base_url.get(&path).query("limit", V1_LIMIT.to_string());
    let read = read.query("expand", "restrictions.user,restrictions.group");
    let reply: Value = read.send()?.json()?;
    let r = &reply["restrictions"];
    // A reply without both lists (not expanded, or another shape) must not read as "no
    // restriction": that would open the page to the whole space.
    if let Some(kind) = ["user", "group"]
        .into_iter()
        .find(|k| !r[k]["results"].is_array())
    {
        let message = format!("page {id}: the read restriction has no {kind} list");
        return Err(Error::upstream(message));
    }
    let size = |kind: &str| r[kind]["size"].as_u64().unwrap_or(0) as usize;
    if size("user") >= V1_LIMIT || size("group") >= V1_LIMIT {
        // A longer list would need paging; refusing beats a silently truncated ACL.
        return Err(Error::upstream(format!(
            "page {id}: {V1_LIMIT} or more read restrictions of one kind are not supported"
        )));
    }
    let users = acl::at(r, "", "/user/results/*/accountId")
        .into_iter()
        .collect();
    let groups = acl::at(r, "", "/group/results/*/name")
        .into_iter()
        .collect();
    Ok(Access { users, groups })
}

/// The ancestors of page `id`, top first.
fn ancestors(cfg: &Config, id: &str) -> Result<Vec<String>> {
    let path = format!("/wiki/api/v2/pages/{}/ancestors", numeric(id)?);
    let first = cfg.base_url.get(&path).query("limit", "250");
    let no_id = || Error::upstream("page ancestors: an entry without an id");
    let ancestors: Vec<Value> = v2_list(first)?;
    ancestors
        .iter()
        .map(|a| json::id(&a["id"]).ok_or_else(no_id))
        .collect()
}

/// Every entry of a v2 listing (`results`, `_links.next`), at most 100 pages.
fn v2_list(first: Request) -> Result<Vec<Value>> {
    Pages::new(first, Next::BodyLink("/_links/next")).items("/results", 100)
}

/// Every entry of a v1 `start`/`limit` listing; one that does not end within 1,000 pages is an
/// error (an ACL must not be built from part of a group).
fn v1_list(cfg: &Config, path: &str) -> Result<Vec<Value>> {
    paging::complete(path, 1000, 0, |&start| {
        let list = cfg.base_url.get(path).query("start", start.to_string());
        let page: ListPage<Value> = list.query("limit", V1_LIMIT.to_string()).send()?.json()?;
        Ok(page.items_and_next(start))
    })
}

/// An id from the upstream that goes into a path: numeric, else an `upstream` error.
fn numeric(id: &str) -> Result<&str> {
    let bad = || Error::upstream(format!("not a numeric Confluence id: {id:?}"));
    ids::is_numeric(id).then_some(id).ok_or_else(bad)
}
