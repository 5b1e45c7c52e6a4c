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
//! Requests (each answer is cached for one invocation, i.e. one sync page): a space's permissions
//! (`GET /wiki/api/v2/spaces/{id}/permissions`, once per space), a page's ancestors (`GET
//! /wiki/api/v2/pages/{id}/ancestors`, only for a page with a parent), every page's and
//! ancestor's read restriction (`airlock_sdk::atlassian::read_restriction`, once per id), and
//! the site's group directory (`airlock_sdk::atlassian::Groups`: the groups list once, the
//! members of each group named once).

use airlock_sdk::acl::Access;
use airlock_sdk::atlassian::{self, Groups};
use airlock_sdk::memo::Memo;
use airlock_sdk::prelude::*;

use crate::{Config, SPACES};

/// Upstream answers of one invocation, so that pages sharing a space, an ancestor or a group
/// cost one request for all of them.
#[derive(Default)]
pub struct Permissions {
    groups: Groups,
    spaces: Memo<Access>,
    restrictions: Memo<Access>,
}

impl Permissions {
    /// The ACL of page `id` in space `space` (a `child` page, with a parent, has ancestors).
    pub fn acl(&mut self, cfg: &Config, id: &str, space: &str, child: bool) -> Result<Vec<String>> {
        let (base, groups) = (&cfg.base_url, &mut self.groups);
        let space = self.spaces.get(space, || readers(base, space, groups))?;
        let mut sets = vec![space.clone()];
        let ancestors = child.then(|| ancestors(base, id)).transpose()?;
        for page in ancestors.iter().flatten().map(String::as_str).chain([id]) {
            let r = self
                .restrictions
                .get(page, || atlassian::read_restriction(base, page))?;
            sets.extend(Some(r).filter(|r| !r.is_empty()).cloned());
        }
        acl::readers_of_all(&sets, |group| self.groups.members(base, group))
    }
}

/// Who may read a space: its `read`/`space` permission assignments. A role, or a group
/// the group directory does not know, grants nothing here (fail closed).
fn readers(base: &BaseUrl, space_id: &str, groups: &mut Groups) -> Result<Access> {
    let path = format!("{SPACES}/{}/permissions", numeric(space_id)?);
    let assignments: Vec<Value> = atlassian::v2_items(base.get(&path).query("limit", "250"), 100)?;
    let reads =
        |a: &&Value| a["operation"]["key"] == "read" && a["operation"]["targetType"] == "space";
    let mut access = Access::default();
    for a in assignments.iter().filter(reads) {
        let (kind, id) = (&a["principal"]["type"], json::text(a, "/principal/id"));
        if kind == "group" {
            access.groups.extend(groups.name(base, &id)?);
        } else if kind == "user" && !id.is_empty() {
            access.users.insert(id);
        }
    }
    Ok(access)
}

/// The ancestors of page `id`, top first.
fn ancestors(base: &BaseUrl, id: &str) -> Result<Vec<String>> {
    let path = format!("/wiki/api/v2/pages/{}/ancestors", numeric(id)?);
    let ancestors: Vec<Value> = atlassian::v2_items(base.get(&path).query("limit", "250"), 100)?;
    let no_id = || Error::upstream("page ancestors: an entry without an id");
    let ids = ancestors
        .iter()
        .map(|a| json::id(&a["id"]).ok_or_else(no_id));
    ids.collect()
}

/// An id from the upstream that goes into a path: numeric, else an `upstream` error.
fn numeric(id: &str) -> Result<&str> {
    ids::upstream_numeric(id, "Confluence id")
}
