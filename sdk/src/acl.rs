//! ACL entries as the host matches them against a principal's identities
//! (docs/connector-guide.md): `user:ID` for an upstream user id (the host maps a principal's
//! email to it through `[connector.users]`), `group:NAME` for a group the principal carries, a
//! lowercase email for a person the upstream names by address, and `nobody:` when no one may
//! read the record (an empty ACL means "unknown" and is shown to nobody unless the connector is
//! configured tenant-wide).
//!
//! ```ignore
//! let acl = acl::of([acl::group("atera-technicians")].into_iter().chain(acl::email(&email)));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// The entry that matches no principal.
pub const NOBODY: &str = "nobody:";

/// The entry that matches every principal of the connector's tenant (a record the upstream
/// shows to everyone signed in, such as a public help-center article).
pub const EVERYONE: &str = "everyone:";

/// `user:ID`.
pub fn user(id: impl Display) -> String {
    format!("user:{id}")
}

/// `group:NAME`.
pub fn group(name: impl Display) -> String {
    format!("group:{name}")
}

/// `PREFIX` + an id the upstream sends as a string or a number (`user:`, `group:org:`); `None`
/// when it is missing, null, blank or of another type.
pub fn id(prefix: &str, v: Option<&serde_json::Value>) -> Option<String> {
    use std::fmt::Write;
    // Written straight into the entry: a few per synced record, so no id string in between.
    match v? {
        serde_json::Value::Number(n) => {
            let mut entry = String::with_capacity(prefix.len() + 20);
            entry.push_str(prefix);
            // Writing into a String cannot fail.
            let _ = write!(entry, "{n}");
            Some(entry)
        }
        serde_json::Value::String(s) => Some(s.trim())
            .filter(|id| !id.is_empty())
            .map(|id| [prefix, id].concat()),
        _ => None,
    }
}

/// `PREFIX` + each id of a JSON array of ids (numbers or strings; others skipped); nothing when
/// `v` is missing or not an array.
pub fn ids<'a>(
    prefix: &'a str,
    v: Option<&'a serde_json::Value>,
) -> impl Iterator<Item = String> + 'a {
    let items = v
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten();
    items.filter_map(move |i| id(prefix, Some(i)))
}

/// `PREFIX` + each id of `values`, each one id (string or number) or an array of them, as [`at`]
/// reads the value at a pointer: the ids in fields of a typed record.
///
/// ```ignore
/// let staff = acl::each("user:", [&ticket.assignee_id, &ticket.follower_ids]);
/// ```
pub fn each<'a>(
    prefix: &str,
    values: impl IntoIterator<Item = &'a serde_json::Value>,
) -> Vec<String> {
    let one =
        |v: &'a serde_json::Value| v.as_array().map_or(std::slice::from_ref(v), Vec::as_slice);
    let items = values.into_iter().flat_map(one);
    items.filter_map(|i| id(prefix, Some(i))).collect()
}

/// [`each`] for fields kept as the reply's text ([`crate::raw`]): `PREFIX` + each id of
/// `values`, each one id or an array of them (`None`, null and other types give nothing), the
/// same entries [`each`] makes of the same JSON.
pub fn each_raw<'a>(
    prefix: &str,
    values: impl IntoIterator<Item = Option<&'a serde_json::value::RawValue>>,
) -> Vec<String> {
    let mut out = Vec::new();
    extend_raw(&mut out, prefix, values);
    out
}

/// [`each_raw`]'s entries appended to `out`: a record's several id fields into one list, with
/// no list made for each on the way.
pub fn extend_raw<'a>(
    out: &mut Vec<String>,
    prefix: &str,
    values: impl IntoIterator<Item = Option<&'a serde_json::value::RawValue>>,
) {
    for text in values.into_iter().flatten().map(|v| v.get()) {
        match text.as_bytes().first() {
            // Most id arrays of a record are empty.
            Some(b'[') if text == "[]" => {}
            Some(b'[') => {
                let items = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text);
                let items = items.into_iter().flatten().map(|i| i.get());
                out.extend(
                    items
                        .filter(|i| !i.starts_with('['))
                        .filter_map(|i| raw_id(prefix, i)),
                );
            }
            _ => out.extend(raw_id(prefix, text)),
        }
    }
}

/// [`id`] of one value's JSON text: a plain integer or a string without escapes straight from
/// the text, anything else parsed first.
fn raw_id(prefix: &str, text: &str) -> Option<String> {
    let bare = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'));
    match bare {
        Some(s) if !s.contains('\\') => Some(s.trim())
            .filter(|id| !id.is_empty())
            .map(|id| [prefix, id].concat()),
        None if crate::raw::is_plain_integer(text) => Some([prefix, text].concat()),
        _ => id(prefix, serde_json::from_str(text).ok().as_ref()),
    }
}

