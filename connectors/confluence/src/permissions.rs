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

use airlock_sdk::acl::Access;
use airlock_sdk::memo::Memo;
use airlock_sdk::paging::ListPage;
use airlock_sdk::prelude::*;

use crate::{Config, SPACES, v2_list};

/// Page size of the v1 group listings (Confluence's maximum for them).
const V1_LIMIT: usize = 200;
const GROUPS: &str = "/wiki/rest/api/group";

/// The site's groups as (id, name), listed once per invocation (under the key "").
type Groups = Memo<Vec<(String, String)>>;

/// Upstream answers of one invocation, so that pages sharing a space, an ancestor or a group
/// cost one request for all of them.
#[derive(Default)]
pub struct Permissions {
    groups: Groups,
    spaces: Memo<Access>,
    restrictions: Memo<Access>,
    members: Memo<Vec<String>>,
}

impl Permissions {
    /// The ACL of page `id` in space `space` (a `child` page, with a parent, has ancestors).
    pub fn acl(&mut self, cfg: &Config, id: &str, space: &str, child: bool) -> Result<Vec<String>> {
        let groups = &mut self.groups;
        let space = self.spaces.get(space, || readers(cfg, space, groups))?;
        let mut sets = vec![space.clone()];
        let ancestors = child.then(|| ancestors(cfg, id)).transpose()?;
        for page in ancestors.iter().flatten().map(String::as_str).chain([id]) {
            let r = self.restrictions.get(page, || restriction(cfg, page))?;
            sets.extend(Some(r).filter(|r| !r.is_empty()).cloned());
        }
        let (groups, members) = (&mut self.groups, &mut self.members);
        let mut members = |g: &str| members.get(g, || group_members(cfg, groups, g)).cloned();
        acl::readers_of_all(&sets, &mut members)
    }
}

/// The site's groups, listed on first use.
fn groups<'a>(cfg: &Config, groups: &'a mut Groups) -> Result<&'a [(String, String)]> {
    let pair = |g: &Value| Some((g["id"].as_str()?.to_owned(), g["name"].as_str()?.to_owned()));
    let list = || Ok(v1_list(cfg, GROUPS)?.iter().filter_map(pair).collect());
    groups.get("", list).map(Vec::as_slice)
}

/// Who may read a space: its `read`/`space` permission assignments. A role, or a group
/// the groups list does not know, grants nothing here (fail closed).
fn readers(cfg: &Config, space_id: &str, known: &mut Groups) -> Result<Access> {
    let path = format!("{SPACES}/{}/permissions", numeric(space_id)?);
    let assignments: Vec<Value> = v2_list(cfg.base_url.get(&path).query("limit", "250"), 100)?;
    let reads =
        |a: &&Value| a["operation"]["key"] == "read" && a["operation"]["targetType"] == "space";
    let mut access = Access::default();
    for a in assignments.iter().filter(reads) {
        let (kind, id) = (&a["principal"]["type"], json::text(a, "/principal/id"));
        if kind == "group" {
            let name = groups(cfg, known)?.iter().rfind(|(i, _)| *i == id);
            access.groups.extend(name.map(|(_, name)| name.clone()));
        } else if kind == "user" && !id.is_empty() {
            access.users.insert(id);
        }
    }
    Ok(access)
}

/// The account ids of the members of group `name`; none for a group Confluence no longer lists
/// (no one can be granted anything through it).
fn group_members(cfg: &Config, known: &mut Groups, name: &str) -> Result<Vec<String>> {
    let Some((id, _)) = groups(cfg, known)?.iter().rfind(|(_, n)| n == name) else {
        return Ok(Vec::new());
    };
    let path = format!("{GROUPS}/{}/membersByGroupId", url::encode(id));
    let users = v1_list(cfg, &path)?;
    let ids = users
        .iter()
        .filter_map(|u| u["accountId"].as_str().map(str::to_owned));
    Ok(ids.collect())
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
    let unlisted = ["user", "group"]
        .into_iter()
        .find(|k| !r[k]["results"].is_array());
    if let Some(kind) = unlisted {
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
    let (users, groups) = ("/user/results/*/accountId", "/group/results/*/name");
    Ok(Access::at(r, users, groups))
}

/// The ancestors of page `id`, top first.
fn ancestors(cfg: &Config, id: &str) -> Result<Vec<String>> {
    let path = format!("/wiki/api/v2/pages/{}/ancestors", numeric(id)?);
    let ancestors: Vec<Value> = v2_list(cfg.base_url.get(&path).query("limit", "250"), 100)?;
    let no_id = || Error::upstream("page ancestors: an entry without an id");
    let ids = ancestors
        .iter()
        .map(|a| json::id(&a["id"]).ok_or_else(no_id));
    ids.collect()
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
    ids::upstream_numeric(id, "Confluence id")
}
