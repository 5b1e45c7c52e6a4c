//! Constructors for the contract's paging records: a `sync-page` that encodes the connector's
//! position as its cursor (so a sync ends in one line instead of a struct literal and a
//! `cursor::encode`), a `document-ref` for a delete, and a search request's page size.
//!
//! ```ignore
//! Ok(SyncPage::next(upserts, &Position { after: page.after })
//!     .deletes(deletes)
//!     .done(page.end_of_stream))
//! ```

use serde::Serialize;

use crate::{Document, DocumentRef, Result, SearchRequest, SyncPage, cursor};

impl SyncPage {
    /// A page of `upserts` whose cursor is `position` ([`cursor::encode`]d); no deletes, and not
    /// the last page of the run until [`SyncPage::done`] says so.
    pub fn next(upserts: Vec<Document>, position: &impl Serialize) -> Self {
        SyncPage {
            upserts,
            deletes: Vec::new(),
            next_cursor: Some(cursor::encode(position)),
            done: false,
        }
    }

    /// The records deleted upstream since the last page.
    pub fn deletes(mut self, deletes: Vec<DocumentRef>) -> Self {
        self.deletes = deletes;
        self
    }

    /// Whether this page ends the run (its cursor is where the next run starts).
    pub fn done(mut self, done: bool) -> Self {
        self.done = done;
        self
    }
}

impl DocumentRef {
    /// The record `id` of `kind` (a delete in a sync page).
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        DocumentRef {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl SearchRequest {
    /// The query, trimmed; `invalid-input` when it is empty.
    pub fn query_text(&self) -> Result<&str> {
        let query = self.query.trim();
        if query.is_empty() {
            return Err(crate::Error::invalid_input("search query is empty"));
        }
        Ok(query)
    }

    /// How many hits to ask for: the caller's `limit`, at most `max`; `default` when it gave none
    /// (0).
    pub fn limit_or(&self, default: u32, max: u32) -> u32 {
        if self.limit == 0 {
            default
        } else {
            self.limit.min(max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Position {
        after: String,
    }

    #[test]
    fn a_page_carries_its_position_as_a_cursor_that_decodes_back() {
        let position = Position { after: "c2".into() };
        let gone = DocumentRef::new("ticket", "7");
        let page =
            SyncPage::next(vec![Document::new("ticket", "8", "t")], &position).deletes(vec![gone]);
        assert!(!page.done, "a page is not the last one unless it says so");
        assert_eq!((page.upserts.len(), page.deletes.len()), (1, 1));
        let back: Option<Position> = cursor::decode(page.next_cursor.as_deref()).unwrap();
        assert_eq!(back, Some(position));
        assert!(SyncPage::next(vec![], &()).done(true).done);
    }

    #[test]
    fn a_search_limit_of_zero_means_the_default_and_a_large_one_the_maximum() {
        let request = |limit| SearchRequest {
            query: "q".into(),
            limit,
            cursor: None,
        };
        assert_eq!(request(0).limit_or(25, 100), 25);
        assert_eq!(request(7).limit_or(25, 100), 7);
        assert_eq!(request(500).limit_or(25, 100), 100);
        let query = |q: &str| SearchRequest {
            query: q.into(),
            limit: 0,
            cursor: None,
        };
        assert_eq!(query(" vpn ").query_text().unwrap(), "vpn");
        assert!(matches!(
            query("  ").query_text(),
            Err(crate::Error::InvalidInput(_))
        ));
    }
}