/// `PREFIX` + each id found at the `|`-separated JSON pointers of `v`, where a value may be one
/// id (string or number) or an array of them, and a `*` segment walks every element of an array
/// (`/fields/participants/*/accountId`). Missing, null and blank values give nothing.
///
/// ```ignore
/// let staff = acl::at(ticket, "user:", "/assignee_id|/follower_ids");
/// ```
pub fn at(v: &serde_json::Value, prefix: &str, pointers: &str) -> Vec<String> {
    fn walk<'a>(v: &'a serde_json::Value, path: &[&str], out: &mut Vec<&'a serde_json::Value>) {
        match path.split_first() {
            None => match v.as_array() {
                Some(items) => out.extend(items),
                None => out.push(v),
            },
            Some((&"*", rest)) => {
                let items = v.as_array().into_iter().flatten();
                items.for_each(|item| walk(item, rest, out));
            }
            Some((key, rest)) => {
                if let Some(next) = crate::json::step(v, key) {
                    walk(next, rest, out);
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut path = Vec::new();
    for pointer in pointers.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        path.clear();
        path.extend(pointer.trim_start_matches('/').split('/'));
        walk(v, &path, &mut found);
    }
    found
        .into_iter()
        .filter_map(|v| id(prefix, Some(v)))
        .collect()
}

/// Whether an ACL admits one of `identities` (`everyone:` admits anyone who asks, `nobody:`
/// no one).
pub fn allows(acl: &[String], identities: &[String]) -> bool {
    acl.iter()
        .any(|e| e == EVERYONE || (e != NOBODY && identities.contains(e)))
}

/// The identities a `check-permission` principal stands for: `user:PRINCIPAL` (an upstream user
/// id, from `[connector.users]`) and, when it looks like one, the person's email.
pub fn identities(principal: &str) -> Vec<String> {
    let principal = principal.trim();
    [Some(user(principal)), email(principal)]
        .into_iter()
        .flatten()
        .collect()
}

/// The principal a `check-permission` call names, trimmed; `invalid-input` when it is blank.
pub fn principal(principal: &str) -> crate::Result<&str> {
    let principal = principal.trim();
    match principal.is_empty() {
        true => Err(crate::Error::invalid_input("principal is empty")),
        false => Ok(principal),
    }
}

/// A person by email (trimmed, lowercase), when `s` looks like one.
pub fn email(s: &str) -> Option<String> {
    let s = s.trim();
    (s.contains('@') && !s.contains(char::is_whitespace)).then(|| s.to_lowercase())
}

/// Each email found at the `|`-separated JSON pointers of `v` (as [`at`] finds ids), trimmed
/// and lowercased; values that are not emails are skipped.
pub fn emails_at(v: &serde_json::Value, pointers: &str) -> Vec<String> {
    at(v, "", pointers)
        .iter()
        .filter_map(|e| email(e))
        .collect()
}

/// The ACL of `entries` (strings, or options of them: `None` is skipped): sorted, without
/// duplicates or blanks, `[nobody:]` when none is left.
pub fn of(entries: impl IntoIterator<Item = impl Into<Option<String>>>) -> Vec<String> {
    let entries = entries.into_iter().filter_map(Into::into);
    let mut acl: Vec<String> = entries.filter(|e: &String| !e.trim().is_empty()).collect();
    // `str`'s order, compared inline: a `str` comparison is a call to `memcmp`, which wasm does
    // not inline (a few entries, every record).
    acl.sort_by(|a, b| a.bytes().cmp(b.bytes()));
    acl.dedup();
    if acl.is_empty() {
        acl.push(NOBODY.to_owned());
    }
    acl
}

/// The users (ids) and groups (names) that pass one permission or restriction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Access {
    /// User ids named directly.
    pub users: BTreeSet<String>,
    /// Group names; their members pass too.
    pub groups: BTreeSet<String>,
}

impl Access {
    /// The user ids at the `|`-separated JSON pointers `users` of `v` and the group names at
    /// `groups` (as [`at`] finds them: `*` walks an array), e.g. a restriction's
    /// `/user/results/*/accountId` and `/group/results/*/name`.
    pub fn at(v: &serde_json::Value, users: &str, groups: &str) -> Access {
        Access {
            users: at(v, "", users).into_iter().collect(),
            groups: at(v, "", groups).into_iter().collect(),
        }
    }

    /// Whether it names no one.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// The ACL of a record readable by whoever passes every one of `sets` (a space's readers, then
/// each restriction on the way down to the record): every user who passes all of them, by id,
/// groups expanded through `members(group)` (asked once per group, so callers need not cache),
/// plus each group every set names, kept as `group:NAME` for principals that carry it. The host
/// knows a person's id but not their upstream groups, hence the expansion. No sets, or no one
/// passing, is [`NOBODY`], never an empty ACL; an error of `members` is the caller's.
pub fn readers_of_all(
    sets: &[Access],
    mut members: impl FnMut(&str) -> crate::Result<Vec<String>>,
) -> crate::Result<Vec<String>> {
    let Some((first, rest)) = sets.split_first() else {
        return Ok(vec![NOBODY.to_owned()]);
    };
    let in_all = |g: &&String| rest.iter().all(|s| s.groups.contains(*g));
    let kept = first.groups.iter().filter(in_all).map(group);
    let mut expanded: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for g in sets.iter().flat_map(|s| &s.groups) {
        if !expanded.contains_key(g.as_str()) {
            expanded.insert(g, members(g)?.into_iter().collect());
        }
    }
    let through_group = |u: &str, s: &Access| {
        let member = |g: &String| expanded.get(g.as_str()).is_some_and(|m| m.contains(u));
        s.groups.iter().any(member)
    };
    let passes = |u: &&String| {
        sets.iter()
            .all(|s| s.users.contains(*u) || through_group(u, s))
    };
    let candidates = sets
        .iter()
        .flat_map(|s| &s.users)
        .chain(expanded.values().flatten());
    let users: BTreeSet<&String> = candidates.filter(passes).collect();
    Ok(of(kept.chain(users.into_iter().map(user))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_kept_as_text_make_the_entries_their_values_make() {
        let texts = [
            "7",
            "-3",
            "0",
            "-0",
            r#"" 42 ""#,
            r#""""#,
            r#""a\u0062c""#,
            "null",
            "true",
            "1.5",
            "{}",
            "123456789012345678901",
            "[]",
            r#"[1,"2",[3],null," ",{"id":4}]"#,
            r#"[ 5 , "x\"y" ]"#,
        ];
        for text in texts {
            let raw: &serde_json::value::RawValue = serde_json::from_str(text).unwrap();
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let expected = each("user:", [&value, &serde_json::Value::Null]);
            assert_eq!(each_raw("user:", [Some(raw), None]), expected, "{text}");
            let mut appended = vec!["kept".to_string()];
            extend_raw(&mut appended, "user:", [Some(raw)]);
            assert_eq!(appended[0], "kept");
            assert_eq!(appended[1..], expected, "{text}");
        }
    }

    #[test]
    fn entries_are_in_the_order_of_their_text() {
        let entries = [
            "user:é",
            "user:z",
            "user:Z",
            "group:a b",
            "user:10",
            "user:9",
            "user:",
        ];
        let mut sorted: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        sorted.sort();
        assert_eq!(of(entries.map(String::from)), sorted);
    }

    #[test]
    fn entries_are_sorted_deduplicated_and_never_empty() {
        let got = of([
            group("b"),
            user(7),
            group("b"),
            String::new(),
            "a@x.io".into(),
        ]);
        assert_eq!(got, ["a@x.io", "group:b", "user:7"]);
        assert_eq!(of([None, Some(group("x")), None]), ["group:x"]);
        assert_eq!(of(Vec::<String>::new()), [NOBODY]);
    }

    #[test]
    fn ids_may_be_numbers_or_strings() {
        let v = serde_json::json!({"n": 7, "s": " x1 ", "b": "", "z": null});
        let at = |k: &str| id("user:", v.get(k));
        assert_eq!(
            [at("n"), at("s")],
            [Some("user:7".into()), Some("user:x1".into())]
        );
        assert_eq!([at("b"), at("z"), at("missing")], [None, None, None]);
    }

    #[test]
    fn entries_are_found_at_pointers_through_arrays() {
        let v = serde_json::json!({"a": 1, "cc": [2, "3", null], "f": {"p": [{"id": "x"},
            {"id": ""}, {"no": 1}]}, "n": null});
        assert_eq!(
            at(&v, "user:", "/a|/cc|/n|/missing"),
            ["user:1", "user:2", "user:3"]
        );
        assert_eq!(at(&v, "user:", "/f/p/*/id"), ["user:x"]);
        assert_eq!(at(&v, "g:", "/f/p/0/id"), ["g:x"]);
        assert!(at(&v, "user:", "").is_empty());
        // A field's value, as a pointer would find it.
        for key in ["a", "cc", "n", "f"] {
            let field = &v[key];
            assert_eq!(
                each("user:", [field]),
                at(&v, "user:", &format!("/{key}")),
                "{key}"
            );
        }
        let fields = [&v["cc"], &v["a"], &v["n"]];
        assert_eq!(each("user:", fields), ["user:2", "user:3", "user:1"]);
    }

    #[test]
    fn id_arrays_and_matching() {
        let v = serde_json::json!({"a": [1, "x", null, ""], "n": 3});
        let got: Vec<String> = ids("user:", v.get("a")).collect();
        assert_eq!(got, ["user:1", "user:x"]);
        assert_eq!(ids("user:", v.get("n")).count(), 0);
        assert_eq!(ids("user:", None).count(), 0);
        let acl = of([user(1), group("g")]);
        assert!(allows(&acl, &[group("g")]));
        assert!(!allows(&acl, &[user(2)]));
        assert!(allows(&[EVERYONE.to_owned()], &[]));
        assert!(!allows(&[NOBODY.to_owned()], &[NOBODY.to_owned()]));
    }

    fn access(users: &[&str], groups: &[&str]) -> Access {
        Access {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn members(g: &str) -> crate::Result<Vec<String>> {
        let m: &[&str] = match g {
            "staff" => &["ann", "bob", "cy", "di"],
            "eng" => &["ann", "bob"],
            "fin" => &["cy"],
            _ => &[],
        };
        Ok(m.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn access_is_read_at_pointers() {
        let r = serde_json::json!({"user": {"results": [{"accountId": "a1"}, {"accountId": ""}]},
            "group": {"results": [{"name": "eng"}, {"name": "eng"}]}});
        let got = Access::at(&r, "/user/results/*/accountId", "/group/results/*/name");
        assert_eq!(got, access(&["a1"], &["eng"]));
        assert!(Access::at(&serde_json::json!({}), "/u", "/g").is_empty());
    }

    #[test]
    fn one_set_is_its_users_its_groups_and_their_members_each_group_asked_once() {
        let mut asked = Vec::new();
        let acl = readers_of_all(&[access(&["eve"], &["staff", "staff2"])], |g| {
            asked.push(g.to_owned());
            members(g)
        })
        .unwrap();
        let want = [
            "group:staff",
            "group:staff2",
            "user:ann",
            "user:bob",
            "user:cy",
            "user:di",
            "user:eve",
        ];
        assert_eq!(acl, want);
        assert_eq!(asked, ["staff", "staff2"]);
    }

    #[test]
    fn every_set_narrows_the_readers() {
        // `eve` is named by the restriction but cannot read the space.
        let sets = [access(&[], &["staff"]), access(&["bob", "eve"], &[])];
        assert_eq!(readers_of_all(&sets, members).unwrap(), ["user:bob"]);
        let (space, parent) = (access(&[], &["staff"]), access(&[], &["eng"]));
        let page = access(&["bob", "cy"], &[]);
        let acl = readers_of_all(&[space.clone(), parent.clone(), page], members).unwrap();
        assert_eq!(acl, ["user:bob"]);
        let acl = readers_of_all(&[space, parent], members).unwrap();
        assert_eq!(acl, ["user:ann", "user:bob"]);
        // A group every set names stays a group; `fin` (named by one set only) does not.
        let sets = [access(&["cy"], &["eng"]), access(&[], &["eng", "fin"])];
        let acl = readers_of_all(&sets, members).unwrap();
        assert_eq!(acl, ["group:eng", "user:ann", "user:bob", "user:cy"]);
    }

    #[test]
    fn no_one_passing_is_nobody_and_a_failed_group_listing_fails() {
        let sets = [access(&["ann"], &[]), access(&["bob"], &[])];
        assert_eq!(readers_of_all(&sets, members).unwrap(), [NOBODY]);
        assert_eq!(readers_of_all(&[], members).unwrap(), [NOBODY]);
        let failing = readers_of_all(&[access(&[], &["x"]), access(&["a"], &[])], |_| {
            Err(crate::Error::upstream("down"))
        });
        assert!(failing.is_err(), "an upstream error is not an empty group");
    }

    #[test]
    fn a_principal_is_its_user_id_and_its_email_when_it_is_one() {
        assert_eq!(identities(" 42 "), ["user:42"]);
        assert_eq!(identities("Ann@X.io"), ["user:Ann@X.io", "ann@x.io"]);
    }

    #[test]
    fn a_blank_principal_is_invalid_input() {
        assert_eq!(principal(" 42 ").unwrap(), "42");
        assert!(
            matches!(principal(" "), Err(crate::Error::InvalidInput(m)) if m == "principal is empty")
        );
    }

    #[test]
    fn emails_are_lowercased_and_non_emails_refused() {
        let v = serde_json::json!({"r": {"e": "Rae@X.io"}, "p": [{"e": "a@b.c"}, {"e": "no"}, {}]});
        assert_eq!(emails_at(&v, "/r/e|/p/*/e"), ["rae@x.io", "a@b.c"]);
        assert_eq!(email(" Ann@X.com ").as_deref(), Some("ann@x.com"));
        assert_eq!(email("not an email"), None);
        assert_eq!(email("a b@x"), None);
        assert_eq!(email(""), None);
    }
}
