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
    fn emails_are_lowercased_and_non_emails_refused() {
        assert_eq!(email(" Ann@X.com ").as_deref(), Some("ann@x.com"));
        assert_eq!(email("not an email"), None);
        assert_eq!(email("a b@x"), None);
        assert_eq!(email(""), None);
    }
}
