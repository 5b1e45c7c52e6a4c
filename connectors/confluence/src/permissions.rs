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
//! An ACL that no one passes is [`NOBODY`], never empty: an empty ACL would be read as "unknown".
//!
//! Requests (each answer is cached for one invocation, i.e. one sync page): the groups list
//! (`GET /wiki/rest/api/group`, paged, once), a space's permissions (`GET
//! /wiki/api/v2/spaces/{id}/permissions`, once per space), a page's ancestors (`GET
//! /wiki/api/v2/pages/{id}/ancestors`, only for a page with a parent), every page's and
//! ancestor's read restriction (`GET /wiki/rest/api/content/{id}/restriction/byOperation/read`,
//! once per id) and the members of each group named (`GET
//! /wiki/rest/api/group/{groupId}/membersByGroupId`, once per group).

use std::collections::{BTreeMap, BTreeSet};

use airlock_sdk::paging::{Next, Pages};
use airlock_sdk::serde_json::Value;
use airlock_sdk::{Error, Request, Result, ids, json, url};

use crate::{Config, SPACES};

/// The ACL of a page no one may read (matches no identity: names with this prefix are not
/// taken as principals by the host).
pub const NOBODY: &str = "nobody:";
/// Page size of the v1 group listings (Confluence's maximum for them).
const V1_LIMIT: usize = 200;

/// Users and groups (by name) that pass one permission or restriction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Access {
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

impl Access {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// The ACL of a page readable by whoever passes every one of `sets` (the space's readers first,
/// then each restriction). `members(group)` lists a group's accountIds (asked once per group).
pub fn effective_readers(
    sets: &[Access],
    mut members: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let Some((first, rest)) = sets.split_first() else {
        return Ok(vec![NOBODY.to_owned()]);
    };
    let kept: BTreeSet<&String> = first
        .groups
        .iter()
        .filter(|g| rest.iter().all(|s| s.groups.contains(*g)))
        .collect();
    let mut expanded: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in sets.iter().flat_map(|s| &s.groups) {
        if !expanded.contains_key(g.as_str()) {
            expanded.insert(g, members(g)?.into_iter().collect());
        }
    }
    let passes = |user: &str, set: &Access| {
        set.users.contains(user)
            || set
                .groups
                .iter()
                .any(|g| expanded.get(g.as_str()).is_some_and(|m| m.contains(user)))
    };
    let candidates: BTreeSet<&String> = sets
        .iter()
        .flat_map(|s| &s.users)
        .chain(expanded.values().flatten())
        .collect();
    let mut acl: Vec<String> = kept.iter().map(|g| format!("group:{g}")).collect();
    acl.extend(
        candidates
            .into_iter()
            .filter(|u| sets.iter().all(|s| passes(u, s)))
            .map(|u| format!("user:{u}")),
    );
    if acl.is_empty() {
        acl.push(NOBODY.to_owned());
    }
    Ok(acl)
}

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
            let r = self.restriction(cfg, page)?;
            if !r.is_empty() {
                sets.push(r);
            }
        }
        effective_readers(&sets, |g| self.group_members(cfg, g))
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
        let first = Request::get(cfg.base_url.join(&path)).query("limit", "250");
        let assignments: Vec<Value> = v2_list(first)?;
        let mut access = Access::default();
        for a in assignments {
            let op = &a["operation"];
            if op["key"] != "read" || op["targetType"] != "space" {
                continue;
            }
            let id = a["principal"]["id"].as_str().unwrap_or_default().to_owned();
            match a["principal"]["type"].as_str() {
                Some("user") if !id.is_empty() => {
                    access.users.insert(id);
                }
                Some("group") => {
                    if let Some(name) = self.group_names(cfg)?.by_id.get(&id) {
                        access.groups.insert(name.clone());
                    }
                }
                _ => {}
            }
        }
        self.spaces.insert(space_id.to_owned(), access.clone());
        Ok(access)
    }

    /// The read restriction of content `id` (empty: none).
    fn restriction(&mut self, cfg: &Config, id: &str) -> Result<Access> {
        if let Some(a) = self.restrictions.get(id) {
            return Ok(a.clone());
        }
        let path = format!(
            "/wiki/rest/api/content/{}/restriction/byOperation/read",
            numeric(id)?
        );
        let reply: Value = Request::get(cfg.base_url.join(&path))
            .query("expand", "restrictions.user,restrictions.group")
            .query("limit", V1_LIMIT.to_string())
            .send()?
            .json()?;
        let r = &reply["restrictions"];
        // A reply without both lists (not expanded, or another shape) must not read as "no
        // restriction": that would open the page to the whole space.
        let list = |kind: &str| {
            r[kind]["results"].as_array().cloned().ok_or_else(|| {
                Error::upstream(format!(
                    "page {id}: the read restriction has no {kind} list"
                ))
            })
        };
        let users = list("user")?;
        let groups = list("group")?;
        if [&r["user"], &r["group"]]
            .iter()
            .any(|l| l["size"].as_u64().unwrap_or(0) as usize >= V1_LIMIT)
        {
            // A longer list would need paging; refusing beats a silently truncated ACL.
            return Err(Error::upstream(format!(
                "page {id}: {V1_LIMIT} or more read restrictions of one kind are not supported"
            )));
        }
        let mut access = Access::default();
        for u in users {
            if let Some(a) = u["accountId"].as_str().filter(|a| !a.is_empty()) {
                access.users.insert(a.to_owned());
            }
        }
        for g in groups {
            if let Some(n) = g["name"].as_str().filter(|n| !n.is_empty()) {
                access.groups.insert(n.to_owned());
            }
        }
        self.restrictions.insert(id.to_owned(), access.clone());
        Ok(access)
    }

    fn group_members(&mut self, cfg: &Config, name: &str) -> Result<Vec<String>> {
        if let Some(m) = self.members.get(name) {
            return Ok(m.clone());
        }
        // A group Confluence no longer lists has no members anyone can be granted through.
        let id = self.group_names(cfg)?.by_name.get(name).cloned();
        let members: Vec<String> = match id {
            None => Vec::new(),
            Some(id) => {
                let path = format!("/wiki/rest/api/group/{}/membersByGroupId", url::encode(&id));
                v1_list(cfg, &path)?
                    .iter()
                    .filter_map(|u| u["accountId"].as_str().map(str::to_owned))
                    .collect()
            }
        };
        self.members.insert(name.to_owned(), members.clone());
        Ok(members)
    }
}

