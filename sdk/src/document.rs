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

    /// The principals allowed to read it (empty: everyone in the tenant).
    pub fn acl(mut self, readers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.acl = readers.into_iter().map(Into::into).collect();
        self
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
}
