//! Reading fields out of an upstream's JSON when a typed struct would only copy them along: text at
//! a JSON pointer (missing and null read as `""`), the first non-blank of several pointers, the
//! items of an array, a metadata object picked from named keys, ids that arrive as strings or as
//! numbers, and a field a record cannot do without (a string, or a numeric id).
//!
//! ```ignore
//! let title = json::first(item, "/displayName|/userPrincipalName");
//! let meta = json::pick(item, "status,priority,tags", json!({"mailbox": mailbox}));
//! let id = json::required(item, "/id")?;
//! ```
//!
//! Pointers are RFC 6901 JSON pointers (`/body/content`); where several are accepted they are
//! separated by `|` and tried in order.
//!
//! Where a sync reads many records, a typed record of only the fields the connector uses is much
//! cheaper than a `Value` of every field: [`Text`] reads a field as loosely as [`text`] does,
//! borrowed from the reply, and [`typed`] reads a `Value` already at hand into such a record.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The value at the JSON `pointer` in `v`, as [`Value::pointer`] finds it, without building a
/// string for each segment (only one with an escape, `~0` or `~1`, is unescaped): the helpers
/// here read several fields of every record of a page.
pub fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(v);
    }
    let mut segments = pointer.strip_prefix('/')?.split('/');
    segments.try_fold(v, step)
}

/// The child of `v` a pointer's `segment` (escaped as RFC 6901 has it) names.
pub(crate) fn step<'a>(v: &'a Value, segment: &str) -> Option<&'a Value> {
    let key = match segment.contains('~') {
        true => Cow::Owned(segment.replace("~1", "/").replace("~0", "~")),
        false => Cow::Borrowed(segment),
    };
    match v {
        Value::Object(map) => map.get(&*key),
        Value::Array(items) => items.get(index(&key)?),
        _ => None,
    }
}

/// An array index of a pointer as RFC 6901 has it: digits, no leading zero.
fn index(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let canonical = segment == "0" || !segment.starts_with('0');
    (digits && canonical).then(|| segment.parse().ok())?
}

/// The string, number or boolean at `pointer` as text; `""` when missing, null or another type.
pub fn text(v: &Value, pointer: &str) -> String {
    match at(v, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    }
}

/// The first non-blank [`text`] of the `|`-separated `pointers`, else `""`.
pub fn first(v: &Value, pointers: &str) -> String {
    let mut values = pointers.split('|').map(|p| text(v, p));
    values.find(|t| !t.trim().is_empty()).unwrap_or_default()
}

/// The first non-blank of `texts`, else `""` (as [`first`] picks among pointers).
pub fn first_of<'a>(texts: impl IntoIterator<Item = &'a str>) -> &'a str {
    let mut texts = texts.into_iter();
    texts.find(|t| !t.trim().is_empty()).unwrap_or_default()
}

/// A field of a typed record read as [`text`] reads it: a string (borrowed from the reply when
/// it has no escapes), a number or a boolean as text, and `""` for null, an object or an array
/// (and, with `#[serde(default)]`, for a missing field). The other fields of the record are
/// skipped unread, so only what the connector uses is built.
///
/// ```ignore
/// #[derive(Deserialize, Default)]
/// #[serde(default)]
/// struct Ticket<'a> {
///     id: Option<u64>,
///     #[serde(borrow)]
///     subject: json::Text<'a>,
/// }
/// let page: Page<Ticket> = reply.json()?; // borrows from `reply`
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> de::Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(s)))
    }

    fn visit_bool<E>(self, b: bool) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(if b { "true" } else { "false" })))
    }

    fn visit_u64<E>(self, n: u64) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(n.to_string())))
    }

    fn visit_i64<E>(self, n: i64) -> core::result::Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(n.to_string())))
    }

    fn visit_f64<E>(self, n: f64) -> core::result::Result<Text<'de>, E> {
        // Formatted as a `Value` formats it (JSON has no NaN or infinity).
        Ok(Text(Cow::Owned(Value::from(n).to_string())))
    }

    fn visit_unit<E>(self) -> core::result::Result<Text<'de>, E> {
        Ok(Text::default())
    }

    fn visit_none<E>(self) -> core::result::Result<Text<'de>, E> {
        Ok(Text::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> core::result::Result<Text<'de>, D::Error> {
        Text::deserialize(d)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> core::result::Result<Text<'de>, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Text::default())
    }

    fn visit_map<A: de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> core::result::Result<Text<'de>, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Text::default())
    }
}

