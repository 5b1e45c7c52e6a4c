//! `resolve-identity`: who a person is in Microsoft Graph, so that the host can match record
//! ACLs: the Entra object id of the user with this user principal name
//! (`GET /users/{upn}?$select=id`) and every group they are in, directly or through nested
//! groups (`GET /users/{id}/transitiveMemberOf`, `@odata.nextLink` followed; directory roles and
//! administrative units left out). Answers `{"id": "...", "groups": ["..."]}`; an unknown user
//! is `not-found`. Needs the application permissions `User.Read.All` and
//! `GroupMember.Read.All`.

use airlock_sdk::json::array;
use airlock_sdk::serde_json::{Value, json};
use airlock_sdk::{Error, Result, odata, url};
use serde::Deserialize;

use crate::config::Config;
use crate::documents::id_of;

/// The conventional action name the host asks (docs/permissions.md, "Upstream identities").
pub const ACTION: &str = "resolve-identity";
/// What `resolve-identity` does.
pub const ABOUT: &str = "Resolve a user principal name to the user's Entra object id and the \
                         ids of every group they are in, transitively (for matching record \
                         permissions).";
/// Upper bound on the pages of a user's memberships (999 each): a longer listing is an error
/// rather than a silently shortened list.
const MAX_GROUP_PAGES: usize = 20;

// The input of `resolve-identity`.
#[derive(Deserialize, airlock_sdk::schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "airlock_sdk::schemars")]
pub struct Input {
    /// User principal name (or the email the host knows the person by)
    #[schemars(email, length(min = 3))]
    email: String,
}

/// A user principal name or mail address fit for a URL path segment and an OData literal.
pub fn checked_email(email: &str) -> Result<&str> {
    let email = email.trim();
    let odd = |c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '\'' | '\\' | '"');
    if email.len() < 3 || !email.contains('@') || email.chars().any(odd) {
        let message = "`email` must be a user principal name or mail address";
        return Err(Error::invalid_input(message));
    }
    Ok(email)
}

/// Runs the action on its JSON input.
pub fn resolve(input: &str) -> Result<String> {
    let input: Input = airlock_sdk::action_input(ACTION, ACTION, input)?;
    let upn = checked_email(&input.email)?;
    let cfg = Config::load()?;
    let user = cfg.api.join(&url::fill("/users/{}", &[upn]));
    let missing = || Error::not_found(format!("no user with principal name {upn}"));
    let user = odata::record(url::with_query(&user, "$select", "id"))?.ok_or_else(missing)?;
    let no_id = || Error::upstream("Graph returned a user without a usable id");
    let id = id_of(&user).ok_or_else(no_id)?;
    let groups = groups(&cfg, id)?;
    Ok(json!({"id": id, "groups": groups}).to_string())
}

/// The ids of every group user `user_id` is in, transitively; the whole listing or an error.
pub fn groups(cfg: &Config, user_id: &str) -> Result<Vec<String>> {
    let first = cfg
        .api
        .join(&url::fill("/users/{}/transitiveMemberOf", &[user_id]));
    let first = url::with_query(&url::with_query(&first, "$select", "id"), "$top", "999");
    let pages = odata::complete("group memberships", MAX_GROUP_PAGES, first, |l| cfg.link(l))?;
    Ok(group_ids(&pages))
}

/// The group ids of membership pages (other directory objects skipped), sorted, once each.
fn group_ids(pages: &[Value]) -> Vec<String> {
    let is_group = |o: &&Value| o["@odata.type"] == "#microsoft.graph.group";
    let objects = pages.iter().flat_map(|p| array(p, "/value"));
    let mut ids: Vec<String> = objects
        .filter(is_group)
        .filter_map(id_of)
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_count_among_a_users_memberships() {
        let pages = [
            json!({"value": [
                {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                {"@odata.type": "#microsoft.graph.directoryRole", "id": "r1"},
                {"@odata.type": "#microsoft.graph.group", "id": "a/b"}]}),
            json!({"value": [{"@odata.type": "#microsoft.graph.group", "id": "g1"},
                {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                {"@odata.type": "#microsoft.graph.administrativeUnit", "id": "u1"}]}),
        ];
        assert_eq!(group_ids(&pages), ["g1", "g2"]);
    }

    #[test]
    fn only_a_plain_principal_name_goes_into_the_url() {
        assert_eq!(
            checked_email(" ada@contoso.com ").ok(),
            Some("ada@contoso.com")
        );
        for bad in ["ada", "a@b/../x", "a@b?x", "o'x@b.com", "a b@c.com", ""] {
            assert!(checked_email(bad).is_err(), "{bad}");
        }
    }
}
