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

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The string, number or boolean at `pointer` as text; `""` when missing, null or another type.
pub fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
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

/// The non-blank [`text`]s of the `|`-separated `pointers`, trimmed and joined with `sep`.
pub fn join(v: &Value, pointers: &str, sep: &str) -> String {
    let values: Vec<String> = pointers.split('|').map(|p| text(v, p)).collect();
    crate::text::join_non_blank(&values, sep)
}

/// The items of the array at `pointer` (none when it is missing or not an array).
pub fn array<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> + Clone {
    v.pointer(pointer)
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
    let found = v.pointer(pointer).and_then(Value::as_str);
    found.filter(|s| !s.is_empty()).ok_or_else(missing)
}

/// The unsigned integer at `pointer` that a record cannot do without (a numeric id);
/// `upstream` error naming it when it is missing or not such a number.
pub fn required_u64(v: &Value, pointer: &str) -> Result<u64> {
    let found = v.pointer(pointer).and_then(Value::as_u64);
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
