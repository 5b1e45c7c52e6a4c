//! Checks for ids that go into a URL path: a caller's id must not smuggle path segments, a query
//! or a fragment into the request the connector builds from it.
//!
//! ```ignore
//! let id = ids::numeric(&id, "Zendesk ticket id")?;          // "123", else invalid-input
//! let ok = ids::is_segment(mailbox);                            // one safe path segment
//! let path = url::fill("/users/{}/messages/{}", &[mailbox, id]); // each part percent-encoded
//! ```

use crate::{Error, Result};

/// Whether `s` is one or more ASCII digits (no sign, no spaces).
pub fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `id` trimmed, when it is numeric (see [`is_numeric`]); else `invalid-input` naming `what`
/// ("not a {what}: \"../1\"").
pub fn numeric<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    let id = id.trim();
    let bad = || Error::invalid_input(format!("not a {what}: {id:?}"));
    is_numeric(id).then_some(id).ok_or_else(bad)
}

/// An id from an upstream reply that goes into a URL path (a parent's, a group's), when it is
/// numeric (see [`is_numeric`]); else an `upstream` error naming `what` ("not a numeric
/// {what}: \"x\""): the reply is wrong, not the caller.
pub fn upstream_numeric<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    let bad = || Error::upstream(format!("not a numeric {what}: {id:?}"));
    is_numeric(id).then_some(id).ok_or_else(bad)
}

/// Whether `s` can be one URL path segment as is (after percent-encoding): not empty, not `.` or
/// `..`, no `/`, `\`, `?`, `#` or control character.
pub fn is_segment(s: &str) -> bool {
    let bad = |c: char| c.is_control() || matches!(c, '/' | '\\' | '?' | '#');
    !s.is_empty() && s != "." && s != ".." && !s.chars().any(bad)
}

/// A document id `kind:part/part/...` made of a record's kind and the path segments that locate
/// it upstream (`message:ann@x.com/AAMk=`), so `get(doc.id)` can find the record again.
pub fn join(kind: &str, parts: &[impl AsRef<str>]) -> String {
    let parts: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
    format!("{kind}:{}", parts.join("/"))
}

/// The kind and path segments of a document id made by [`join`]: `invalid-input` when it has no
/// `kind:` or a segment is not [`is_segment`] (empty, `..`, a query...).
pub fn split(id: &str) -> Result<(&str, Vec<String>)> {
    let id = id.trim();
    let bad = |why: &str| Error::invalid_input(format!("invalid document id {id:?}: {why}"));
    let (kind, rest) = id
        .split_once(':')
        .ok_or_else(|| bad("expected `kind:id`"))?;
    let parts: Vec<String> = rest.split('/').map(str::to_owned).collect();
    if kind.is_empty() || !parts.iter().all(|p| is_segment(p)) {
        return Err(bad("empty or unusable path segment"));
    }
    Ok((kind, parts))
}

/// A typed numeric id, `kind:N` or `kind:N-M` (`-` separates the numbers of a compound id), or
/// bare `N` / `N-M`, which is the first of `kinds` that has that many numbers. `kinds` pairs each
/// kind with its count of numbers. Every number is digits only and fits a `u64`; anything else
/// (an unknown kind, a sign, a path segment, a query) is `invalid-input`.
///
/// ```ignore
/// match ids::typed(&id, &[("ticket", 1), ("article", 1), ("comment", 2)])? {
///     ("ticket", n) => get_ticket(n[0]),
///     ("comment", n) => get_comment(n[0], n[1]),
///     (_, n) => get_article(n[0]),
/// }
/// ```
pub fn typed(id: &str, kinds: &[(&'static str, usize)]) -> Result<(&'static str, Vec<u64>)> {
    let id = id.trim();
    let bad = |why: &str| Error::invalid_input(format!("invalid id {id:?}: {why}"));
    let (kind, rest) = id.split_once(':').map_or((None, id), |(k, r)| (Some(k), r));
    let numbers: Option<Vec<u64>> = rest
        .split('-')
        .map(|n| n.parse().ok().filter(|_| is_numeric(n)))
        .collect();
    let numbers = numbers.ok_or_else(|| bad("expected digits"))?;
    let fits =
        |(k, n): &&(&'static str, usize)| kind.is_none_or(|kind| kind == *k) && *n == numbers.len();
    let names: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    let Some((kind, _)) = kinds.iter().find(fits) else {
        return Err(bad(&format!(
            "expected one of {} (`kind:` optional)",
            names.join(", ")
        )));
    };
    Ok((kind, numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_id_that_is_not_numeric_is_the_upstreams_error() {
        assert_eq!(upstream_numeric("42", "Confluence id").unwrap(), "42");
        match upstream_numeric("../1", "Confluence id") {
            Err(Error::Upstream(m)) => assert_eq!(m, r#"not a numeric Confluence id: "../1""#),
            other => panic!("{other:?}"),
        }
        assert!(
            upstream_numeric(" 1", "id").is_err(),
            "not trimmed: the reply is taken as sent"
        );
    }

    #[test]
    fn typed_ids_name_their_kind_or_take_the_first_that_fits() {
        let kinds = [("ticket", 1), ("article", 1), ("comment", 2)];
        let ok = |id: &str| typed(id, &kinds).unwrap();
        assert_eq!(ok(" 123 "), ("ticket", vec![123]));
        assert_eq!(ok("article:9"), ("article", vec![9]));
        assert_eq!(ok("7-11"), ("comment", vec![7, 11]));
        assert_eq!(ok("comment:7-11"), ("comment", vec![7, 11]));
        for bad in [
            "",
            "ticket:",
            "../1",
            "1/2",
            "article:1?x=1",
            "user:1",
            "1-",
            "-1",
            "+1",
            "comment:7",
            "ticket:1-2",
            "1-2-3",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(typed(bad, &kinds), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_digits_are_numeric_ids() {
        assert_eq!(numeric(" 123 ", "ticket id").unwrap(), "123");
        for bad in ["", "-1", "+1", "1.5", "1/2", "../1", "1?x", "١"] {
            let e = numeric(bad, "ticket id");
            assert!(
                matches!(&e, Err(Error::InvalidInput(m)) if m.starts_with("not a ticket id")),
                "{bad}: {e:?}"
            );
        }
        assert!(is_numeric("007") && !is_numeric(" 7"));
    }

    #[test]
    fn document_ids_round_trip_through_kind_and_segments() {
        let id = join("channel-message", &["t", "19:x@thread.tacv2", "1"]);
        assert_eq!(id, "channel-message:t/19:x@thread.tacv2/1");
        let padded = format!(" {id} ");
        let (kind, parts) = split(&padded).unwrap();
        assert_eq!(
            (kind, parts),
            (
                "channel-message",
                vec!["t".into(), "19:x@thread.tacv2".into(), "1".into()]
            )
        );
        for bad in [
            "abc",
            "user:",
            ":a",
            "user:a//b",
            "event:a/../b",
            "device:a?x",
        ] {
            assert!(matches!(split(bad), Err(Error::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn a_segment_cannot_leave_its_place_in_the_path() {
        for good in ["abc", "a@b.com", "19:x@thread.tacv2", "AAMk=", "a b"] {
            assert!(is_segment(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "a?x", "a#x", "a\nb"] {
            assert!(!is_segment(bad), "{bad:?}");
        }
    }
}
