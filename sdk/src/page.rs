//! A builder for the contract's `sync-page` record that encodes the connector's position as the
//! page's cursor, so a sync ends in one line instead of a struct literal and a `cursor::encode`.
//!
//! ```ignore
//! Ok(SyncPage::next(upserts, &Position { after: page.after })
//!     .deletes(deletes)
//!     .done(page.end_of_stream))
//! ```

use serde::Serialize;

use crate::{Document, DocumentRef, SyncPage, cursor};

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
        let gone = DocumentRef {
            kind: "ticket".into(),
            id: "7".into(),
        };
        let page =
            SyncPage::next(vec![Document::new("ticket", "8", "t")], &position).deletes(vec![gone]);
        assert!(!page.done, "a page is not the last one unless it says so");
        assert_eq!((page.upserts.len(), page.deletes.len()), (1, 1));
        let back: Option<Position> = cursor::decode(page.next_cursor.as_deref()).unwrap();
        assert_eq!(back, Some(position));
        assert!(SyncPage::next(vec![], &()).done(true).done);
    }
}
