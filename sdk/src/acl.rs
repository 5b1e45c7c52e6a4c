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
    let id = crate::json::id(v?).filter(|id| !id.trim().is_empty())?;
    Some(format!("{prefix}{}", id.trim()))
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
                let key = key.replace("~1", "/").replace("~0", "~");
                let next = v.as_array().map_or_else(
                    || v.get(&key),
                    |a| key.parse().ok().and_then(|i: usize| a.get(i)),
                );
                if let Some(next) = next {
                    walk(next, rest, out);
                }
            }
        }
    }
    let mut found = Vec::new();
    for pointer in pointers.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        let path: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
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

/// A person by email (trimmed, lowercase), when `s` looks like one.
pub fn email(s: &str) -> Option<String> {
    let s = s.trim();
    (s.contains('@') && !s.contains(char::is_whitespace)).then(|| s.to_lowercase())
}

/// The ACL of `entries` (strings, or options of them: `None` is skipped): sorted, without
/// duplicates or blanks, `[nobody:]` when none is left.
pub fn of(entries: impl IntoIterator<Item = impl Into<Option<String>>>) -> Vec<String> {
    let entries = entries.into_iter().filter_map(Into::into);
    let mut acl: Vec<String> = entries.filter(|e: &String| !e.trim().is_empty()).collect();
    acl.sort();
    acl.dedup();
    if acl.is_empty() {
        acl.push(NOBODY.to_owned());
    }
    acl
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn emails_are_lowercased_and_non_emails_refused() {
        assert_eq!(email(" Ann@X.com ").as_deref(), Some("ann@x.com"));
        assert_eq!(email("not an email"), None);
        assert_eq!(email("a b@x"), None);
        assert_eq!(email(""), None);
    }
}