/// The record `v` as the typed `T` (borrowing its text, see [`Text`]): a search hit or a
/// `show_many` item read like the records of an export page; an `upstream` error when it does
/// not match.
pub fn typed<'a, T: Deserialize<'a>>(v: &'a Value) -> Result<T> {
    T::deserialize(v).map_err(unexpected_record)
}

/// The record in the JSON `text` as the typed `T`, as [`typed`] reads a `Value`: for a record
/// with fields kept as text ([`crate::raw`]), which only text can lend. A `Value` at hand is read
/// through its text: `typed_text(&v.to_string())`.
pub fn typed_text<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(unexpected_record)
}

fn unexpected_record(e: serde_json::Error) -> Error {
    Error::upstream(format!("unexpected upstream record ({e})"))
}

/// The non-blank [`text`]s of the `|`-separated `pointers`, trimmed and joined with `sep`.
pub fn join(v: &Value, pointers: &str, sep: &str) -> String {
    let values: Vec<String> = pointers.split('|').map(|p| text(v, p)).collect();
    crate::text::join_non_blank(&values, sep)
}

/// The items of the array at `pointer` (none when it is missing or not an array).
pub fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + Clone {
    at(v, pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The non-empty [`text`] at `inner` of each item of the array at `pointer` (the addresses of a
/// list of recipients, the names of a list of labels).
pub fn texts(v: &Value, pointer: &str, inner: &str) -> Vec<String> {
    let values = array(v, pointer).map(|item| text(item, inner));
    values.filter(|t| !t.is_empty()).collect()
}

/// How many of `items` have each [`text`] at `pointer` (`missing` for none), e.g. devices by
/// compliance state.
pub fn tally<'a>(
    items: impl IntoIterator<Item = &'a Value>,
    pointer: &str,
    missing: &str,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for item in items {
        let key = crate::text::or(text(item, pointer), missing);
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// An object of the comma-separated top-level `keys` of `v` (a missing key as null), with the
/// fields of the object `extra` added: the usual way to build a document's metadata.
pub fn pick(v: &Value, keys: &str, extra: Value) -> Value {
    let value = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let map: Map<String, Value> = keys.split(',').map(|k| (k.to_owned(), value(k))).collect();
    merge(Value::Object(map), extra)
}

/// The object `a` with the fields of the object `b` added (`b` wins); `a` unchanged when either
/// is not an object.
pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// The string at `pointer` that a record cannot do without; `upstream` error naming it when it
/// is missing, empty or not a string.
pub fn required<'a>(v: &'a Value, pointer: &str) -> Result<&'a str> {
    let missing = || Error::upstream(format!("an upstream record without `{pointer}`"));
    let found = at(v, pointer).and_then(Value::as_str);
    found.filter(|s| !s.is_empty()).ok_or_else(missing)
}

/// The unsigned integer at `pointer` that a record cannot do without (a numeric id);
/// `upstream` error naming it when it is missing or not such a number.
pub fn required_u64(v: &Value, pointer: &str) -> Result<u64> {
    let found = at(v, pointer).and_then(Value::as_u64);
    found
        .ok_or_else(|| Error::upstream(format!("an upstream record without a numeric `{pointer}`")))
}

/// An id sent as a string or as a number, as a string; `None` for anything else.
pub fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Serde `deserialize_with` for an id field sent as a string or as a number (APIs differ, and
/// some change their mind between versions): `#[serde(deserialize_with =
/// "airlock_sdk::json::string_or_number")]`.
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> core::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => Ok(n.to_string()),
        other => String::deserialize(other).map_err(de::Error::custom),
    }
}

/// Answers an upstream tags with the index of the input each one answers (embeddings, batch
/// replies), put back in input order: exactly one for each index below `n`. A missing, repeated
/// or out-of-range index is an `upstream` error naming `what`, never a silent gap or a shift.
///
/// ```ignore
/// let vectors = json::by_index(texts.len(), reply.data.into_iter().map(|d| (d.index, d.embedding)), "embedding")?;
/// ```
pub fn by_index<T>(
    n: usize,
    items: impl IntoIterator<Item = (usize, T)>,
    what: &str,
) -> Result<Vec<T>> {
    let mut slots: Vec<Option<T>> = std::iter::repeat_with(|| None).take(n).collect();
    for (index, item) in items {
        let Some(slot) = slots.get_mut(index) else {
            let message = format!("{what} index {index} out of range (there are {n} inputs)");
            return Err(Error::upstream(message));
        };
        if slot.replace(item).is_some() {
            return Err(Error::upstream(format!("{what} index {index} came twice")));
        }
    }
    let each = slots.into_iter().enumerate();
    let missing = |i| Error::upstream(format!("no {what} for input {i}"));
    each.map(|(i, item)| item.ok_or_else(|| missing(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_by_index_come_back_in_input_order_exactly_once() {
        let got = by_index(3, [(2, "c"), (0, "a"), (1, "b")], "vector").unwrap();
        assert_eq!(got, ["a", "b", "c"]);
        assert!(
            by_index(0, Vec::<(usize, u8)>::new(), "vector")
                .unwrap()
                .is_empty()
        );
        let err = |r: Result<Vec<&str>>| match r {
            Err(Error::Upstream(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(by_index(2, [(0, "a")], "vector")),
            "no vector for input 1"
        );
        assert!(err(by_index(1, [(1, "a")], "vector")).contains("out of range"));
        assert!(err(by_index(2, [(0, "a"), (0, "b"), (1, "c")], "vector")).contains("twice"));
    }

    #[test]
    fn text_reads_scalars_and_missing_or_null_as_empty() {
        let v = json!({"a": "x", "n": 5, "b": true, "z": null, "o": {"p": "deep"}});
        let read: Vec<String> = ["/a", "/n", "/b", "/z", "/o", "/missing", "/o/p"]
            .iter()
            .map(|p| text(&v, p))
            .collect();
        assert_eq!(read, ["x", "5", "true", "", "", "", "deep"]);
        assert_eq!(first(&v, "/z|/missing|/o/p|/a"), "deep");
        assert_eq!(first(&v, "/z|/missing"), "");
        let blank = json!({"a": "  ", "b": "b"});
        assert_eq!(first(&blank, "/a|/b"), "b", "blank counts as missing");
        assert_eq!(
            join(&json!({"a": " x ", "b": "", "c": "y"}), "/a|/b|/c", ", "),
            "x, y"
        );
        let items = json!({"list": [1, 2], "other": {}});
        assert_eq!(array(&items, "/list").count(), 2);
        assert_eq!(array(&items, "/other").count(), 0);
        assert_eq!(array(&items, "/missing").count(), 0);
        let to = json!({"to": [{"a": {"b": "x@y"}}, {"a": {}}, {"a": {"b": "z@y"}}]});
        assert_eq!(texts(&to, "/to", "/a/b"), ["x@y", "z@y"]);
        assert!(texts(&to, "/cc", "/a/b").is_empty());
        let devices = [
            json!({"s": "compliant"}),
            json!({"s": "noncompliant"}),
            json!({}),
            json!({"s": "compliant"}),
        ];
        let counts = tally(&devices, "/s", "unknown");
        let want = [("compliant", 2), ("noncompliant", 1), ("unknown", 1)];
        assert!(counts.iter().map(|(k, v)| (k.as_str(), *v)).eq(want));
    }

    #[test]
    fn typed_text_reads_fields_as_text_does_and_borrows_plain_strings() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Record<'a> {
            #[serde(borrow)]
            a: Text<'a>,
            n: Text<'a>,
            f: Text<'a>,
            b: Text<'a>,
            z: Text<'a>,
            o: Text<'a>,
            l: Text<'a>,
            e: Text<'a>,
            missing: Text<'a>,
        }
        let body = r#"{"a": "x", "n": -5, "f": 1.5, "b": true, "z": null, "o": {"p": [1]},
            "l": [{"q": 1}, 2], "e": "line\nbreak", "other": {"deep": [1, 2]}}"#;
        let r: Record = serde_json::from_str(body).unwrap();
        let v: Value = serde_json::from_str(body).unwrap();
        let got = [&r.a, &r.n, &r.f, &r.b, &r.z, &r.o, &r.l, &r.e, &r.missing];
        let keys = ["/a", "/n", "/f", "/b", "/z", "/o", "/l", "/e", "/missing"];
        for (t, key) in got.iter().zip(keys) {
            assert_eq!(&*t.0, text(&v, key), "{key}");
        }
        assert!(
            matches!(r.a.0, Cow::Borrowed("x")),
            "a plain string is borrowed"
        );
        assert!(
            matches!(r.e.0, Cow::Owned(_)),
            "an escaped one is unescaped"
        );
        // Read from a `Value` at hand, strings are borrowed from it.
        let r: Record = typed(&v).unwrap();
        assert!(matches!(r.a.0, Cow::Borrowed("x")));
        assert!(matches!(
            typed::<Record>(&json!("no record")),
            Err(Error::Upstream(_))
        ));
        assert_eq!(first_of([" ", "", "b", "c"]), "b");
        assert_eq!(first_of([" ", ""]), "");
    }

    #[test]
    fn pick_names_every_key_and_extra_fields_win() {
        let v = json!({"status": "open", "tags": ["a"], "noise": 1});
        let meta = pick(
            &v,
            "status,tags,priority",
            json!({"mailbox": "m", "status": "x"}),
        );
        assert_eq!(
            meta,
            json!({"status": "x", "tags": ["a"], "priority": null, "mailbox": "m"})
        );
        assert_eq!(merge(json!([1]), json!({"a": 1})), json!([1]));
    }

    #[test]
    fn ids_come_as_strings_or_numbers_and_required_fields_fail_the_record() {
        assert_eq!(id(&json!(42)).as_deref(), Some("42"));
        assert_eq!(id(&json!("7")).as_deref(), Some("7"));
        assert_eq!(id(&json!(null)), None);
        #[derive(Deserialize)]
        struct Page {
            #[serde(deserialize_with = "string_or_number")]
            id: String,
        }
        let page: Page = serde_json::from_value(json!({"id": 9})).unwrap();
        assert_eq!(page.id, "9");
        assert!(serde_json::from_value::<Page>(json!({"id": [1]})).is_err());
        let v = json!({"id": "10", "empty": "", "n": 1});
        assert_eq!(required(&v, "/id").unwrap(), "10");
        assert_eq!(required_u64(&v, "/n").unwrap(), 1);
        for not_a_number in ["/id", "/nope"] {
            let e = required_u64(&v, not_a_number);
            assert!(
                matches!(&e, Err(Error::Upstream(m)) if m.contains(not_a_number)),
                "{not_a_number}: {e:?}"
            );
        }
        assert!(required_u64(&json!({"n": -1}), "/n").is_err());
        for missing in ["/empty", "/n", "/nope"] {
            let e = required(&v, missing);
            assert!(
                matches!(&e, Err(Error::Upstream(m)) if m.contains(missing)),
                "{missing}: {e:?}"
            );
        }
    }
}
