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

#[cfg(test)]
mod tests {
    use super::*;

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
