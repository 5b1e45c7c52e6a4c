//! Fields of a typed record kept as the reply's own JSON text ([`RawValue`], borrowed): a field
//! that only passes through to a document's metadata, or whose ids go into its ACL, needs no
//! `Value` built for it, and no `Value` written again. On an unchanged re-sync of a large export
//! that building and writing was a quarter of the connector's time.
//!
//! ```ignore
//! #[derive(Deserialize, Default)]
//! #[serde(default)]
//! struct Ticket<'a> {
//!     id: Option<u64>,
//!     #[serde(borrow)]
//!     status: Option<&'a RawValue>,
//!     #[serde(borrow)]
//!     follower_ids: Option<&'a RawValue>,
//! }
//! let doc = Document::new("ticket", id, title)
//!     .metadata_raw([("status", t.status)])
//!     .acl(acl::each_raw("user:", [t.follower_ids]));
//! ```
//!
//! A record with such fields is read from text only (`Response::json`,
//! [`crate::json::typed_text`]): a `Value` cannot lend its text.

use std::borrow::Cow;
use std::sync::OnceLock;

pub use serde_json::value::RawValue;

/// The string `raw` holds (unescaped only when it has an escape); `None` for a missing value and
/// for any other type, as [`serde_json::Value::as_str`].
pub fn str(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let text = raw?.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    match inner.contains('\\') {
        false => Some(Cow::Borrowed(inner)),
        true => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
    }
}

/// The unsigned integer `raw` holds; `None` for a missing value, another type or a number that
/// is not one, as [`serde_json::Value::as_u64`].
pub fn u64(raw: Option<&RawValue>) -> Option<u64> {
    // A JSON number's text has no sign, fraction or exponent exactly when it is such an integer.
    raw?.get().parse().ok()
}

/// `[]`, for a field that stands for an empty list when it is missing or null.
pub fn empty_array() -> Option<&'static RawValue> {
    // Made once: a record without the field asks for it, every record of a page.
    static EMPTY: OnceLock<Option<Box<RawValue>>> = OnceLock::new();
    EMPTY
        .get_or_init(|| RawValue::from_string("[]".to_owned()).ok())
        .as_deref()
}

/// Whether `text` is a JSON integer as a `Value` writes it back: digits (an optional `-`), no
/// leading zero, short enough to fit an `i64`/`u64` (a longer one becomes a float), and not
/// `-0` (a float to serde_json, written back as `-0.0`).
pub(crate) fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let short = !digits.is_empty() && digits.len() <= 18;
    short
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0"
}

/// A JSON object of `(key, value)` pairs, each value as its text (`None`: `null`): keys sorted
/// and, of a key given twice, the last value kept, as a `json!` object of the same pairs has
/// them. Keys are escaped; values are written as they are (valid JSON: a [`RawValue`] is
/// checked when read).
pub(crate) fn object(fields: &mut [(&str, Option<&RawValue>)]) -> String {
    // Stable: of equal keys the last stays last. Compared byte by byte, inline: a `str`
    // comparison is a call to `memcmp`, which wasm does not inline (7 fields, every record).
    let order = |a: &(&str, _), b: &(&str, _)| a.0.bytes().cmp(b.0.bytes());
    if !fields.is_sorted_by(|a, b| order(a, b).is_le()) {
        fields.sort_by(order);
    }
    let size = fields
        .iter()
        .map(|(k, v)| k.len() + v.map_or(4, |v| v.get().len()) + 4);
    let size: usize = size.sum();
    let mut out = String::with_capacity(size + 2);
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if fields
            .get(i + 1)
            .is_some_and(|(next, _)| next.bytes().eq(key.bytes()))
        {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        match key.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            // A key is a string: writing it cannot fail.
            true => out.push_str(&serde_json::to_string(key).unwrap_or_default()),
            false => {
                out.push('"');
                out.push_str(key);
                out.push('"');
            }
        }
        out.push(':');
        out.push_str(value.map_or("null", |v| v.get()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_string_is_borrowed_unless_escaped_and_other_types_are_none() {
        assert!(matches!(
            str(Some(raw(r#""open""#))),
            Some(Cow::Borrowed("open"))
        ));
        assert_eq!(str(Some(raw(r#""a\"b\u00e9""#))).as_deref(), Some("a\"bé"));
        for other in ["1", "null", "[]", "{}", "true"] {
            assert_eq!(str(Some(raw(other))), None, "{other}");
        }
        assert_eq!(str(None), None);
    }

    #[test]
    fn the_empty_array_is_one_value_made_once() {
        let first = empty_array().map(RawValue::get);
        assert_eq!(first, Some("[]"));
        assert!(std::ptr::eq(empty_array().unwrap(), empty_array().unwrap()));
    }

    #[test]
    fn an_unsigned_integer_is_read_as_a_value_reads_it() {
        for text in [
            "0",
            "-0",
            "7",
            "18446744073709551615",
            "-1",
            "1.0",
            "1e3",
            r#""5""#,
            "null",
        ] {
            let expected = serde_json::from_str::<Value>(text).unwrap().as_u64();
            assert_eq!(u64(Some(raw(text))), expected, "{text}");
        }
    }

    #[test]
    fn an_object_of_raw_fields_is_what_json_writes_for_the_same_pairs() {
        let (a, b) = (raw(r#"["x","y"]"#), raw(r#""open""#));
        let mut fields = [
            ("tags", Some(a)),
            ("status", Some(b)),
            ("gone", None),
            ("status", Some(raw("2"))),
        ];
        let written = object(&mut fields);
        let expected = json!({"tags": ["x", "y"], "status": "open", "gone": null, "status": 2});
        assert_eq!(written, expected.to_string());
        assert_eq!(object(&mut []), "{}");
        let mut odd = [("a\"b", Some(raw("1")))];
        assert_eq!(object(&mut odd), json!({"a\"b": 1}).to_string());
    }

    #[test]
    fn plain_integers_are_those_a_value_writes_back_unchanged() {
        for text in [
            "0",
            "-0",
            "-5",
            "123456789012345678",
            "1.5",
            "01",
            "-",
            "",
            "1e2",
            "1234567890123456789012",
        ] {
            let back = serde_json::from_str::<Value>(text)
                .ok()
                .map(|v| v.to_string());
            let same = back.as_deref() == Some(text);
            // Every "plain" one comes back unchanged (the converse need not hold).
            assert!(!is_plain_integer(text) || same, "{text}");
        }
        assert!(is_plain_integer("360020000243"));
    }
}
