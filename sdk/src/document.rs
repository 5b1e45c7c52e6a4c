//! A builder for the contract's `document` record, so a connector writes what it knows and
//! `metadata` is a JSON value (serialized once, here), not a string assembled by hand.
//!
//! ```ignore
//! Document::new("ticket", &t.id, &t.subject)
//!     .body(html_to_text(&t.description))
//!     .url(format!("{base}/agent/tickets/{}", t.id))
//!     .updated_at(&t.updated_at)
//!     .metadata(json!({ "status": t.status }))
//!     .acl(readers)
//! ```

use crate::Document;

impl Document {
    /// A document of `kind` with `id` (unique per connector and kind) and `title`; the rest empty.
    pub fn new(kind: impl Into<String>, id: impl Into<String>, title: impl Into<String>) -> Self {
        Document {
            id: id.into(),
            kind: kind.into(),
            title: title.into(),
            body: String::new(),
            url: None,
            updated_at: String::new(),
            metadata: "{}".into(),
            acl: Vec::new(),
        }
    }

    /// Plain text (see [`crate::html_to_text`] for HTML bodies).
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Where a person opens the record.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Where a person opens the record, when the upstream says (a blank link counts as none).
    pub fn url_opt(mut self, url: Option<impl Into<String>>) -> Self {
        self.url = url
            .map(Into::into)
            .filter(|u: &String| !u.trim().is_empty());
        self
    }

    /// When the record last changed (RFC 3339).
    pub fn updated_at(mut self, updated_at: impl Into<String>) -> Self {
        self.updated_at = updated_at.into();
        self
    }

    /// Structured fields a caller may filter on; a JSON object.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata.to_string();
        self
    }

    /// Structured fields as (key, value) pairs, written straight to a JSON object: no `Value`
    /// map and no copy of the values per record (an unchanged re-sync's time). The text is what
    /// [`Document::metadata`] writes for a `json!` object of the same pairs: keys in order, and
    /// of a key given twice, the last value.
    pub fn metadata_fields<'v>(
        mut self,
        fields: impl IntoIterator<Item = (&'v str, &'v serde_json::Value)>,
    ) -> Self {
        let mut fields: Vec<_> = fields.into_iter().collect();
        // Stable: of equal keys the last stays last, and the dedup keeps it.
        fields.sort_by_key(|(k, _)| *k);
        fields.reverse();
        fields.dedup_by_key(|(k, _)| *k);
        fields.reverse();
        let map = Fields(&fields);
        // Keys are strings and values are JSON: serializing cannot fail.
        self.metadata = serde_json::to_string(&map).unwrap_or_else(|_| "{}".into());
        self
    }

    /// Structured fields as (key, JSON text) pairs, each value as the reply sent it (a field
    /// kept as a [`crate::raw::RawValue`]; `None` writes `null`): nothing parsed or written
    /// again. Keys in order and, of a key given twice, the last value, as
    /// [`Document::metadata_fields`]. A value the host would write otherwise (spaces, other
    /// escapes) is rewritten by the host, so what is stored is the same either way.
    pub fn metadata_raw<const N: usize>(
        mut self,
        mut fields: [(&str, Option<&crate::raw::RawValue>); N],
    ) -> Self {
        self.metadata = crate::raw::object(&mut fields);
        self
    }

    /// The principals allowed to read it (empty: everyone in the tenant).
    pub fn acl(mut self, readers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.acl = readers.into_iter().map(Into::into).collect();
        self
    }
}

/// Pairs serialized as a JSON object in their order.
struct Fields<'a, 'v>(&'a [(&'v str, &'v serde_json::Value)]);

impl serde::Serialize for Fields<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_fills_every_field_and_serializes_metadata_once() {
        let d = Document::new("ticket", "7", "Printer on fire")
            .body("It is on fire.")
            .url("https://x.example.com/tickets/7")
            .updated_at("2024-01-01T00:00:00Z")
            .metadata(serde_json::json!({ "status": "open" }))
            .acl(["alice", "group:it"]);
        assert_eq!((d.kind.as_str(), d.id.as_str()), ("ticket", "7"));
        assert_eq!(d.metadata, r#"{"status":"open"}"#);
        assert_eq!(d.acl, vec!["alice".to_string(), "group:it".into()]);
        assert_eq!(Document::new("page", "1", "t").metadata, "{}");
        let d = Document::new("page", "1", "t");
        assert_eq!(
            d.clone().url_opt(Some("https://x/1")).url.as_deref(),
            Some("https://x/1")
        );
        assert_eq!(
            d.clone().url_opt(Some(" ")).url,
            None,
            "a blank link is no link"
        );
        assert_eq!(d.url_opt(None::<String>).url, None);
    }

    #[test]
    fn metadata_fields_write_what_a_json_object_of_the_same_pairs_writes() {
        use serde_json::{Value, json};
        let (tags, odd) = (
            json!(["hw", "café \"x\"\n"]),
            json!({"z": [1, 2.5], "a": null}),
        );
        let (n, null, s) = (json!(410000000983_u64), Value::Null, json!("open"));
        let pairs = [
            ("type", &s),
            ("tags", &tags),
            ("assignee_id", &n),
            ("priority", &null),
            ("status", &odd),
            ("type", &null),
        ];
        let via_value = Document::new("t", "1", "x").metadata(json!({
            "type": s, "tags": tags, "assignee_id": n, "priority": null, "status": odd,
            "type": null
        }));
        let direct = Document::new("t", "1", "x").metadata_fields(pairs);
        assert_eq!(direct.metadata, via_value.metadata);
        assert!(
            direct
                .metadata
                .starts_with(r#"{"assignee_id":410000000983,"#)
        );
        assert!(
            direct.metadata.ends_with(r#""type":null}"#),
            "the last of a key wins"
        );
        let none = Document::new("t", "1", "x").metadata_fields([]);
        assert_eq!(none.metadata, "{}");
    }
}
