//! Shapes the Atlassian Cloud REST APIs share, for the Confluence and Jira Service Management
//! connectors (and any other Atlassian one): offset listings (`start`/`limit` in the query;
//! Confluence v1, the JSM API), Confluence v2 cursor listings (`results`, `_links.next`), the
//! site's group directory (a group's name by its id, its members by accountId; each listing asked
//! once per invocation) and a Confluence read restriction as an [`Access`].
//!
//! ```ignore
//! let comments: Vec<Value> = atlassian::offsets(&path, &base.get(&path), 100, 50)?;
//! let ancestors: Vec<Value> = atlassian::v2_items(base.get(&path).query("limit", "250"), 100)?;
//! let mut groups = atlassian::Groups::default();
//! let name = groups.name(&base, group_id)?;            // None: not a group the site lists
//! let restriction = atlassian::read_restriction(&base, page_id)?;
//! let acl = acl::readers_of_all(&[space, restriction], |g| groups.members(&base, g))?;
//! ```

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::acl::Access;
use crate::memo::Memo;
use crate::paging::{self, ListPage, Next, Pages};
use crate::{BaseUrl, Error, Request, Result, ids, url};

/// Page size of Confluence's v1 listings of groups, members and restrictions (their maximum).
pub const V1_LIMIT: u32 = 200;
/// Page cap of a v1 listing that must be read whole (a group's members).
const V1_MAX_PAGES: usize = 1000;
/// Confluence's v1 group directory.
const GROUPS: &str = "/wiki/rest/api/group";

/// Every item of the offset listing that `first` asks for (`start` and `limit` added to its
/// query; the replies are [`ListPage`]s), `limit` a page, at most `max_pages` pages: stopping
/// there logs a warning naming `what` and keeps what was read ([`paging::collect`]).
pub fn offsets<T: DeserializeOwned>(
    what: &str,
    first: &Request,
    limit: u32,
    max_pages: usize,
) -> Result<Vec<T>> {
    paging::collect(what, max_pages, 0, |&start| {
        offset_page(first, start, limit)
    })
}

/// [`offsets`] for a listing that must be read whole (a group's members in an ACL): not ending
/// within `max_pages` pages is an `upstream` error naming `what` ([`paging::complete`]).
pub fn whole<T: DeserializeOwned>(
    what: &str,
    first: &Request,
    limit: u32,
    max_pages: usize,
) -> Result<Vec<T>> {
    paging::complete(what, max_pages, 0, |&start| {
        offset_page(first, start, limit)
    })
}

/// The items of the page of `first`'s listing at offset `start`, and the next page's offset.
fn offset_page<T: DeserializeOwned>(
    first: &Request,
    start: u32,
    limit: u32,
) -> Result<(Vec<T>, Option<u32>)> {
    let page = first.clone().query("start", start.to_string());
    let page: ListPage<T> = page.query("limit", limit.to_string()).send()?.json()?;
    Ok(page.items_and_next(start))
}

/// Every item of a Confluence v2 listing (`results`, the next page at `_links.next`) from
/// `first`, at most `max_pages` pages, typed ([`Pages::items`]).
pub fn v2_items<T: DeserializeOwned>(first: Request, max_pages: usize) -> Result<Vec<T>> {
    Pages::new(first, Next::BodyLink("/_links/next")).items("/results", max_pages)
}

/// The site's group directory as Confluence serves it (`GET /wiki/rest/api/group`, and a
/// group's members at `/wiki/rest/api/group/{groupId}/membersByGroupId`), each listing read
/// whole, once per invocation (keep one `Groups` for all the records of a sync page). Space
/// permissions name a group by id, restrictions by name; an ACL names its members by accountId.
#[derive(Default)]
pub struct Groups {
    /// `(id, name)` of every group, under the key "".
    listed: Memo<Vec<(String, String)>>,
    /// accountIds by group name.
    members: Memo<Vec<String>>,
}

impl Groups {
    /// The name of the group with id `id`; `None` for one the directory does not list (which
    /// then grants nothing: fail closed).
    pub fn name(&mut self, base: &BaseUrl, id: &str) -> Result<Option<String>> {
        let found = listed(&mut self.listed, base)?
            .iter()
            .rfind(|(i, _)| i == id);
        Ok(found.map(|(_, name)| name.clone()))
    }

    /// The accountIds of the members of the group named `name`; none for a group the directory
    /// no longer lists (no one can be granted anything through it).
    pub fn members(&mut self, base: &BaseUrl, name: &str) -> Result<Vec<String>> {
        let all = &mut self.listed;
        let members = self.members.get(name, || {
            let found = listed(all, base)?.iter().rfind(|(_, n)| n == name);
            let Some((id, _)) = found else {
                return Ok(Vec::new());
            };
            let path = format!("{GROUPS}/{}/membersByGroupId", url::encode(id));
            let users: Vec<Value> = whole(&path, &base.get(&path), V1_LIMIT, V1_MAX_PAGES)?;
            Ok(users.iter().filter_map(account_id).collect())
        });
        members.cloned()
    }
}

/// The directory's groups, listed on first use.
fn listed<'a>(
    memo: &'a mut Memo<Vec<(String, String)>>,
    base: &BaseUrl,
) -> Result<&'a [(String, String)]> {
    let list = || {
        let groups: Vec<Value> = whole(GROUPS, &base.get(GROUPS), V1_LIMIT, V1_MAX_PAGES)?;
        Ok(groups.iter().filter_map(id_and_name).collect())
    };
    memo.get("", list).map(Vec::as_slice)
}