/// The ancestors of page `id`, top first.
fn ancestors(cfg: &Config, id: &str) -> Result<Vec<String>> {
    let path = format!("/wiki/api/v2/pages/{}/ancestors", numeric(id)?);
    let first = Request::get(cfg.base_url.join(&path)).query("limit", "250");
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

/// Every entry of a v1 `start`/`limit` listing.
fn v1_list(cfg: &Config, path: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 0..1000 {
        let reply: Value = Request::get(cfg.base_url.join(path))
            .query("start", (page * V1_LIMIT).to_string())
            .query("limit", V1_LIMIT.to_string())
            .send()?
            .json()?;
        let results = reply["results"].as_array().cloned().unwrap_or_default();
        let n = results.len();
        out.extend(results);
        if n < V1_LIMIT || reply["_links"]["next"].is_null() {
            return Ok(out);
        }
    }
    Err(Error::upstream(format!("{path}: the listing does not end")))
}

/// An id from the upstream that goes into a path: numeric, else an `upstream` error.
fn numeric(id: &str) -> Result<&str> {
    let bad = || Error::upstream(format!("not a numeric Confluence id: {id:?}"));
    ids::is_numeric(id).then_some(id).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(users: &[&str], groups: &[&str]) -> Access {
        Access {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn members(g: &str) -> Result<Vec<String>> {
        let m: &[&str] = match g {
            "staff" => &["ann", "bob", "cy", "di"],
            "eng" => &["ann", "bob"],
            "fin" => &["cy"],
            _ => &[],
        };
        Ok(m.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn an_unrestricted_page_is_readable_by_its_spaces_readers_and_their_groups_members() {
        let mut asked = Vec::new();
        let acl = effective_readers(&[access(&["eve"], &["staff"])], |g| {
            asked.push(g.to_owned());
            members(g)
        })
        .unwrap();
        let want = [
            "group:staff",
            "user:ann",
            "user:bob",
            "user:cy",
            "user:di",
            "user:eve",
        ];
        assert_eq!(acl, want);
        assert_eq!(asked, ["staff"], "each group is listed once");
    }

    #[test]
    fn a_restriction_narrows_the_space_to_the_users_it_names_who_can_read_the_space() {
        // `eve` is named by the restriction but cannot read the space.
        let sets = [access(&[], &["staff"]), access(&["bob", "eve"], &[])];
        assert_eq!(effective_readers(&sets, members).unwrap(), vec!["user:bob"]);
    }

    #[test]
    fn restrictions_of_every_ancestor_are_inherited() {
        let space = access(&[], &["staff"]);
        let parent = access(&[], &["eng"]);
        let page = access(&["bob", "cy"], &[]);
        // Only bob is in staff, in eng (the parent's restriction) and named on the page.
        let acl = effective_readers(&[space.clone(), parent.clone(), page], members).unwrap();
        assert_eq!(acl, vec!["user:bob"]);
        // Without the page's own restriction the parent's group decides, expanded to its
        // members because the space names a different group.
        let acl = effective_readers(&[space, parent], members).unwrap();
        assert_eq!(acl, vec!["user:ann", "user:bob"]);
    }

    #[test]
    fn a_group_every_set_names_stays_a_group() {
        let sets = [access(&["cy"], &["eng"]), access(&[], &["eng", "fin"])];
        // eng passes both; cy passes the space by name and the restriction through fin; fin
        // itself is not in the space's set.
        let acl = effective_readers(&sets, members).unwrap();
        assert_eq!(acl, ["group:eng", "user:ann", "user:bob", "user:cy"]);
    }

    #[test]
    fn no_one_passing_is_an_acl_that_matches_no_one_not_an_empty_one() {
        let sets = [access(&["ann"], &[]), access(&["bob"], &[])];
        assert_eq!(effective_readers(&sets, members).unwrap(), vec![NOBODY]);
        assert_eq!(effective_readers(&[], members).unwrap(), vec![NOBODY]);
        let failing = effective_readers(&[access(&[], &["x"]), access(&["a"], &[])], |_| {
            Err(Error::upstream("down"))
        });
        assert!(failing.is_err(), "an upstream error is not an empty group");
    }
}