/// `(id, name)` of a group entry; `None` without both.
fn id_and_name(group: &Value) -> Option<(String, String)> {
    let (id, name) = (group["id"].as_str()?, group["name"].as_str()?);
    Some((id.to_owned(), name.to_owned()))
}

/// The `accountId` of a user entry.
fn account_id(user: &Value) -> Option<String> {
    user["accountId"].as_str().map(str::to_owned)
}

/// Who passes the read restriction of Confluence content `id` (`GET
/// /wiki/rest/api/content/{id}/restriction/byOperation/read`, users and groups expanded):
/// [`restriction`] of the reply. `id` comes from a reply: not numeric is an `upstream` error.
pub fn read_restriction(base: &BaseUrl, id: &str) -> Result<Access> {
    let id = ids::upstream_numeric(id, "Confluence id")?;
    let path = format!("/wiki/rest/api/content/{id}/restriction/byOperation/read");
    let read = base.get(&path).query("limit", V1_LIMIT.to_string());
    let read = read.query("expand", "restrictions.user,restrictions.group");
    restriction(id, &read.send()?.json()?)
}

/// The users (accountIds) and groups (names) a read-restriction reply for content `id` lets
/// through; empty when it restricts nothing. A reply without both lists (not expanded, or
/// another shape) is an `upstream` error, not "no restriction", which would open the page to
/// its whole space; so is a list of [`V1_LIMIT`] or more (it would need paging: refusing beats
/// a silently truncated ACL).
pub fn restriction(id: &str, reply: &Value) -> Result<Access> {
    let r = &reply["restrictions"];
    let unlisted = ["user", "group"]
        .into_iter()
        .find(|k| !r[k]["results"].is_array());
    if let Some(kind) = unlisted {
        let message = format!("page {id}: the read restriction has no {kind} list");
        return Err(Error::upstream(message));
    }
    let size = |kind: &str| r[kind]["size"].as_u64().unwrap_or(0);
    if size("user") >= V1_LIMIT.into() || size("group") >= V1_LIMIT.into() {
        return Err(Error::upstream(format!(
            "page {id}: {V1_LIMIT} or more read restrictions of one kind are not supported"
        )));
    }
    let (users, groups) = ("/user/results/*/accountId", "/group/results/*/name");
    Ok(Access::at(r, users, groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> BaseUrl {
        BaseUrl::parse("http://127.0.0.1:1").unwrap()
    }

    #[test]
    fn a_restriction_lets_through_its_users_and_groups_and_none_is_empty() {
        let reply = json!({"restrictions": {
            "user": {"results": [{"accountId": "a1"}, {"accountId": "a2"}], "size": 2},
            "group": {"results": [{"name": "eng"}], "size": 1}}});
        let access = restriction("7", &reply).unwrap();
        assert_eq!(
            (access.users.len(), access.groups.len()),
            (2, 1),
            "{access:?}"
        );
        assert!(access.users.contains("a2") && access.groups.contains("eng"));
        let none = json!({"restrictions": {"user": {"results": []}, "group": {"results": []}}});
        assert!(restriction("7", &none).unwrap().is_empty());
    }

    #[test]
    fn a_restriction_without_both_lists_or_with_too_many_entries_fails() {
        let unexpanded = json!({"restrictions": {"user": {"size": 1}, "group": {"results": []}}});
        let e = restriction("7", &unexpanded);
        assert!(
            matches!(&e, Err(Error::Upstream(m)) if m.contains("no user list")),
            "{e:?}"
        );
        assert!(restriction("7", &json!({})).is_err(), "not even the object");
        let full = json!({"restrictions": {"user": {"results": [], "size": 200},
            "group": {"results": []}}});
        let e = restriction("7", &full);
        assert!(
            matches!(&e, Err(Error::Upstream(m)) if m.contains("200 or more")),
            "{e:?}"
        );
    }

    #[test]
    fn a_restriction_of_a_non_numeric_id_is_not_asked_for() {
        let e = read_restriction(&base(), "../1");
        assert!(matches!(e, Err(Error::Upstream(_))), "{e:?}");
    }

    #[test]
    fn groups_are_found_by_id_and_unknown_ones_have_no_members() {
        let mut groups = Groups::default();
        let entries = [
            json!({"id": "g1", "name": "eng"}),
            json!({"id": "g2"}),
            json!({"id": "g3", "name": "fin"}),
        ];
        let pairs: Vec<_> = entries.iter().filter_map(id_and_name).collect();
        assert_eq!(pairs.len(), 2, "an entry without a name is skipped");
        groups.listed.get("", || Ok(pairs)).unwrap();
        // Listed already: nothing below asks the upstream (there is none at this base).
        assert_eq!(groups.name(&base(), "g3").unwrap().as_deref(), Some("fin"));
        assert_eq!(groups.name(&base(), "g2").unwrap(), None);
        assert!(groups.members(&base(), "gone").unwrap().is_empty());
        assert_eq!(
            account_id(&json!({"accountId": "a1"})).as_deref(),
            Some("a1")
        );
        assert_eq!(account_id(&json!({"name": "x"})), None);
    }
}
